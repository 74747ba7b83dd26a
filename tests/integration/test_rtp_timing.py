"""Timing of the station's outgoing RTP over a 30 s call under CPU load noise (issue 4),
and the station's CPU share during a bidirectional SRTP call.

baresip calls the station directly with SRTP mandatory (SDES); the station auto-answers. Both
send a tone, so the station encrypts, sends, receives, decrypts, decodes and plays audio the
whole time. A busy-looping subprocess competes for the CPU during the call. A loopback capture
(kernel timestamps) of the station's RTP gives the figures; SRTP leaves the RTP header in clear
(RFC 3711 §3.1), so sequence numbers and timestamps can be read.

Asserted: every packet present (sequence numbers continuous), timestamps increasing by exactly
160 per packet, no gap over 40 ms. Printed (quoted in the closing note): p50/p99 of the send
interval, the largest deviation from 20 ms, the RTP clock's drift against the capture clock,
and the CPU share of the station process (utime + stime from /proc/<pid>/stat over ~10 s).
"""

import os
import statistics
import subprocess
import sys
import time

import pytest

from tests.integration.helpers import LiveCapture
from tests.integration.test_calls_sipp import (
    RTP_RANGE,
    rtp_stream,
    start_station,
    station_media_ports,
)
from tests.peers.fixtures import FLAT1_USER

pytestmark = pytest.mark.peers

CALL_S = 30.0
CPU_WINDOW_S = 10.0
MAX_GAP_S = 0.040
SAMPLES_PER_PACKET = 160
CLOCK_RATE = 8000


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds (proc(5) fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def timing_figures(stream):
    """Figures for [(capture ts, rtp tuple)] sorted by capture time."""
    times = [ts for ts, _ in stream]
    intervals = [b - a for a, b in zip(times, times[1:], strict=False)]
    elapsed = times[-1] - times[0]
    first_ts, last_ts = stream[0][1][3], stream[-1][1][3]
    media_elapsed = ((last_ts - first_ts) & 0xFFFFFFFF) / CLOCK_RATE
    return {
        "packets": len(stream),
        "p50_ms": percentile(intervals, 0.50) * 1000,
        "p99_ms": percentile(intervals, 0.99) * 1000,
        "stdev_ms": statistics.pstdev(intervals) * 1000,
        "max_gap_ms": max(intervals) * 1000,
        "max_deviation_ms": max(abs(i - 0.020) for i in intervals) * 1000,
        # Positive: the RTP clock runs ahead of the capture clock.
        "drift_ms_per_min": (media_elapsed - elapsed) / elapsed * 60 * 1000,
        "elapsed_s": elapsed,
    }


def continuity_problems(stream):
    """Human-readable list of sequence/timestamp breaks between consecutive packets."""
    problems = []
    for (_, previous), (ts, current) in zip(stream, stream[1:], strict=False):
        sequence_step = (current[2] - previous[2]) & 0xFFFF
        timestamp_step = (current[3] - previous[3]) & 0xFFFFFFFF
        if sequence_step != 1 or timestamp_step != SAMPLES_PER_PACKET:
            problems.append(f"at {ts:.3f}: seq {previous[2]}→{current[2]}, "
                            f"ts {previous[3]}→{current[3]}")
    return problems


@pytest.fixture
def load_noise():
    """A busy-looping Python process for the length of the test (stopped by its PID)."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        yield busy
    finally:
        busy.kill()
        busy.wait(5)


def test_outgoing_rtp_timing_under_load_and_cpu_share(baresip_factory, tmp_path, load_noise):
    phone = baresip_factory(FLAT1_USER, srtp=True, tone_hz=440)
    station = start_station(tmp_path / "station", allow=(f"sip:{FLAT1_USER}@127.0.0.1",),
                            srtp="mandatory")
    try:
        low, high = station.rtp_low, station.rtp_low + RTP_RANGE - 1
        with LiveCapture(tmp_path / "timing.pcap", expression=f"udp and (portrange {low}-{high} "
                         f"or port {station.port})") as capture:
            phone.dial(f"sip:door@127.0.0.1:{station.port}")
            phone.wait_event("CALL_ESTABLISHED", 10)
            established = time.monotonic()
            time.sleep(2.0)  # let the call settle before the CPU window
            cpu_before, wall_before = cpu_seconds(station.pid), time.monotonic()
            phone_before = cpu_seconds(phone.pid)
            time.sleep(CPU_WINDOW_S)
            cpu_after, wall_after = cpu_seconds(station.pid), time.monotonic()
            phone_after = cpu_seconds(phone.pid)
            time.sleep(max(0.0, CALL_S - (time.monotonic() - established)))
            assert load_noise.poll() is None, "the load-noise process died"
            phone.hangup()
            phone.wait_event("CALL_CLOSED", 5)
            station.wait_log(r"call \S+ ended", timeout=5)
        wall = wall_after - wall_before
        station_share = (cpu_after - cpu_before) / wall * 100
        phone_share = (phone_after - phone_before) / wall * 100

        packets = capture.packets()
        ports = station_media_ports(packets, station)
        assert len(ports) == 1, f"station SDP media ports in the capture: {ports}"
        streams = {}
        for port in ports:
            for ts, rtp in rtp_stream(packets, src_port=port):
                streams.setdefault(rtp[4], []).append((ts, rtp))  # by SSRC
        assert len(streams) == 1, f"expected one outgoing SSRC, saw {sorted(streams)}"
        stream = sorted(next(iter(streams.values())), key=lambda item: item[0])
        figures = timing_figures(stream)
        print(
            f"\nRTP send timing, station → baresip, SRTP, {figures['elapsed_s']:.1f} s call "
            f"with a busy-loop process competing ({os.cpu_count()} CPUs):\n"
            f"  packets {figures['packets']}, interval p50 {figures['p50_ms']:.3f} ms, "
            f"p99 {figures['p99_ms']:.3f} ms, stdev {figures['stdev_ms']:.3f} ms, "
            f"max gap {figures['max_gap_ms']:.3f} ms, "
            f"max deviation from 20 ms {figures['max_deviation_ms']:.3f} ms\n"
            f"  RTP timestamp drift vs capture clock: {figures['drift_ms_per_min']:+.3f} ms/min\n"
            f"CPU share over {wall:.1f} s of a bidirectional SRTP call (utime+stime): "
            f"station {station_share:.2f} % of one core, baresip {phone_share:.2f} %")

        assert figures["packets"] >= (CALL_S - 1) * 50, f"only {figures['packets']} packets"
        problems = continuity_problems(stream)
        assert not problems, f"{len(problems)} breaks in sequence/timestamps: {problems[:10]}"
        assert figures["max_gap_ms"] <= MAX_GAP_S * 1000, \
            f"a gap of {figures['max_gap_ms']:.1f} ms between two packets"
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-3000:]}")
