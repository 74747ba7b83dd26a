"""The bench run: peers, UAs under test, the cases in order, results on disk.

    bench = Bench(out_dir, mode="full" | "quick" | "smoke", only=None)
    results = bench.run()       # writes out_dir/results.json, results.md, rtp_interval.svg

One Kamailio (digest users for both UAs, two peers and one user that never registers) and two
baresip peers (`flat1` plain RTP, `flat2` SDES-SRTP mandatory) serve both UAs, so each figure of
Doorline has a baresip figure from the same run, the same peer and the same machine load.
Everything runs on 127.0.0.1; each process is stopped by PID. Raw files (captures, logs, WAVs)
stay under out_dir/work until the next run.
"""

import datetime
import json
import os
import pathlib
import platform
import shutil
import subprocess
import threading
import time
import traceback

from tests.peers.audio import write_tone_wav
from tests.peers.baresip import Baresip
from tests.peers.fixtures import DOOR_PASSWORD
from tests.peers.kamailio import Kamailio
from tests.peers.process import free_port
from tools.bench import audio, cases, report
from tools.bench.agents import BaresipUA, DoorlineUA
from tools.bench.svg import interval_histogram_svg

MODES = {
    "full": {"cpu_s": 40, "rtp_s": 60, "invite_calls": 200, "button_presses": 20,
             "register_runs": 5, "loss_s": 20, "codec_s": 2.0, "settle_s": 1.0, "warmup_s": 1.0,
             "snapshots": 8},
    # quick: < 2 minutes in all (CPU from schedstat in ns: a 4 s window has no tick error)
    "quick": {"cpu_s": 4, "rtp_s": 6, "invite_calls": 30, "button_presses": 8,
              "register_runs": 3, "loss_s": 4, "codec_s": 0.5, "settle_s": 1.0, "warmup_s": 0.5,
              "snapshots": 3},
    "smoke": {"cpu_s": 1, "rtp_s": 2, "invite_calls": 3, "button_presses": 2,
              "register_runs": 1, "loss_s": 2, "codec_s": 0.1, "settle_s": 0.2, "warmup_s": 0.3,
              "snapshots": 1},
}
# quick mode: case -> cases measured in a second thread meanwhile (< 2 minutes in all)
QUICK_OVERLAP = {"audio": ("camera", "alsa_path", "receive_loss")}
CASES = ("codec", "conference", "start_registered", "calls", "alsa_path", "invite_200",
         "button_invite", "receive_loss", "audio", "camera")
USERS = {"door": DOOR_PASSWORD, "door2": "door2-secret", "flat1": "flat1-secret",
         "flat2": "flat2-secret", "flat4": "flat4-secret", "flat5": "flat5-secret",
         "flat6": "flat6-secret", "absent": "absent-secret"}
# The far end of each call (issue 14, seventh round): two calls measured in the same window
# (Doorline beside baresip, the ALSA path beside the WAV path) each get their own far end, set
# up alike: `flat1`/`flat2` and their twins `flat5`/`flat6`.
PEER_USERS = {("off", False): "flat1", ("mandatory", False): "flat2",
              ("off", True): "flat5", ("mandatory", True): "flat6"}
MIC_TONE_HZ = 440
ALSA_RATE = 48000
# The bench's ALSA "sound card" (the alsa_path case): file plugins over null, no hardware.
# bench_mic reads a 48 kHz mono raw file; bench_speaker writes to /dev/null, as the WAV path
# discards what it receives (no --speaker-dir). See docs/BENCH.md.
ALSA_CONF = """\
pcm.bench_mic {{ type file slave.pcm "null" file "/dev/null" infile "{mic}" format "raw" }}
pcm.bench_speaker {{ type file slave.pcm "null" file "/dev/null" format "raw" }}
"""
# A Pi board with only what the firmware requires; gpiozero's mock pins (GPIOZERO_PIN_FACTORY).
ALSA_BOARD = """\
schema_version = 1
name = "bench-alsa"
kind = "pi"
header = "40pin"
description = "bench only: pc with mock pins and ALSA file plugins at 48 kHz"
[buttons.call]
pin = 17
[leds.status]
pin = 24
[relays.door]
pin = 23
[audio]
capture = "bench_mic"
playback = "bench_speaker"
rate = {rate}
"""


