"""The two user agents under test, behind one small interface, plus /proc readings.

Both are started, registered, made to call and hung up the same way, so a case is written once:

    ua = DoorlineUA(workdir, registrar=kamailio, user="door", password=..., srtp="off")
    ua = BaresipUA(workdir, registrar=kamailio, user="door2", password=..., srtp="off")
    ua.start(); ua.wait_ready(10); ua.call("sip:flat1@127.0.0.1"); ua.wait_established(10)
    ua.pid, ua.sip_port, ua.started_at (time.time() just before Popen, the pcap clock)
    ua.hangup(); ua.wait_idle(5); ua.stop()

`registrar=None` is direct-IP mode. `rtp_ports=(low, high)` pins the UA's RTP ports so a capture
filter can select exactly its outgoing media. `mic` is a WAV both play as their microphone
(Doorline: --mic; baresip: the aufile source, which is why that WAV must be 8 kHz mono and last
longer than the call).

Doorline runs as the installed service runs it, `python -S -m firmware --board pc-sim` with the
venv's site-packages on PYTHONPATH (tests.integration.helpers.Firmware otherwise), with log level
INFO, as in production; its web API is driven with HTTP Basic as admin. baresip is
tests.peers.baresip.Baresip with a few extra config lines (`BenchBaresip`).

/proc: `cpu_seconds(pid)` (per-thread schedstat, ns; else utime+stime of /proc/PID/stat),
`memory_kb(pid)` (VmRSS and VmHWM of /proc/PID/status).
"""

import base64
import json
import os
import site
import time
import urllib.error
import urllib.request

from tests.integration.helpers import Firmware
from tests.peers.baresip import Baresip
from tests.peers.process import ManagedProcess, free_port, wait_until

ADMIN_PASSWORD = "bench-Admin-7319"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(RuntimeError):
    """A case could not measure; the message says why (it goes into results.json)."""


