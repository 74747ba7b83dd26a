"""Running the real firmware as a process in integration tests.

    fw = Firmware(tmp_path / "fw", station_config(kamailio, "udp")).start()
    fw.wait_log(r"registration registered", timeout=5)
    code, elapsed = fw.stop()          # SIGTERM by PID; (exit code, seconds until it exited)

Public API:
- `Firmware(workdir, config, board="pc-sim", extra_args=(), log_level="DEBUG", test_hooks=True,
  env=None)` (`env`: extra environment variables): `config` is a
  dict (written as TOML) or TOML text; it goes to `workdir/doorline.toml`, the state directory
  is `workdir/state`, stdout and stderr go to `workdir/firmware.log`.
  `start()` (own process group; `started_at` is `time.time()` taken just before `Popen`, the
  clock of pcap timestamps, `started_mono` the same moment on the monotonic clock),
  `wait_log(pattern, timeout, since=0) -> re.Match` (regex over the log text from offset
  `since`; AssertionError with the log tail on timeout or when the process died),
  `log_offset()` (current end of the log, for `since`), `count_log(pattern)`,
  `stop(sig=SIGTERM, timeout=5.0) -> (returncode, elapsed)` (signal by PID, bounded wait,
  SIGKILL of its own process group only if it overstays; `elapsed` is measured from the signal
  to the exit), `kill()`, `alive`, `pid`, `returncode`, `log`, `port`, `config_path`; a context
  manager that always cleans up.
- `station_config(registrar, transport="udp", password=DOOR_PASSWORD, username=DOOR_USER,
  listen_port=None, expires=3600) -> dict`: a config for a station registering with a
  `tests.peers.kamailio.Kamailio` (or `None`: direct-IP mode), on free 4-digit loopback ports.
- `registrar_port(kamailio, transport)`.
- `wait_contacts(kamailio, user, predicate=bool, timeout=5.0, interval=0.05) -> list`: polls
  `contacts(user)` until `predicate(contacts)` holds; AssertionError with the last contacts.
- `time_to_registered(capture_packets, registrar, started_at) -> float | None`: from the pcap of
  a UDP capture of the registrar port, the kernel timestamp of the first `200` answering a
  REGISTER that comes from the registrar, minus `started_at`.
- `measure_time_to_registered(kamailio, workdir, timeout=10.0) -> dict`: starts a UDP station
  against `kamailio` under a LiveCapture of its port and returns `{"capture": s, "polling": s}`:
  process start → the registrar's 200 for REGISTER by kernel timestamp (None if not seen),
  and process start → the contact visible through `kamcmd` (an upper bound, polled every
  50 ms). The station is stopped (SIGTERM, then SIGKILL of its group) before it returns.
- `sip_messages(capture_packets, port, direction="to") -> list[bytes]`: payloads of the
  captured SIP datagrams sent to (or from) `port`, keep-alives skipped.
- `LiveCapture`: `tests.peers.capture.Capture` (which runs tcpdump in immediate mode).
"""

import os
import re
import signal
import subprocess
import sys
import time

import tomli_w

from tests.conftest import ROOT
from tests.peers.capture import Capture
from tests.peers.fixtures import DOOR_PASSWORD, DOOR_USER
from tests.peers.process import ManagedProcess, free_port, wait_until

PYTHON = ROOT / ".venv" / "bin" / "python"