class Bench:
    absent_user = "absent"
    loss = 0.05
    jitter_ms = 60.0
    seed = 7

    def __init__(self, out_dir, mode="full", only=None):
        self.out_dir = out_dir
        self.mode = mode
        self.params = dict(MODES[mode])
        self.only = tuple(only) if only else CASES
        self.workdir = out_dir / "work"
        self.kamailio = None
        self._peers = {}
        self._running = []
        self._counter = 0
        self._lock = threading.Lock()
        self._peer_lock = threading.Lock()
        self.errors = []
        self.mic = None

    # -- set-up ---------------------------------------------------------------------------
    def _prepare(self):
        shutil.rmtree(self.workdir, ignore_errors=True)
        self.workdir.mkdir(parents=True)
        self.mic = self.workdir / "mic-440hz-8k.wav"
        longest = max(self.params["rtp_s"], self.params["cpu_s"] + 1) + 30
        # 8 kHz mono 16-bit: baresip's aufile needs the codec's rate and channel count, so
        # neither UA resamples its microphone.
        write_tone_wav(self.mic, MIC_TONE_HZ, seconds=longest, rate=8000)
        self.kamailio = Kamailio(self.workdir / "kamailio", USERS, tls=False)
        self.kamailio.start()

    def peer(self, srtp, twin=False):
        """The far end for calls: a registered, auto-answering baresip. The same far end for
        both UAs; `twin`: a second one set up alike, for a call in the same window as another
        (every far end takes one call at a time)."""
        user = PEER_USERS[(srtp, twin)]
        with self._peer_lock:  # two cases may ask at once (QUICK_OVERLAP)
            if user not in self._peers:
                phone = Baresip(self.workdir / f"peer-{user}", user=user, password=USERS[user],
                                registrar=("127.0.0.1", self.kamailio.udp_port),
                                srtp=srtp == "mandatory", answer_mode="auto",
                                tone_hz=MIC_TONE_HZ)
                self._peers[user] = phone.start()
                phone.wait_registered(10)
            return self._peers[user]

    def video_peer(self):
        """A registered, auto-answering baresip taking H.264 video (flat4; issue 16)."""
        if "flat4" not in self._peers:
            phone = Baresip(self.workdir / "peer-flat4", user="flat4", password=USERS["flat4"],
                            registrar=("127.0.0.1", self.kamailio.udp_port), answer_mode="auto",
                            tone_hz=MIC_TONE_HZ, video=True)
            self._peers["flat4"] = phone.start()
            phone.wait_registered(10)
        return self._peers["flat4"]

    def _next_dir(self, label):
        with self._lock:  # quick mode measures two cases at once (QUICK_OVERLAP)
            self._counter += 1
            return self.workdir / f"{self._counter:02d}-{label}"

    def alsa_setup(self):
        """(board file, environment) for Doorline on the Pi HAL with the bench's ALSA files."""
        directory = self.workdir / "alsa"
        if not directory.exists():
            directory.mkdir()
            import array
            import math

            second = array.array("h", (int(8000 * math.sin(2 * math.pi * MIC_TONE_HZ * n /
                                                               ALSA_RATE))
                                       for n in range(ALSA_RATE)))
            seconds = int(self.params["warmup_s"] + self.params["cpu_s"]) + 10
            (directory / "mic-48k.raw").write_bytes(second.tobytes() * seconds)
            (directory / "asound.conf").write_text(
                ALSA_CONF.format(mic=directory / "mic-48k.raw"))
            (directory / "board.toml").write_text(ALSA_BOARD.format(rate=ALSA_RATE))
        alsa_dir = pathlib.Path(os.environ.get("ALSA_CONFIG_DIR", "/usr/share/alsa"))
        env = {"ALSA_CONFIG_PATH": f"{alsa_dir / 'alsa.conf'}:{directory / 'asound.conf'}",
               "GPIOZERO_PIN_FACTORY": "mock", "DOORLINE_ALSA_UNTIMED": "1"}
        return directory / "board.toml", env

    def registered_ua(self, kind, srtp="off", rtp_ports=None, button_targets=(),
                      preload_account=False, alsa=None, camera=None, camera_cfg=None):
        if kind == "doorline" and alsa:
            board, env = self.alsa_setup()
            if alsa == "python":
                env["DOORLINE_ALSA_RESAMPLER"] = "python"  # the pure-Python fallback
            ua = DoorlineUA(self._next_dir("doorline-alsa"), registrar=self.kamailio,
                            user="door", password=USERS["door"], srtp=srtp,
                            rtp_ports=rtp_ports, board=board, env=env)
        elif kind == "doorline":
            ua = DoorlineUA(self._next_dir("doorline"), registrar=self.kamailio, user="door",
                            password=USERS["door"], srtp=srtp, rtp_ports=rtp_ports,
                            button_targets=button_targets, mic=self.mic, camera=camera,
                            camera_cfg=camera_cfg)
        else:
            ua = BaresipUA(self._next_dir("baresip"), registrar=self.kamailio, user="door2",
                           password=USERS["door2"], srtp=srtp, rtp_ports=rtp_ports,
                           mic=self.mic, preload_account=preload_account)
        return self._track(ua)

    def direct_ua(self, kind, speaker_dir=None):
        """Direct-IP mode, auto-answer, SIPp (From sip:sipp@127.0.0.1) trusted by source IP."""
        if kind == "doorline":
            ua = DoorlineUA(self._next_dir("doorline-direct"), user="door", mic=self.mic,
                            allow=[f"sip:{cases.SIPP_USER}@127.0.0.1"],
                            speaker_dir=speaker_dir)
        else:
            # plc.so: baresip's packet-loss concealment, so its loss figure is its best.
            modules = ("plc.so",) if speaker_dir is not None else ()
            ua = BaresipUA(self._next_dir("baresip-direct"), user="door2", mic=self.mic,
                           modules=modules, record=speaker_dir is not None)
        return self._track(ua)

    def _track(self, ua):
        ua.start()
        self._running.append(ua)
        return ua

    def stop(self, ua):
        if ua in self._running:
            self._running.remove(ua)
        ua.stop()

    def rtp_port_base(self, kind, taken=()):
        """A free, even block of 20 ports for one UA's RTP/RTCP (the capture filter uses it),
        apart from the blocks starting at `taken` (handed out, not yet bound)."""
        for _ in range(200):
            low = free_port(("udp",), 20000, 29960) & ~1
            if any(abs(low - other) < 20 for other in taken):
                continue
            if all(_udp_free(port) for port in range(low, low + 20)):
                return low
        raise RuntimeError("no free block of 20 UDP ports for RTP")

    def guard(self, label, function, *args):
        """Run one measurement; an exception becomes {"error": ...} (and a note in errors)."""
        try:
            return function(*args)
        except Exception as error:  # a broken side must not stop the other measurements
            reason = f"{type(error).__name__}: {str(error).strip()[:600]}"
            self.errors.append({"case": label, "error": reason,
                                "traceback": traceback.format_exc()[-2000:]})
            return {"error": reason}

    # -- the run --------------------------------------------------------------------------
    def run(self):
        started = time.time()
        results = {"meta": self._meta(), "cases": {}}
        runners = {"codec": cases.codec_throughput, "conference": cases.conference_mixing,
                   "start_registered": cases.start_to_registered,
                   "calls": cases.call_cases, "alsa_path": cases.alsa_path,
                   "invite_200": cases.invite_to_200,
                   "button_invite": cases.button_to_invite,
                   "receive_loss": cases.receive_under_loss,
                   "audio": audio.audio_cases, "camera": cases.camera_cases}
        # Quick mode only: these cases run in a second thread while the case named as the
        # key runs (the bench sleeps through its windows; every process is
        # measured on its own counters). The full mode runs each case alone.
        overlap = QUICK_OVERLAP if self.mode == "quick" else {}
        beside = {name for names in overlap.values() for name in names}

        def measure(name):
            began = time.monotonic()
            print(f"bench: {name} ...", flush=True)
            try:
                results["cases"][name] = runners[name](self)
            except Exception as error:  # in the second thread: kept as the case's error
                results["cases"][name] = {"error": f"{type(error).__name__}: {error}"}
                if threading.current_thread() is threading.main_thread():
                    raise
            results["cases"][name]["elapsed_s"] = round(time.monotonic() - began, 1)

        try:
            self._prepare()
            for name in self.only:
                if name in beside and any(key in self.only for key, names in overlap.items()
                                          if name in names):
                    continue  # runs beside its key case
                others = [other for other in overlap.get(name, ()) if other in self.only]
                thread = None
                if others:
                    thread = threading.Thread(
                        target=lambda others=others: [measure(other) for other in others],
                        name="bench-beside", daemon=True)
                    thread.start()
                try:
                    measure(name)
                finally:
                    if thread is not None:
                        thread.join()
        finally:
            for ua in list(self._running):
                self.stop(ua)
            for phone in self._peers.values():
                phone.stop()
            if self.kamailio is not None:
                self.kamailio.close()
        results["meta"]["elapsed_s"] = round(time.time() - started, 1)
        results["errors"] = self.errors
        results["figures"] = report.figures(results)
        self._write(results)
        return results

    def _meta(self):
        return {
            "mode": self.mode, "params": self.params,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "host": platform.node(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "kernel": platform.release(), "baresip": _version(["baresip", "-h"], "baresip"),
            "loadavg_start": os.getloadavg(),
        }

    def _write(self, results):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        series = []
        call = results["cases"].get("calls", {})
        for kind in ("doorline", "baresip"):
            intervals = call.get(kind, {}).get("off", {}).get("rtp_intervals_ms")
            series.append((kind, intervals or []))
        (self.out_dir / "rtp_interval.svg").write_text(interval_histogram_svg(series))
        (self.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        (self.out_dir / "results.md").write_text(report.markdown(results))


def _udp_free(port):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _version(argv, name):
    try:
        text = subprocess.run(argv, capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in text.splitlines():
        if name in line.lower() and any(ch.isdigit() for ch in line):
            return " ".join(line.split()[:2])
    return None
