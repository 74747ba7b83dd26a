"""The measurements. Each case takes the `Bench` (tools/bench/harness.py) and returns a dict per
UA ("doorline", "baresip") of raw numbers, or `{"error": reason}` for a side that could not be
measured. Nothing is estimated: a number comes from /proc, a kernel-timestamped loopback capture,
a WAV the UA wrote, or the UA's own stats.
"""

import os
import socket
import threading
import time

from tests.integration.helpers import LiveCapture
from tests.peers.audio import read_wav
from tests.peers.process import free_port, wait_until
from tests.peers.sipp import run_sipp, start_sipp, uac_scenario
from tools.bench import rtpsender, stats, wire
from tools.bench.agents import BenchError, context_switches, cpu_seconds, memory_kb

SIPP_USER = "sipp"  # From user of tests/peers/sipp.py scenarios
CODEC_FRAME = 160


def _mb(kb):
    return round(kb / 1024.0, 2)


def _sides(bench, measure, *args):
    """Run `measure(bench, kind, *args)` for Doorline then baresip; errors become results."""
    out = {}
    for kind in ("doorline", "baresip"):
        out[kind] = bench.guard(f"{measure.__name__}[{kind}]", measure, bench, kind, *args)
    return out


# Longest a call waits for the others of its window (each has set up its UA and call by then).
WINDOW_WAIT_S = 60


def _same_window(bench, jobs):
    """Run `(label, function, args)` jobs at the same time, a thread each, their CPU windows
    aligned: each function gets a `threading.Barrier` as its last argument and waits on it
    (`_enter_window`) once its call is established, so every window starts together and shares
    the machine's load of that moment (issue 14: two CPU shares measured minutes apart moved by
    ±25 % against each other on this shared machine). A job that fails breaks the barrier: the
    others then measure alone (`same_window: false`) instead of waiting. Results (or
    `{"error": ...}`, as `bench.guard`) in the jobs' order."""
    window = threading.Barrier(len(jobs))
    results = [None] * len(jobs)

    def run(index, label, function, args):
        try:
            results[index] = bench.guard(label, function, *args, window)
        finally:
            if results[index] is None or "error" in results[index]:
                window.abort()

    threads = [threading.Thread(target=run, args=(index, *job), daemon=True,
                                name=f"bench-window-{index}")
               for index, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=900)  # each job's own waits are bounded; this only stops a hang
    return [result if result is not None else {"error": "did not finish"} for result in results]


def _enter_window(window):
    """Wait until every call of the window is established; True if they all were (None: the
    call is measured alone by design)."""
    if window is None:
        return None
    try:
        window.wait(timeout=WINDOW_WAIT_S)
        return True
    except threading.BrokenBarrierError:
        return False


# -- a steady call: CPU, RTP send interval, memory ------------------------------------------

def call_cases(bench):
    """CPU share (SRTP off and mandatory), RTP pacing (from the SRTP-off call) and memory.
    Doorline's call and baresip's call run at the same time, each to its own far end set up
    alike (`Bench.peer`), with their CPU windows aligned (`_same_window`)."""
    results = {"doorline": {}, "baresip": {}}
    for srtp in ("off", "mandatory"):
        peers = {"doorline": bench.peer(srtp), "baresip": bench.peer(srtp, twin=True)}
        low = bench.rtp_port_base("doorline")
        ports = {"doorline": low, "baresip": bench.rtp_port_base("baresip", taken=(low,))}
        kinds = ("doorline", "baresip")
        pair = _same_window(bench, [(f"call[{kind},{srtp}]", steady_call,
                                     (bench, kind, srtp, ports[kind], peers[kind]))
                                    for kind in kinds])
        for kind, result in zip(kinds, pair, strict=True):
            results[kind][srtp] = result
    return results


