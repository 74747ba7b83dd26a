"""Mosquitto (Debian's `mosquitto`) as the house's MQTT broker, on loopback, started by the test.

Public API:
- `Mosquitto(workdir, users=None, tls=False)`: writes a config with one listener on a free
  127.0.0.1 port (`port`); with `users` ({name: password}) anonymous clients are refused and a
  password file is made with `mosquitto_passwd`; with `tls` the listener speaks TLS with a
  server certificate for 127.0.0.1 signed by a CA made now (`ca_path`, tests/peers/certs.py).
  `start(timeout)`, `stop()`, `restart(down_s=0)` (same port, retained messages kept only as
  far as mosquitto keeps them: persistence is on, in `workdir`), `close()`, `log`.
- `Observer(broker, topics, username=None, password=None, ca_path=None, session=None)`: a
  paho-mqtt client (the test's own, not the station's) that subscribes to `topics` (QoS 1) and
  records every message as `(monotonic time, topic, payload bytes, retain)`. With `session`
  (a client id) its session is persistent and it reconnects by itself: across a broker restart
  (persistence is on) it gets what was published while it was away. `messages(topic=None)`,
  `wait_for(predicate, timeout) -> message`, `publish(topic, payload, retain=False)`, `close()`.
"""

import os
import pathlib
import socket
import subprocess
import threading
import time

from tests.peers.certs import make_certificates
from tests.peers.process import ManagedProcess, free_port, require_binary, wait_until


class Mosquitto:
    def __init__(self, workdir, users=None, tls=False):
        self.binary = require_binary("mosquitto")
        self.workdir = os.fspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.port = free_port(("tcp",))
        self.users = dict(users or {})
        self.tls = tls
        self.ca_path = None
        lines = [f"listener {self.port} 127.0.0.1",
                 "user root",  # read the files of this (root-owned) test directory
                 "persistence true", f"persistence_location {self.workdir}/",
                 "autosave_interval 1", "log_dest stdout", "log_type all"]
        if self.users:
            passwd = os.path.join(self.workdir, "passwd")
            tool = require_binary("mosquitto_passwd")
            for i, (name, password) in enumerate(self.users.items()):
                args = [tool, "-b"] + (["-c"] if i == 0 else []) + [passwd, name, password]
                subprocess.run(args, check=True, timeout=10, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        if tls:
            certs = make_certificates(pathlib.Path(self.workdir) / "certs")
            self.ca_path = os.fspath(certs.ca_path)
            lines += [f"cafile {certs.ca_path}", f"certfile {certs.cert_path}",
                      f"keyfile {certs.key_path}", "tls_version tlsv1.2"]
        self.config_path = os.path.join(self.workdir, "mosquitto.conf")
        with open(self.config_path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.log_path = os.path.join(self.workdir, "mosquitto.log")
        self._process = ManagedProcess([self.binary, "-c", self.config_path], self.log_path)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def _listening(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def start(self, timeout=10.0):
        self._process.start()
        if not wait_until(lambda: self._listening() or not self._process.alive, timeout, 0.05) \
                or not self._process.alive:
            raise RuntimeError(f"mosquitto did not start:\n{self.log[-3000:]}")
        return self

    def stop(self):
        self._process.stop(timeout=5.0)

    def restart(self, down_s=0.0):
        self.stop()
        time.sleep(down_s)
        self.start()

    def close(self):
        self.stop()

    @property
    def log(self):
        return self._process.log_text()


class Observer:
    def __init__(self, broker, topics, username=None, password=None, ca_path=None,
                 session=None):
        import paho.mqtt.client as mqtt

        self.records = []
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                   client_id=session or f"observer-{os.getpid()}-{id(self)}",
                                   clean_session=session is None)
        self._client.reconnect_delay_set(0.1, 1.0)
        if username:
            self._client.username_pw_set(username, password)
        if ca_path:
            self._client.tls_set(ca_certs=os.fspath(ca_path))
        self._subscribed = threading.Event()
        self._topics = list(topics)

        def on_connect(client, userdata, flags, reason, properties):
            client.subscribe([(t, 1) for t in self._topics])

        def on_subscribe(client, userdata, mid, reasons, properties):
            self._subscribed.set()

        def on_message(client, userdata, message):
            with self._lock:
                self.records.append((time.monotonic(), message.topic, bytes(message.payload),
                                     bool(message.retain)))

        self._client.on_connect = on_connect
        self._client.on_subscribe = on_subscribe
        self._client.on_message = on_message
        self._client.connect("127.0.0.1", broker.port, keepalive=30)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise RuntimeError("the observer could not subscribe")

    def messages(self, topic=None):
        with self._lock:
            return [r for r in self.records if topic is None or r[1] == topic]

    def wait_for(self, predicate, timeout, what="a message"):
        found = []

        def check():
            for record in self.messages():
                if predicate(record):
                    found.append(record)
                    return True
            return False

        assert wait_until(check, timeout, 0.01), (
            f"{what} not seen within {timeout} s; got: "
            f"{[(r[1], r[2][:120], r[3]) for r in self.messages()][-30:]}")
        return found[0]

    def publish(self, topic, payload, retain=False):
        self._client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self):
        self._client.loop_stop()
        self._client.disconnect()