def cpu_seconds(pid):
    """CPU time of all the process's live threads, in seconds, to the nanosecond where the kernel
    keeps per-thread schedstat (/proc/PID/task/*/schedstat); else utime+stime in clock ticks
    (10 ms), too coarse for a 1 s smoke window of a UA using 1 % of a core."""
    total_ns, seen = 0, False
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        tasks = []
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat", encoding="ascii") as stat:
                total_ns += int(stat.read().split()[0])
            seen = True
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile, or no schedstat in this kernel
    if seen:
        return total_ns / 1e9
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    # Fields after the command name start at field 3 (state); utime and stime are 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def context_switches(pid):
    """Voluntary + involuntary context switches of all threads (/proc/PID/task/*/status): over
    a window, about the process's wake-ups."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/status", encoding="ascii") as status:
                for line in status:
                    if line.endswith("ctxt_switches:", 0, line.find(":") + 1):
                        total += int(line.split()[1])
        except OSError:
            continue  # the thread ended meanwhile
    return total


def memory_kb(pid):
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values


def installed_pythonpath():
    """The venv's site-packages (and the system's, where the venv sees them): what the installed
    service puts on PYTHONPATH for `python -S` (tools/install/doorline.service)."""
    return os.pathsep.join(site.getsitepackages())


class _InstalledFirmware(Firmware):
    """tests.integration.helpers.Firmware started with the installed service's command line:
    `python -S -m firmware ...` with PYTHONPATH = the venv's site-packages (no `site` module:
    no .pth processing at start, in particular not the editable install's import hook, which
    a station installed with pip does not have), plus extra environment variables (the ALSA
    row). The firmware itself is found in the working directory (the repository), as before."""

    def __init__(self, *args, extra_env=None, **options):
        self._extra_env = dict(extra_env or {})
        Firmware.__init__(self, *args, **options)
        self.argv[1:1] = ["-S"]

    def start(self):
        # As Firmware.start, plus PYTHONPATH and the extra variables.
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1",
                    "DOORLINE_TEST_HOOKS": "1" if self.test_hooks else "0",
                    "PYTHONPATH": installed_pythonpath(), **self._extra_env}
        self.started_at = time.time()
        self.started_mono = time.monotonic()
        ManagedProcess.start(self)
        return self


# [audio] for the rows that are not about audio processing (issue 15): nothing on, full volume
PLAIN_AUDIO = {"echo_cancel": False, "noise_suppress": False, "agc": False, "mic_gain_db": 0,
               "speaker_volume": 100}


class DoorlineUA:
    kind = "doorline"

    def __init__(self, workdir, registrar=None, user="door", password="", srtp="off",
                 allow=(), button_targets=(), rtp_ports=None, mic=None, speaker_dir=None,
                 board=None, env=None, audio=None, codecs=None, echo_path=None,
                 camera=None, camera_cfg=None):
        self.sip_port = free_port(("udp", "tcp"))
        self.web_port = free_port(("tcp",))
        self.user = user
        sip = {"registrar": "", "domain": "127.0.0.1", "username": user, "password": password,
               "transport": "udp", "listen": f"127.0.0.1:{self.sip_port}", "expires": 3600}
        if registrar is not None:
            sip["registrar"] = f"127.0.0.1:{registrar.udp_port}"
        media = {"srtp": srtp, "srtp_requires_tls": False}
        if rtp_ports is not None:
            media["rtp_ports"] = "%d-%d" % rtp_ports
        if codecs is not None:
            media["codecs"] = list(codecs)
        # [audio]: without processing unless a case asks for it, so the call rows compare
        # like with like (baresip runs without speex_pp there); the audio case measures both.
        config = {"sip": sip, "media": media,
                  "answer": {"mode": "auto", "allow": list(allow)},
                  "web": {"listen": f"127.0.0.1:{self.web_port}"},
                  "audio": dict(PLAIN_AUDIO if audio is None else audio)}
        if button_targets:
            config["buttons"] = [{"role": "call", "targets": list(button_targets)}]
        extra = []
        if mic is not None:
            extra += ["--mic", os.fspath(mic)]
        if speaker_dir is not None:
            extra += ["--speaker-dir", os.fspath(speaker_dir)]
        if echo_path is not None:
            extra += ["--echo-path", os.fspath(echo_path)]
        if camera is not None:  # pc-sim: "pattern" or a file (issue 16)
            extra += ["--camera", camera]
        if camera_cfg:
            config["camera"] = dict(camera_cfg)
        self.registered_mode = registrar is not None
        # test_hooks off: production behaviour (DOORLINE_TEST_HOOKS=0), as baresip runs as shipped.
        options = {"extra_args": extra, "log_level": "INFO", "test_hooks": False}
        if board is not None:
            options["board"] = os.fspath(board)
        self.firmware = _InstalledFirmware(workdir, config, extra_env=env, **options)
        self._authorization = "Basic " + base64.b64encode(
            f"admin:{ADMIN_PASSWORD}".encode()).decode()

    # -- life cycle ------------------------------------------------------------------------
    def start(self):
        self.firmware.start()
        return self

    @property
    def started_at(self):
        return self.firmware.started_at

    @property
    def pid(self):
        return self.firmware.pid

    @property
    def log(self):
        return self.firmware.log

    def wait_ready(self, timeout=10.0):
        """Web API up, admin password set and verified once (later checks hit the cache);
        registered too when a registrar is configured."""
        if not wait_until(lambda: not self.firmware.alive or self._web_up(), timeout, 0.05):
            raise BenchError(f"Doorline web API not up on port {self.web_port} within "
                             f"{timeout} s; log tail: {self._tail()}")
        if not self.firmware.alive:
            raise BenchError(f"Doorline exited ({self.firmware.returncode}): {self._tail()}")
        self.request("POST", "/api/setup", {"password": ADMIN_PASSWORD}, auth=False)
        self.request("GET", "/api/events?limit=1")
        if self.registered_mode and not wait_until(
                lambda: self.status()["registration"]["state"] == "registered", timeout, 0.05):
            raise BenchError(f"Doorline did not register within {timeout} s: "
                             f"{self.status()['registration']}; log tail: {self._tail()}")
        return self

    def stop(self):
        self.firmware.stop(timeout=5.0)
        self.firmware.kill()

    def _tail(self):
        return " | ".join(self.log.strip().splitlines()[-6:])[-1500:]

    # -- web API ---------------------------------------------------------------------------
    def _web_up(self):
        try:
            self.request("GET", "/api/status", auth=False, timeout=0.5)
        except BenchError:
            return True  # an HTTP answer, even a refusal before set-up, means it is serving
        except OSError:
            return False
        return True

    def request(self, method, path, body=None, auth=True, timeout=5.0):
        headers = {}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(f"http://127.0.0.1:{self.web_port}{path}", data=data,
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            text = error.read()[:300].decode(errors="replace")
            raise BenchError(f"{method} {path}: HTTP {error.code} {text}") from None

    def status(self):
        return self.request("GET", "/api/status")

    def press(self, press_ms=100):
        return self.request("POST", "/api/sim/button/call", {"press_ms": press_ms})

    # -- calls -----------------------------------------------------------------------------
    def call(self, target):
        self.request("POST", "/api/call", {"target": target})

    def calls(self):
        return self.status().get("calls", [])

    def wait_established(self, timeout=10.0):
        if not wait_until(lambda: any(c.get("state") == "active" for c in self.calls()),
                          timeout, 0.05):
            raise BenchError(f"Doorline call not active within {timeout} s: {self.calls()}; "
                             f"log tail: {self._tail()}")

    def hangup(self):
        self.request("POST", "/api/hangup", {})

    def wait_idle(self, timeout=5.0):
        if not wait_until(lambda: not self.calls(), timeout, 0.05):
            raise BenchError(f"Doorline call not over within {timeout} s: {self.calls()}")

    def call_stats(self):
        """The media stats of the current call(s): list of dicts (concealed, lost, ...)."""
        return [c.get("stats", {}) for c in self.calls()]


class BenchBaresip(Baresip):
    """Baresip with extra config lines (`settings` replace or add `key value` lines, `modules`
    are loaded, `dropped_modules` are not), and optionally the account in the accounts file so
    it registers straight after start (the start → registered case) instead of after `uanew`
    over the control connection."""

    def __init__(self, workdir, settings=None, modules=(), dropped_modules=(),
                 preload_account=False, **options):
        self._settings = dict(settings or {})
        self._modules = list(modules)
        self._dropped = {f"module {module}" for module in dropped_modules}
        self._preload_account = preload_account
        Baresip.__init__(self, workdir, **options)

    def _write_config(self):
        Baresip._write_config(self)
        path = self.config_dir / "config"
        lines = [line for line in path.read_text().splitlines()
                 if line.split(" ", 1)[0] not in self._settings and line not in self._dropped]
        lines += [f"{key} {value}" for key, value in self._settings.items()]
        lines += [f"module {module}" for module in self._modules]
        if self._preload_account:
            lines.append("module_app account.so")
            (self.config_dir / "accounts").write_text(self._account_line() + "\n")
        path.write_text("\n".join(lines) + "\n")

    def start(self, timeout=10.0):
        if not self._preload_account:
            return Baresip.start(self, timeout)
        self._process = ManagedProcess([self.binary, "-f", self.config_dir], self.log_path,
                                       cwd=self.workdir)
        self._process.start()
        return self

    def connect_control(self, timeout=5.0):
        """After a preloaded start: attach the control socket (for a clean `quit`)."""
        if not wait_until(lambda: not self._process.alive or self._connect(), timeout, 0.05):
            raise BenchError("baresip ctrl_tcp never accepted a connection")


class BaresipUA:
    kind = "baresip"

    def __init__(self, workdir, registrar=None, user="door2", password=None, srtp="off",
                 rtp_ports=None, mic=None, modules=(), preload_account=False, record=False):
        settings = {}
        if rtp_ports is not None:
            settings["rtp_ports"] = "%d-%d" % rtp_ports
        if mic is not None:
            # The same 8 kHz mono file as Doorline's --mic: no resampling on either side.
            settings.update({"audio_source": f"aufile,{os.fspath(mic)}", "ausrc_srate": 8000,
                             "ausrc_channels": 1})
            modules = ("aufile.so",) + tuple(modules)
        address = None if registrar is None else ("127.0.0.1", registrar.udp_port)
        self.registered_mode = registrar is not None
        self.user = user
        # Recording (sndfile) writes two WAVs per call: only where the received audio is
        # analysed, or baresip would do file I/O that Doorline (no --speaker-dir) does not.
        self.phone = BenchBaresip(workdir, settings=settings, modules=modules,
                                  dropped_modules=() if record else ("sndfile.so",),
                                  preload_account=preload_account, user=user,
                                  password=password, registrar=address,
                                  srtp=srtp == "mandatory", answer_mode="auto")
        self.started_at = None

    @property
    def sip_port(self):
        return self.phone.sip_port

    @property
    def pid(self):
        return self.phone.pid

    @property
    def log(self):
        return self.phone.log

    def start(self):
        self.started_at = time.time()
        self.phone.start()
        return self

    def wait_ready(self, timeout=10.0):
        if self.registered_mode:
            try:
                self.phone.wait_registered(timeout)
            except (TimeoutError, RuntimeError) as error:
                raise BenchError(f"baresip did not register: {error}") from None
        return self

    def stop(self):
        self.phone.stop()

    def call(self, target):
        self._mark = len(self.phone.events)
        self.phone.dial(target)

    def wait_established(self, timeout=10.0):
        try:
            self.phone.wait_event("CALL_ESTABLISHED", timeout, since=self._mark)
        except TimeoutError as error:
            raise BenchError(f"baresip call not established: {error}") from None

    def hangup(self):
        self._mark = len(self.phone.events)
        self.phone.hangup()

    def wait_idle(self, timeout=5.0):
        try:
            self.phone.wait_event("CALL_CLOSED", timeout, since=self._mark)
        except TimeoutError as error:
            raise BenchError(f"baresip call not closed: {error}") from None