def steady_call(bench, kind, srtp, low, peer, window=None):
    ua = bench.registered_ua(kind, srtp=srtp, rtp_ports=(low, low + 19))
    out = {"peer": peer.user}
    try:
        ua.wait_ready(10)
        time.sleep(bench.params["settle_s"])
        idle = memory_kb(ua.pid)
        out["idle_rss_kb"], out["idle_hwm_kb"] = idle["VmRSS"], idle["VmHWM"]
        capture_s = bench.params["rtp_s"] if srtp == "off" else 0
        duration = max(bench.params["warmup_s"] + bench.params["cpu_s"], capture_s)
        pcap = bench.workdir / f"rtp-{kind}-{srtp}.pcap"
        with LiveCapture(pcap, expression=f"udp and src portrange {low}-{low + 19}"):
            ua.call(f"sip:{peer.user}@127.0.0.1:{bench.kamailio.udp_port}")
            ua.wait_established(10)
            out["same_window"] = _enter_window(window)
            began = time.monotonic()
            time.sleep(bench.params["warmup_s"])
            cpu_before, peer_before = cpu_seconds(ua.pid), cpu_seconds(peer.pid)
            switches_before = context_switches(ua.pid)
            wall_before = time.monotonic()
            time.sleep(bench.params["cpu_s"])
            cpu_after, peer_after = cpu_seconds(ua.pid), cpu_seconds(peer.pid)
            switches_after = context_switches(ua.pid)
            wall = time.monotonic() - wall_before
            during = memory_kb(ua.pid)
            time.sleep(max(0.0, duration - (time.monotonic() - began)))
            ua.hangup()
            ua.wait_idle(5)
        time.sleep(bench.params["settle_s"])
        after = memory_kb(ua.pid)  # what the call left behind (issue 14; JSON only)
        out.update({
            "cpu_window_s": round(wall, 3),
            "cpu_seconds": round(cpu_after - cpu_before, 3),
            "cpu_percent": 100.0 * (cpu_after - cpu_before) / wall,
            "peer_cpu_percent": 100.0 * (peer_after - peer_before) / wall,
            "wakeups_per_s": (switches_after - switches_before) / wall,
            "cpu_us_per_wakeup": 1e6 * (cpu_after - cpu_before)
            / max(1, switches_after - switches_before),
            "call_rss_kb": during["VmRSS"], "call_hwm_kb": during["VmHWM"],
            "after_call_rss_kb": after["VmRSS"],
        })
        stream = stats.rtp_stream(wire.read_segments(pcap))
        out["rtp_packets"] = len(stream)
        if capture_s:
            intervals = stats.send_intervals(stream)
            out["rtp_intervals_ms"] = [round(value, 4) for value in intervals]
            out["rtp"] = stats.interval_figures(intervals)
            out["rtp"]["drift_ms_per_min"] = stats.timestamp_drift_ms_per_min(stream)
            out["rtp"]["capture_s"] = stream[-1][0] - stream[0][0] if stream else 0.0
        if not stream:
            raise BenchError(f"no RTP from {kind} in the capture ({pcap.name})")
    finally:
        bench.stop(ua)
    return out


# -- the Pi's audio path: ALSA at 48 kHz beside the 8 kHz WAV (Doorline only) ---------------

def alsa_path(bench):
    return {"doorline": bench.guard("alsa_path[doorline]", _alsa_path, bench),
            "baresip": {"na": "compares two audio paths of Doorline (baresip has no Pi HAL)"}}


