"""A real baresip 1.0.0 phone on 127.0.0.1, scripted over its ctrl_tcp socket.

    phone = Baresip(workdir, user="flat1", password="pw2",
                    registrar=("127.0.0.1", proxy.udp_port), tone_hz=440).start()
    phone.wait_registered(5)
    phone.dial("sip:door@127.0.0.1:5070")
    phone.wait_event("CALL_ESTABLISHED", 5)
    phone.send_dtmf("1#")
    phone.hangup(); phone.wait_event("CALL_CLOSED", 5)
    phone.stop(); phone.recordings("dec")   # WAVs of what it received

Set-up (see the peer notes for why): one config directory per instance; SIP on
`sip_port` (UDP and TCP; baresip also listens TLS on `sip_port + 1`), `net_interface
127.0.0.1`, `statmode_default off`; the microphone is `ausine,<tone_hz>` (ausine takes the
frequency as its device name and needs 48 kHz stereo); the loudspeaker is an `aubridge`
device of its own, which is paced and reads nothing unless someone attaches a source;
`sndfile.so` writes `dump-<call>-enc.wav` (sent) and `dump-<call>-dec.wav` (received) into
`recordings_dir`. Commands come from `menu.so` through `ctrl_tcp.so`.

The account is created with the `uanew` command only after the control connection is up,
so REGISTER_OK and the first call events are never missed.

ctrl_tcp protocol: netstring-framed JSON both ways. Requests
`{"command": "dial", "params": "sip:...", "token": "3"}`; responses
`{"response": true, "ok": bool, "data": text, "token": "3"}`; events
`{"event": true, "class": "call"|"register"|..., "type": "CALL_INCOMING"|..., "accountaor",
"direction", "peeruri", "id", "param"}`.
Event types seen in 1.0.0: REGISTERING, REGISTER_OK, REGISTER_FAIL, UNREGISTERING,
CALL_INCOMING, CALL_RINGING, CALL_PROGRESS, CALL_ESTABLISHED, CALL_CLOSED (param = reason),
CALL_DTMF_START (param = the digit) / CALL_DTMF_END, CALL_MENC (SRTP state),
CALL_LOCAL_SDP / CALL_REMOTE_SDP (param offer|answer), CALL_RTPESTAB, CALL_RTCP.
Video quirks (1.0.0, `avcodec` from baresip-ffmpeg): an account limited with
`video_codecs=H264` offers and accepts only packetization-mode 0 (so it is not limited here:
both modes are offered, mode 1 as payload type 97); `snapshot_recv PATH` writes a PNG to PATH
exactly as given (no suffix added) and logs `png: wrote PATH`.
Quirks: the END of the last digit is only reported once more RTP arrives, so count
CALL_DTMF_START events; recordings are named by wall-clock second, so two calls of one
instance within the same second share (overwrite) a file.

Public API: `Baresip(workdir, user="flat1", password=None, registrar=None, sip_port=None,
transport="udp", srtp=False, answer_mode="auto", tone_hz=440, ca_path=None,
codecs=("PCMU/8000/1", "PCMA/8000/1"), modules=(), source_wav=None, video=False)`
(`modules`: extra modules such as "g722.so"; `source_wav`: a WAV played through `aufile`
instead of ausine; `video`: H.264 through avcodec, fakevideo as camera and display, and
`snapshot_recv` writing received frames as PNG);
`start(timeout=10)`, `stop(timeout=5)`, `alive`, `pid`, `aor`, `contact_uri`,
`command(cmd, params="", timeout=5) -> dict`, `dial(uri)`, `hangup()`, `accept()`,
`send_dtmf(digits)`, `events` (all so far), `wait_event(match, timeout, since=None) -> dict`,
`wait_registered(timeout=10)`, `recordings(kind="dec") -> list[Path]`, `log`.
"""

import json
import pathlib
import shutil
import socket
import tempfile
import threading
import time
import weakref

from tests.peers.process import (
    ManagedProcess,
    PeerProcess,
    free_port,
    require_binary,
    wait_until,
)

MODULE_PATH = "/usr/lib/baresip/modules"
ANSWER_MODES = ("auto", "manual", "early")
TRANSPORTS = ("udp", "tcp", "tls")


class BaresipError(RuntimeError):
    pass


def _netstring(payload):
    return str(len(payload)).encode() + b":" + payload + b","


def _sip_and_tls_port():
    # baresip binds its TLS transport on sip_port + 1; reserve both.
    for _ in range(100):
        port = free_port(("udp", "tcp"), 2000, 9998)
        if _tcp_free(port + 1):
            return port
    raise RuntimeError("no free pair of ports for baresip")