class Firmware(ManagedProcess):
    def __init__(self, workdir, config, board="pc-sim", extra_args=(), log_level="DEBUG",
                 test_hooks=True, env=None):
        # test_hooks: DOORLINE_TEST_HOOKS=1, which also logs each received DTMF digit (tests
        # compare them); a production station never logs digits, they are door codes.
        self.test_hooks = test_hooks
        self.extra_env = dict(env or {})
        self.workdir = os.fspath(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.config_path = os.path.join(self.workdir, "doorline.toml")
        self.state_dir = os.path.join(self.workdir, "state")
        self.log_path = os.path.join(self.workdir, "firmware.log")
        self.config = config if isinstance(config, dict) else None
        with open(self.config_path, "w", encoding="utf-8") as config_file:
            config_file.write(tomli_w.dumps(config) if isinstance(config, dict) else config)
        python = PYTHON if PYTHON.exists() else sys.executable
        ManagedProcess.__init__(
            self, [os.fspath(python), "-m", "firmware", "--board", board,
                   "--config", self.config_path, "--state-dir", self.state_dir,
                   "--log-level", log_level, *extra_args],
            self.log_path, cwd=os.fspath(ROOT))
        self.started_at = None
        self.started_mono = None

    # -- life cycle ------------------------------------------------------------------------

    def start(self):
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "DOORLINE_TEST_HOOKS": "1" if self.test_hooks else "0", **self.extra_env}
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        ManagedProcess.start(self)
        return self

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
        """Send `sig` to our PID and wait up to `timeout`; returns (returncode, elapsed)."""
        if self._popen is None:
            return None, 0.0
        began = time.monotonic()
        if self._popen.poll() is None:
            os.kill(self._popen.pid, sig)
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self._popen.returncode, time.monotonic() - began

    def kill(self):
        """SIGKILL the process group this process leads (only what we started)."""
        if self._popen is None or self._popen.poll() is not None:
            return
        try:
            os.killpg(self._popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._popen.wait(5.0)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.kill()

    @property
    def port(self):
        """The SIP listen port, when the config was given as a dict."""
        return int(self.config["sip"]["listen"].rsplit(":", 1)[1])

    # -- the log ---------------------------------------------------------------------------

    @property
    def log(self):
        return self.log_text()

    def log_offset(self):
        return len(self.log)

    def count_log(self, pattern, since=0):
        return len(re.findall(pattern, self.log[since:]))

    def wait_log(self, pattern, timeout, since=0):
        """The first match of regex `pattern` in the log after offset `since`."""
        regex = re.compile(pattern)
        found = []

        def seen():
            match = regex.search(self.log, since)
            if match:
                found.append(match)
                return True
            return not self.alive

        wait_until(seen, timeout, 0.02)
        if found:
            return found[0]
        state = "exited with %s" % self.returncode if not self.alive else "still running"
        raise AssertionError(f"no {pattern!r} in the firmware log within {timeout} s "
                             f"({state}); log tail:\n{self.log[-4000:]}")


def registrar_port(kamailio, transport):
    return kamailio.tls_port if transport == "tls" else kamailio.udp_port


def station_config(registrar, transport="udp", password=DOOR_PASSWORD, username=DOOR_USER,
                   listen_port=None, expires=3600):
    """A complete config for a station on loopback; `registrar` is a Kamailio or None."""
    sip = {
        "registrar": "",
        "domain": "127.0.0.1",
        "username": username,
        "password": password,
        "transport": transport,
        "listen": f"127.0.0.1:{listen_port or free_port(('udp', 'tcp'))}",
        "expires": expires,
    }
    if registrar is not None:
        sip["registrar"] = f"127.0.0.1:{registrar_port(registrar, transport)}"
        sip["domain"] = registrar.domain
        if transport == "tls":
            sip["tls_ca"] = os.fspath(registrar.ca_path)
    # The tests' microphones are steady tones standing in for a voice; a noise suppressor
    # removes a steady tone by design (docs/AUDIO.md), so it is off here. The audio processing
    # itself is tested with speech-like audio (test_audio_housing.py, which sets [audio]).
    return {"sip": sip, "web": {"listen": f"127.0.0.1:{free_port(('tcp',))}"},
            "audio": {"noise_suppress": False}}


def wait_contacts(kamailio, user, predicate=bool, timeout=5.0, interval=0.05):
    last = []

    def check():
        last[:] = kamailio.contacts(user)
        return predicate(last)

    if not wait_until(check, timeout, interval):
        raise AssertionError(f"contacts of {user} never satisfied the condition within "
                             f"{timeout} s; last seen: {last}")
    return list(last)


def _is_keepalive(payload):
    return not payload.strip(b"\r\n")


def sip_messages(packets, port, direction="to"):
    index = 1 if direction == "to" else 0
    return [p.payload for p in packets
            if (p.dst if index else p.src)[1] == port and not _is_keepalive(p.payload)]


def _cseq_method(payload):
    for line in payload.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"cseq":
            return value.split()[-1].decode(errors="replace") if value.split() else None
    return None


def time_to_registered(packets, registrar, started_at):
    """Seconds from `started_at` (wall clock) to the first 2xx for REGISTER sent by
    `registrar` (host, port), by kernel timestamp; None if there is none."""
    for packet in packets:
        if tuple(packet.src) == tuple(registrar) and packet.payload.startswith(b"SIP/2.0 2") \
                and _cseq_method(packet.payload) == "REGISTER":
            return packet.ts - started_at
    return None


LiveCapture = Capture  # the name the integration tests use


def measure_time_to_registered(kamailio, workdir, timeout=10.0):
    workdir = os.fspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    registrar = ("127.0.0.1", kamailio.udp_port)
    with LiveCapture(os.path.join(workdir, "register.pcap"), udp_ports=[registrar[1]]) as capture:
        station = Firmware(os.path.join(workdir, "station"), station_config(kamailio, "udp"))
        try:
            station.start()
            wait_contacts(kamailio, DOOR_USER, timeout=timeout, interval=0.05)
            polled = time.monotonic() - station.started_mono
        finally:
            station.stop(timeout=5.0)
            station.kill()
    return {"capture": time_to_registered(capture.packets(), registrar, station.started_at),
            "polling": polled}


def receive(sock, timeout, wanted):
    """The first datagram within `timeout` s whose first line starts with `wanted`, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            text = sock.recv(65535).decode(errors="replace")
        except TimeoutError:
            return None
        if text.startswith(wanted):
            return text
    return None


def raw_offer(host, port):
    """A minimal PCMU offer for a raw-socket caller bound to host:port (RTP on port + 1)."""
    return (f"v=0\r\no=raw 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\n"
            f"t=0 0\r\nm=audio {port + 1} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