def _alsa_path(bench):
    from hal import libasound

    try:
        libasound.library()  # hal/libasound.py: libasound2 through ctypes, nothing to install
    except libasound.AlsaError as error:
        raise BenchError(f"no usable libasound: {error}") from None
    out = {}
    # wav: pc-sim, 8 kHz WAV; alsa: the Pi HAL through libasound at 48 kHz, converting in C;
    # both at the same time, each to its own far end (their ratio is the row: measured in the
    # same window it no longer carries the machine's drift between two windows).
    # alsa_python: the same with the pure-Python Resampler (the fallback, and the old path),
    # alone afterwards (it takes ~20 % of a core: it would weigh on the other two).
    pair = _same_window(bench, [("alsa_path[wav]", _alsa_call, (bench, "wav", bench.peer("off"))),
                                ("alsa_path[alsa]", _alsa_call,
                                 (bench, "alsa", bench.peer("off", twin=True)))])
    for path, figures in zip(("wav", "alsa"), pair, strict=True):
        if "error" in figures:
            raise BenchError(f"{path} call: {figures['error']}")
        out.update({f"{path}_{name}": value for name, value in figures.items()})
    out["same_window"] = all([out.pop("wav_same_window"), out.pop("alsa_same_window")])
    try:
        out.update({f"alsa_python_{name}": value for name, value in
                    _alsa_call(bench, "alsa_python", bench.peer("off"), None).items()
                    if name != "same_window"})
    except (BenchError, OSError) as error:
        # The old path is only the comparison: its failure must not hide the others.
        out["alsa_python_error"] = f"{type(error).__name__}: {error}"[:300]
    out["ratio_to_wav"] = out["alsa_cpu_percent"] / max(out["wav_cpu_percent"], 1e-9)
    if "alsa_python_cpu_percent" in out:
        out["python_ratio_to_wav"] = out["alsa_python_cpu_percent"] / max(
            out["wav_cpu_percent"], 1e-9)
    return out


def _alsa_call(bench, path, peer, window):
    """One call of the ALSA row: CPU share and wake-ups; for the ALSA paths also the
    converter and buffers the HAL logged."""
    alsa = {"wav": None, "alsa": "c", "alsa_python": "python"}[path]
    ua = bench.registered_ua("doorline", alsa=alsa)
    out = {}
    try:
        ua.wait_ready(10)
        time.sleep(bench.params["settle_s"])
        out.update(_call_cpu(bench, ua, peer, window))
        if alsa:
            lines = [line for line in ua.log.splitlines() if "conversion:" in line]
            out["conversion"] = lines[-1].split("conversion:", 1)[1].strip() \
                if lines else "not logged"
            buffers = [line for line in ua.log.splitlines() if "audio buffers:" in line]
            out["buffers"] = buffers[-1].split("audio buffers:", 1)[1].strip() \
                if buffers else "not logged"
    finally:
        bench.stop(ua)
    return out


def _call_cpu(bench, ua, peer, window=None):
    """One call to `peer`: CPU share and wake-ups of the UA over the case's window (aligned
    with the other calls of `window`, if any)."""
    ua.call(f"sip:{peer.user}@127.0.0.1:{bench.kamailio.udp_port}")
    ua.wait_established(10)
    same_window = _enter_window(window)
    time.sleep(bench.params["warmup_s"])
    cpu_before, switches_before = cpu_seconds(ua.pid), context_switches(ua.pid)
    wall_before = time.monotonic()
    time.sleep(bench.params["cpu_s"])
    cpu_after, switches_after = cpu_seconds(ua.pid), context_switches(ua.pid)
    wall = time.monotonic() - wall_before
    ua.hangup()
    ua.wait_idle(5)
    return {"cpu_percent": 100.0 * (cpu_after - cpu_before) / wall,
            "wakeups_per_s": (switches_after - switches_before) / wall,
            "same_window": same_window}


# -- INVITE → 200 OK (auto-answer, direct IP) ------------------------------------------------

def invite_to_200(bench):
    return _sides(bench, _invite_to_200)