def _tcp_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Baresip(PeerProcess):
    def __init__(self, workdir, user="flat1", password=None, registrar=None, sip_port=None,
                 transport="udp", srtp=False, answer_mode="auto", tone_hz=440, ca_path=None,
                 codecs=("PCMU/8000/1", "PCMA/8000/1"), modules=(), source_wav=None,
                 video=False):
        if answer_mode not in ANSWER_MODES:
            raise ValueError(f"answer_mode must be one of {ANSWER_MODES}")
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}")
        if not 10 <= tone_hz <= 20000:
            raise ValueError("ausine accepts 10..20000 Hz")
        self.binary = require_binary("baresip")
        self.workdir = pathlib.Path(workdir)
        self.config_dir = self.workdir / "config"
        # baresip 1.0.0 cuts recording paths at 127 characters (a deep pytest tmp dir loses
        # ".wav"): record under a short temp dir, linked from the work dir, removed with us.
        self.recordings_dir = pathlib.Path(tempfile.mkdtemp(prefix="bsrec-"))
        weakref.finalize(self, shutil.rmtree, str(self.recordings_dir), True)
        self.config_dir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "recordings").symlink_to(self.recordings_dir)
        self.log_path = self.workdir / "baresip.log"
        self.user = user
        self.password = password
        self.registrar = registrar
        self.transport = transport
        self.srtp = srtp
        self.answer_mode = answer_mode
        self.tone_hz = tone_hz
        self.ca_path = ca_path
        self.codecs = tuple(codecs)  # account audio_codecs, e.g. "G722/16000/1" (issue 15)
        self.modules = tuple(modules)  # extra modules, e.g. "g722.so", "speex_pp.so"
        self.source_wav = source_wav  # a WAV played as the microphone (aufile) instead of ausine
        self.video = video
        self.sip_port = sip_port or _sip_and_tls_port()
        self.ctrl_port = free_port(("tcp",))
        self._process = None
        self._sock = None
        self._reader = None
        self._lock = threading.Condition()
        self._events = []
        self._responses = {}
        self._cursor = 0
        self._next_token = 0
        self._write_config()

    # -- configuration -------------------------------------------------------------------

    @property
    def aor(self):
        if self.registrar is None:
            return f"sip:{self.user}@127.0.0.1:{self.sip_port}"
        host, port = self.registrar
        params = "" if self.transport == "udp" else f";transport={self.transport}"
        return f"sip:{self.user}@{host}:{port}{params}"

    @property
    def contact_uri(self):
        """Where this phone can be reached directly (direct-IP calls, no registrar)."""
        return f"sip:{self.user}@127.0.0.1:{self.sip_port}"

    def _account_line(self):
        params = [f"answermode={self.answer_mode}", "audio_codecs=" + ",".join(self.codecs)]
        if self.registrar is None:
            params.append("regint=0")
        else:
            params.append("regint=60")
            if self.password is not None:
                params.append(f"auth_pass={self.password}")
        if self.srtp:
            params.append("mediaenc=srtp-mand")
        return f"<{self.aor}>;" + ";".join(params)

    def _write_config(self):
        lines = [
            "poll_method epoll",
            f"sip_listen 127.0.0.1:{self.sip_port}",
            "net_interface 127.0.0.1",
            f"audio_source aufile,{self.source_wav}" if self.source_wav else
            f"audio_source ausine,{self.tone_hz}",
            "ausrc_srate 48000",
            "ausrc_channels 2",
            f"audio_player aubridge,speaker-{self.sip_port}",
            f"audio_alert aubridge,alert-{self.sip_port}",
            "statmode_default off",
            f"module_path {MODULE_PATH}",
            "module g711.so",
            "module ausine.so",
            "module aubridge.so",
            "module sndfile.so",
            "module srtp.so",
            *[f"module {name}" for name in self.modules],
            *(["module aufile.so"] if self.source_wav else []),
            "module_app menu.so",
            "module_app ctrl_tcp.so",
            f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
            f"snd_path {self.recordings_dir}",
        ]
        if self.ca_path:
            lines.append(f"sip_cafile {self.ca_path}")
        if self.video:  # H.264 from baresip-ffmpeg; fakevideo: a source and a screenless display
            lines += ["module avcodec.so", "module fakevideo.so", "module snapshot.so",
                      "video_source fakevideo,nil", "video_display fakevideo,nil",
                      "video_size 320x240", "video_fps 15", "video_bitrate 300000",
                      "avcodec_h264enc libx264", "avcodec_h264dec h264"]
        (self.config_dir / "config").write_text("\n".join(lines) + "\n")
        # No account.so and no accounts file: the account is added by `uanew` in start().
        (self.config_dir / "accounts").write_text("")
        (self.config_dir / "contacts").write_text("")

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout=10.0):
        self._process = ManagedProcess(
            [self.binary, "-f", self.config_dir], self.log_path, cwd=self.workdir
        )
        self._process.start()
        if not wait_until(lambda: not self._process.alive or self._connect(), timeout, 0.05):
            self.stop()
            raise BaresipError(f"baresip ctrl_tcp never accepted a connection:\n{self.log}")
        if not self._process.alive:
            raise BaresipError(f"baresip exited ({self._process.returncode}):\n{self.log}")
        self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"baresip-{self.user}-ctrl")
        self._reader.start()
        response = self.command("uanew", self._account_line(), timeout)
        if not response.get("ok"):
            self.stop()
            raise BaresipError(f"uanew failed: {response}\n{self.log}")
        return self

    def _connect(self):
        try:
            self._sock = socket.create_connection(("127.0.0.1", self.ctrl_port), timeout=0.2)
        except OSError:
            return False
        self._sock.settimeout(None)
        return True

    def stop(self, timeout=5.0):
        if self._process is None:
            return
        if self._process.alive and self._sock is not None:
            try:
                self._send("quit", "", "quit")
            except OSError:
                pass
            # quit de-registers first; give it a moment before falling back to SIGTERM.
            wait_until(lambda: not self._process.alive, min(timeout, 2.0), 0.05)
        self._process.stop(timeout, repeat=True)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._reader is not None:
            self._reader.join(timeout)

    def __exit__(self, *exc_info):
        self.stop()

    # -- control channel -----------------------------------------------------------------

    def _send(self, command, params, token):
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        self._sock.sendall(_netstring(body))

    def _read_loop(self):
        buffer = b""
        sock = self._sock
        while True:
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._lock:
                    self._lock.notify_all()
                return
            buffer += chunk
            while True:
                length_text, colon, rest = buffer.partition(b":")
                if not colon or not length_text.isdigit():
                    break
                length = int(length_text)
                if len(rest) < length + 1:
                    break
                self._dispatch(json.loads(rest[:length]))
                buffer = rest[length + 1:]

    def _dispatch(self, message):
        with self._lock:
            if message.get("event"):
                message["received_at"] = time.monotonic()
                self._events.append(message)
            elif message.get("response"):
                self._responses[message.get("token")] = message
            self._lock.notify_all()

    def command(self, command, params="", timeout=5.0):
        """Run a menu command; returns baresip's response dict (`ok`, `data`)."""
        if self._sock is None:
            raise BaresipError("baresip is not running")
        with self._lock:
            self._next_token += 1
            token = str(self._next_token)
        self._send(command, params, token)
        with self._lock:
            if not self._lock.wait_for(lambda: token in self._responses, timeout):
                raise BaresipError(f"no response to {command!r} within {timeout} s")
            return self._responses.pop(token)

    def _checked(self, command, params=""):
        response = self.command(command, params)
        if not response.get("ok"):
            raise BaresipError(f"{command} {params!r} failed: {response.get('data')}")
        return response

    def dial(self, uri):
        return self._checked("dial", uri)

    def hangup(self):
        return self._checked("hangup")

    def accept(self):
        return self._checked("accept")

    def send_dtmf(self, digits):
        """RFC 4733 telephone-events on the current call (menu's `sndcode`)."""
        return self._checked("sndcode", digits)

    # -- events --------------------------------------------------------------------------

    @property
    def events(self):
        with self._lock:
            return list(self._events)

    def wait_event(self, match, timeout, since=None):
        """First event after the last one returned (or after index `since`) for which
        `match` holds; `match` is an event type string or a predicate on the event dict.
        Raises TimeoutError (with the events seen) when none arrives in time."""
        if isinstance(match, str):
            wanted = match

            def match(event):
                return event.get("type") == wanted

        deadline = time.monotonic() + timeout
        with self._lock:
            start = self._cursor if since is None else since
            while True:
                for index in range(start, len(self._events)):
                    if match(self._events[index]):
                        self._cursor = index + 1
                        return self._events[index]
                start = len(self._events)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.alive:
                    seen = [event.get("type") for event in self._events]
                    raise TimeoutError(f"baresip {self.user}: no matching event; saw {seen}")
                self._lock.wait(remaining)

    def wait_registered(self, timeout=10.0):
        """The first REGISTER_OK since start; BaresipError on REGISTER_FAIL."""
        event = self.wait_event(
            lambda event: event.get("type") in ("REGISTER_OK", "REGISTER_FAIL"), timeout, 0
        )
        if event["type"] != "REGISTER_OK":
            raise BaresipError(f"registration failed: {event}")
        return event

    # -- media ---------------------------------------------------------------------------

    def recordings(self, kind="dec"):
        """WAV files written by sndfile: kind "dec" is what was received, "enc" what was sent."""
        if kind not in ("dec", "enc"):
            raise ValueError("kind is 'dec' or 'enc'")
        return sorted(self.recordings_dir.glob(f"dump-*-{kind}.wav"))
