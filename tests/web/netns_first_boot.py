"""First boot against the running firmware from a client that is NOT on loopback, run by
tests/web/test_first_boot_live.py inside a network namespace it creates
(`unshare -n python -m tests.web.netns_first_boot driver WORKDIR`).

The driver's namespace (the station's) gets a veth pair; the other end goes into a second
namespace made by `unshare -n sleep` (the LAN client), with 192.0.2.1 (station) and
192.0.2.2 (client) on the link. The station runs as a real firmware process with
`[web] listen = "0.0.0.0:PORT"` (as the Pi installer seeds it), and the client's requests are
made from the second namespace by `nsenter --net=/proc/PID/ns/net python -m
tests.web.netns_first_boot client REQUESTS_JSON`. It prints one `RESULT {json}` line:

- `rebinding`: status of each request from the LAN with `Host: evil.example` (/, /setup,
  /api/setup with the right setup code, /api/status, /static/app.js), and whether admin.json
  exists afterwards;
- `own_names`: status of requests from the LAN under the station's own names;
- `remote_setup`: /api/setup from the LAN without a code, with a wrong code, with the code;
- `code_logged`: the setup code of the WARNING log line equals STATE_DIR/setup-code;
- `loopback_setup`: a second, fresh station: /api/setup from the station itself, no code.
"""

import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys

from tests.integration.helpers import Firmware
from tests.peers.process import free_port, wait_until

STATION_IP, CLIENT_IP = "192.0.2.1", "192.0.2.2"
PASSWORD = "Klingel-Draht-4182"
PYTHON = sys.executable


def request(host, port, method, path, host_header, body=None, timeout=5.0):
    """One request on a fresh connection; returns (status, body text)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Host": host_header}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")[:400]
    finally:
        connection.close()


def client(spec):
    """Runs in the client's namespace: the requests in `spec`, statuses printed as JSON."""
    spec = json.loads(spec)
    out = []
    for method, path, host_header, body in spec["requests"]:
        try:
            out.append(list(request(spec["host"], spec["port"], method, path, host_header,
                                    body)))
        except OSError as exc:
            out.append([None, f"{type(exc).__name__}: {exc}"])
    print(json.dumps(out), flush=True)


def ip(*args, netns_pid=None):
    command = ["ip", *args]
    if netns_pid is not None:
        command = ["nsenter", f"--net=/proc/{netns_pid}/ns/net", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=10)


class Lan:
    """A second namespace behind a veth pair: the LAN client."""

    def __init__(self):
        self.sleeper = subprocess.Popen(["unshare", "-n", "sleep", "120"])
        own = os.readlink("/proc/self/ns/net")
        if not wait_until(lambda: self._ns() not in (None, own), 5.0, 0.02):
            raise RuntimeError("the client namespace did not appear")
        ip("link", "add", "door0", "type", "veth", "peer", "name", "lan0")
        ip("link", "set", "lan0", "netns", str(self.sleeper.pid))
        ip("addr", "add", f"{STATION_IP}/24", "dev", "door0")
        ip("link", "set", "door0", "up")
        pid = self.sleeper.pid
        ip("link", "set", "lo", "up", netns_pid=pid)
        ip("addr", "add", f"{CLIENT_IP}/24", "dev", "lan0", netns_pid=pid)
        ip("link", "set", "lan0", "up", netns_pid=pid)

    def _ns(self):
        try:
            return os.readlink(f"/proc/{self.sleeper.pid}/ns/net")
        except OSError:
            return None

    def requests(self, port, requests):
        spec = json.dumps({"host": STATION_IP, "port": port, "requests": requests})
        done = subprocess.run(["nsenter", f"--net=/proc/{self.sleeper.pid}/ns/net", PYTHON,
                               "-m", "tests.web.netns_first_boot", "client", spec],
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"client failed: {done.stderr[-2000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def close(self):
        self.sleeper.kill()
        self.sleeper.wait(5)


def start_station(workdir, listen):
    config = {"sip": {"listen": f"127.0.0.1:{free_port(('udp', 'tcp'))}"},
              "web": {"listen": listen}}
    fw = Firmware(workdir, config).start()
    fw.wait_log(r"web page on http://", 10)
    return fw


def driver(workdir):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    lan = Lan()
    result = {}
    fw = fw2 = None
    try:
        port = free_port(("tcp",))
        fw = start_station(os.path.join(workdir, "station"), f"0.0.0.0:{port}")
        admin = os.path.join(fw.state_dir, "admin.json")
        code_file = os.path.join(fw.state_dir, "setup-code")
        code = "(none)"
        if os.path.exists(code_file):
            with open(code_file, encoding="ascii") as f:
                code = f.read().strip()
        logged = re.search(r"WARNING .*setup code: ([0-9A-Z-]+)", fw.log)
        result["code_logged"] = bool(logged) and logged.group(1) == code
        evil, own = "evil.example", f"{STATION_IP}:{port}"
        setup = {"password": PASSWORD, "setup_code": code}
        statuses = lan.requests(port, [
            ["GET", "/", evil, None], ["GET", "/setup", evil, None],
            ["POST", "/api/setup", evil, setup], ["GET", "/api/status", evil, None],
            ["GET", "/static/app.js", f"{evil}:{port}", None]])
        result["rebinding"] = {"statuses": [s for s, _ in statuses],
                               "explained": all("DNS rebinding" in t for _, t in statuses),
                               "password_set": os.path.exists(admin)}
        name = socket.gethostname()
        statuses = lan.requests(port, [
            ["GET", "/static/app.js", own, None], ["GET", "/api/status", own, None],
            ["GET", "/static/app.js", f"{name}.local:{port}", None],
            ["GET", "/static/app.js", f"{name.upper()}.LOCAL.:{port}", None],
            ["GET", "/static/app.js", STATION_IP, None]])
        result["own_names"] = [s for s, _ in statuses]
        statuses = lan.requests(port, [
            ["POST", "/api/setup", own, {"password": PASSWORD}],
            ["POST", "/api/setup", own, {"password": PASSWORD, "setup_code": "AAAAA-BBBBB"}]])
        result["remote_setup"] = {"without_code": statuses[0][0], "wrong_code": statuses[1][0],
                                  "message": statuses[0][1],
                                  "password_set_before_code": os.path.exists(admin)}
        statuses = lan.requests(port, [["POST", "/api/setup", own, setup]])
        result["remote_setup"].update(
            with_code=statuses[0][0], password_set=os.path.exists(admin),
            code_file_removed=not os.path.exists(code_file))
        events = [e for e in _events(port) if e.get("type") == "auth_failed"]
        result["remote_setup"]["failures_logged"] = [e.get("via") for e in events]

        port2 = free_port(("tcp",))
        fw2 = start_station(os.path.join(workdir, "station2"), f"0.0.0.0:{port2}")
        status, _ = request("127.0.0.1", port2, "POST", "/api/setup", f"127.0.0.1:{port2}",
                            {"password": PASSWORD})
        result["loopback_setup"] = {"status": status, "password_set": os.path.exists(
            os.path.join(fw2.state_dir, "admin.json"))}
        result["alive"] = fw.alive and fw2.alive
    finally:
        for station in (fw, fw2):
            if station is not None:
                station.kill()
        lan.close()
    print("RESULT " + json.dumps(result), flush=True)


def _events(port):
    """The event log through the API, from the station itself, as admin."""
    token = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/api/events?limit=1000",
                           headers={"Authorization": f"Basic {token}"})
        return json.loads(connection.getresponse().read())["events"]
    finally:
        connection.close()


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client(sys.argv[2])
    else:
        driver(sys.argv[2])