def _invite_to_200(bench, kind):
    ua = bench.direct_ua(kind)
    try:
        ua.wait_ready(10)
        calls = bench.params["invite_calls"]
        pcap = bench.workdir / f"invite-{kind}.pcap"
        with LiveCapture(pcap, udp_ports=[ua.sip_port]):
            result = run_sipp(uac_scenario(hold_ms=0), ("127.0.0.1", ua.sip_port),
                              calls=calls, service=ua.user, workdir=bench.workdir / "sipp",
                              extra_args=["-l", "1", "-r", "20"], timeout=30 + calls)
        latencies = wire.invite_to_200_ms(wire.read_segments(pcap), ua.sip_port)
        if not latencies:
            raise BenchError(f"no INVITE→200 pair captured; {result!r}")
        out = {"calls": calls, "sipp_successful": result.successful,
               "sipp_failed": result.failed, "answered": len(latencies),
               "latency_ms": stats.summary(latencies),
               "samples_ms": [round(value, 4) for value in latencies]}
        if len(latencies) < calls:
            out["note"] = f"only {len(latencies)} of {calls} INVITEs were answered with 200"
        return out
    finally:
        bench.stop(ua)


# -- button press → INVITE on the wire (Doorline only) --------------------------------------

def button_to_invite(bench):
    return {"doorline": bench.guard("button[doorline]", _button_to_invite, bench),
            "baresip": {"na": "no button: baresip has no simulated board"}}


def _button_to_invite(bench):
    target = f"sip:{bench.absent_user}@127.0.0.1"
    ua = bench.registered_ua("doorline", button_targets=[target])
    presses = bench.params["button_presses"]
    try:
        ua.wait_ready(10)
        pcap = bench.workdir / "button.pcap"
        expression = f"(tcp dst port {ua.web_port}) or (udp port {bench.kamailio.udp_port})"
        with LiveCapture(pcap, expression=expression):
            for _ in range(presses):
                ua.press(100)
                # The target is not registered: the registrar answers 480 at once, so the
                # call may be over before the first status poll sees it.
                wait_until(lambda: ua.calls(), 0.3, 0.01)
                ua.wait_idle(10)
                time.sleep(0.3)  # the button is released after 100 ms; leave it settled
        segments = wire.read_segments(pcap)
    finally:
        bench.stop(ua)
    presses_at = [s.ts for s in segments if s.proto == "tcp" and s.dst[1] == ua.web_port
                  and s.payload.startswith(b"POST /api/sim/button")]
    invites = [s.ts for s in segments if s.proto == "udp" and s.src[1] == ua.sip_port
               and s.payload.startswith(b"INVITE ")]
    latencies = []
    for index, pressed in enumerate(presses_at):
        until = presses_at[index + 1] if index + 1 < len(presses_at) else float("inf")
        following = [ts for ts in invites if pressed <= ts < until]
        if following:
            latencies.append((following[0] - pressed) * 1000.0)
    if not latencies:
        raise BenchError(f"{len(presses_at)} presses and {len(invites)} INVITEs captured, "
                         "no press followed by an INVITE")
    return {"presses": presses, "captured_presses": len(presses_at),
            "with_invite": len(latencies), "latency_ms": stats.summary(latencies),
            "samples_ms": [round(value, 4) for value in latencies]}


# -- process start → 200 OK to REGISTER ------------------------------------------------------

def start_to_registered(bench):
    return _sides(bench, _start_to_registered)


def _start_to_registered(bench, kind):
    """Doorline: the first start with a new configuration (no start plan yet:
    runtime/faststart.py) is measured apart (`first_start_s`); the goal row is the station's
    usual start, a restart with the configuration unchanged (a reboot, a service restart),
    measured as restarts of that same station. baresip has one kind of start: each run is a
    new one, as before."""
    seconds, first = [], None
    registrar_port = bench.kamailio.udp_port
    runs = bench.params["register_runs"]
    ua = None
    try:
        for run in range(runs + (1 if kind == "doorline" else 0)):
            pcap = bench.workdir / f"register-{kind}-{run}.pcap"
            with LiveCapture(pcap, udp_ports=[registrar_port]):
                if ua is None or kind != "doorline":
                    ua = bench.registered_ua(kind, preload_account=True)  # inside the capture
                else:
                    ua.start()  # the same station, configuration and state directory
                try:
                    def registered(ua=ua, pcap=pcap):
                        return wire.first_register_ok(wire.read_segments(pcap), registrar_port,
                                                      ua.sip_port, ua.started_at) is not None

                    ok = wait_until(registered, 10.0, 0.02)
                    if ok and kind == "doorline" and run == 0:
                        # as a station that keeps running: it writes its start plan once SIP
                        # runs (stopped at once, it would die before that)
                        plan = os.path.join(ua.firmware.state_dir, "sip-start.plan")
                        wait_until(lambda plan=plan: os.path.exists(plan), 10.0, 0.02)
                finally:
                    if kind == "doorline":
                        ua.stop()
                    else:
                        bench.stop(ua)
            answered = wire.first_register_ok(wire.read_segments(pcap), registrar_port,
                                              ua.sip_port, ua.started_at)
            if not ok or answered is None:
                raise BenchError(f"run {run}: no 200 to REGISTER within 10 s")
            if kind == "doorline" and first is None:
                first = answered - ua.started_at
            else:
                seconds.append(answered - ua.started_at)
    finally:
        if ua is not None:
            bench.stop(ua)
    out = {"runs": len(seconds), "seconds": [round(value, 5) for value in seconds],
           "median_s": stats.median(seconds)}
    if first is not None:
        out["first_start_s"] = round(first, 5)
    else:  # shown for the rows of this side that have no number (the first-start row)
        out["na"] = "baresip has no start plan: each of its starts is the same"
    return out


# -- receive path under loss and jitter -----------------------------------------------------

def receive_under_loss(bench):
    return _sides(bench, _receive_under_loss)


def _receive_under_loss(bench, kind):
    seconds = bench.params["loss_s"]
    speaker_dir = bench.workdir / f"speaker-{kind}"
    speaker_dir.mkdir(parents=True, exist_ok=True)
    ua = bench.direct_ua(kind, speaker_dir=speaker_dir)
    media_port = free_port(("udp",), 10000, 19998)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out = {"seconds": seconds, "loss": bench.loss, "jitter_ms": bench.jitter_ms,
           "seed": bench.seed}
    try:
        sock.bind(("127.0.0.1", media_port))
        ua.wait_ready(10)
        hold_ms = int((seconds + 3) * 1000)
        scenario = uac_scenario(hold_ms=hold_ms).replace("m=audio [media_port]",
                                                         f"m=audio {media_port}")
        sipp = start_sipp(scenario, ("127.0.0.1", ua.sip_port), service=ua.user,
                          workdir=bench.workdir / "sipp", timeout=seconds + 20)
        source = rtpsender.wait_for_media(sock, 10.0)
        if source is None:
            sipp.stop()
            raise BenchError(f"{kind} sent no RTP to the offered port; "
                             f"{sipp.wait(5).describe()[:600]}")
        plan = rtpsender.impaired_schedule(seconds, bench.loss, bench.jitter_ms, bench.seed)
        out["packets_planned"] = int(seconds / rtpsender.FRAME_S)
        concealed = []
        if kind == "doorline":
            poller = _StatsPoller(ua)
            poller.start()
        out["packets_sent"] = rtpsender.send_stream(sock, source, plan)
        if kind == "doorline":
            concealed = poller.stop()
        result = sipp.wait(seconds + 25)
        if result.successful != 1:
            out["sipp"] = repr(result)
        if kind == "doorline":
            ua.wait_idle(5)
    finally:
        sock.close()
        bench.stop(ua)
    wavs = speaker_dir.glob("*.wav") if kind == "doorline" else ua.phone.recordings("dec")
    wav = max(wavs, key=lambda path: path.stat().st_mtime, default=None)
    if wav is None:
        raise BenchError(f"{kind} wrote no WAV of the received audio")
    samples, rate = read_wav(wav)
    out["wav"] = os.fspath(wav)
    out.update(stats.silence_gaps(samples, rate))
    if kind == "doorline":
        last = concealed[-1] if concealed else {}
        out["concealed"] = last.get("concealed")
        out["lost"] = last.get("lost")
        out["late"] = last.get("late")
        out["stats"] = last
    else:
        out["concealed"] = None
        out["na"] = "baresip exposes no concealment counter (its plc.so is loaded)"
    return out


class _StatsPoller:
    """Reads the Doorline call's stats from GET /api/status while the stream is sent (the
    status no longer lists the call once it is over)."""

    def __init__(self, ua):
        import threading
        self.ua = ua
        self.seen = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="bench-stats")

    def start(self):
        self._thread.start()

    def _run(self):
        while not self._stop.wait(0.5):
            try:
                stats_now = [s for s in self.ua.call_stats() if s]
            except (OSError, BenchError):
                continue
            if stats_now:
                self.seen.append(stats_now[0])

    def stop(self):
        time.sleep(0.6)  # one more reading after the last packet
        self._stop.set()
        self._thread.join(2.0)
        return self.seen


# -- conference mixing (issue 20) ---------------------------------------------------------

def conference_mixing(bench):
    return {"doorline": bench.guard("conference[doorline]", _conference_mixing, bench),
            "baresip": {"na": "baresip has no local conference mixer to compare"}}


def _conference_mixing(bench):
    """CPU of runtime/conference.py's Mixer for 3 parties (the door + 2 calls) and 4: per 20 ms
    tick every call's thread hands in what it heard and mixes what it sends, as media.py does."""
    from firmware.codecs.g711 import ulaw_decode
    from firmware.runtime.conference import Mixer

    pcm = ulaw_decode(rtpsender.tone_frame())
    out = {"frame_samples": CODEC_FRAME}
    for parties in (3, 4):
        mixer = Mixer()
        members = ["call%d" % i for i in range(parties - 1)]
        for member in members:
            mixer.join(member)
        ticks = 0
        cpu_start = time.process_time()
        while time.process_time() - cpu_start < bench.params["codec_s"]:
            for _ in range(50):
                for member in members:
                    mixer.heard(member, pcm)
                for member in members:
                    mixer.mix_for(member, pcm)
            ticks += 50
        cpu = time.process_time() - cpu_start
        per_tick_ms = cpu / ticks * 1000.0
        out["parties_%d" % parties] = {
            "ticks": ticks, "cpu_s": round(cpu, 4), "ms_per_tick": round(per_tick_ms, 4),
            "core_percent": round(per_tick_ms / 20.0 * 100.0, 3)}
    return out


# -- G.711 throughput ---------------------------------------------------------------------

def codec_throughput(bench):
    return {"doorline": bench.guard("codec[doorline]", _codec_throughput, bench),
            "baresip": {"na": "baresip's G.711 lives inside libbaresip; not measured alone"}}


def _codec_throughput(bench):
    from firmware.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

    pcm = ulaw_decode(rtpsender.tone_frame())  # one 20 ms frame of 16-bit PCM
    out = {"frame_samples": CODEC_FRAME}
    for name, encode, decode in (("pcmu", ulaw_encode, ulaw_decode),
                                 ("pcma", alaw_encode, alaw_decode)):
        frames = 0
        cpu_start = time.process_time()
        wall_start = time.perf_counter()
        while time.process_time() - cpu_start < bench.params["codec_s"]:
            for _ in range(200):
                decode(encode(pcm))
            frames += 200
        cpu = time.process_time() - cpu_start
        out[name] = {"frames": frames, "cpu_s": round(cpu, 4),
                     "wall_s": round(time.perf_counter() - wall_start, 4),
                     "frames_per_cpu_s": frames / cpu}
    return out


# -- the camera (issue 16, Doorline only) ---------------------------------------------------

CAMERA_CFG = {"width": 640, "height": 480, "fps": 15}


def camera_cases(bench):
    return {"doorline": bench.guard("camera[doorline]", _camera, bench),
            "baresip": {"na": "the station's camera; baresip has none to compare"}}


def _idle(bench, ua):
    """CPU share and RSS of an idle, registered UA over the case's window."""
    time.sleep(bench.params["settle_s"])
    cpu_before, wall_before = cpu_seconds(ua.pid), time.monotonic()
    time.sleep(bench.params["cpu_s"])
    wall = time.monotonic() - wall_before
    return 100.0 * (cpu_seconds(ua.pid) - cpu_before) / wall, memory_kb(ua.pid)["VmRSS"]


def _camera(bench):
    out = {}
    # idle: the same station without a camera, then with the pattern camera configured, unused
    for label, camera in (("none", None), ("camera", "pattern")):
        ua = bench.registered_ua("doorline", camera=camera, camera_cfg=CAMERA_CFG)
        try:
            ua.wait_ready(10)
            out[f"idle_{label}_cpu_percent"], out[f"idle_{label}_rss_kb"] = _idle(bench, ua)
            if camera is None:
                continue
            out["snapshot_latency_ms"] = _snapshot_latency(bench, ua)
            out.update(_video_call(bench, ua))
        finally:
            bench.stop(ua)
    out["idle_rss_ratio"] = out["idle_camera_rss_kb"] / out["idle_none_rss_kb"]
    return out


def _snapshot_latency(bench, ua):
    """Button press (the request leaving) → the ring's JPEG on disk (its mtime), the camera
    closed before each press (cold: nobody was looking), in ms."""
    import pathlib

    directory = pathlib.Path(ua.firmware.state_dir) / "snapshots"
    latencies = []
    for _ in range(bench.params["snapshots"]):
        time.sleep(3.5)  # the camera closes 3 s after its last user (runtime/camera.py)
        before = set(directory.glob("*.jpg")) if directory.exists() else set()
        pressed = time.time()
        ua.press(100)
        if not wait_until(lambda old=before: directory.exists() and
                          set(directory.glob("*.jpg")) - old, 5.0, 0.005):
            raise BenchError(f"no snapshot on disk 5 s after a press; log: {ua._tail()}")
        (new,) = set(directory.glob("*.jpg")) - before
        latencies.append((new.stat().st_mtime_ns / 1e9 - pressed) * 1000)
    return stats.summary(latencies)


def _video_call(bench, ua):
    """A 640x480 @ 15 fps video call to baresip: CPU, RSS, capture → RTP delay."""
    peer = bench.video_peer()
    ua.call(f"sip:{peer.user}@127.0.0.1:{bench.kamailio.udp_port}")
    ua.wait_established(10)
    if not wait_until(lambda: any("video" in s for s in ua.call_stats()), 5.0, 0.05):
        raise BenchError(f"the call has no video: {ua.call_stats()}; log: {ua._tail()}")
    time.sleep(bench.params["warmup_s"])
    cpu_before, wall_before = cpu_seconds(ua.pid), time.monotonic()
    time.sleep(bench.params["cpu_s"])
    wall = time.monotonic() - wall_before
    cpu = 100.0 * (cpu_seconds(ua.pid) - cpu_before) / wall
    rss = memory_kb(ua.pid)["VmRSS"]
    video = [s["video"] for s in ua.call_stats() if "video" in s][0]
    ua.hangup()
    ua.wait_idle(5)
    delay = video.get("capture_to_rtp_ms", {})
    return {"video_call_cpu_percent": cpu, "video_call_rss_kb": rss,
            "video_frames_sent": video.get("frames_sent"),
            "video_frames_decoded": video.get("frames_decoded"),
            "capture_to_rtp_ms_median": delay.get("median"),
            "capture_to_rtp_ms_max": delay.get("max")}
