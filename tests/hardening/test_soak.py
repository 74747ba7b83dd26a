"""Soak: 300 sequential calls through Kamailio — SIPp dials door@, the station
auto-answers (the caller is allowed, and trusted because the INVITE comes from the registrar),
SIPp plays RFC 4733 digits and hangs up with BYE. RSS, open file descriptors and threads of the
firmware process are sampled after every batch; after warm-up they must show no upward trend
(a least-squares slope over the samples, not a timed assert). Calls are short (hold 100 ms) so
the 300 take about 100 s.
"""

import pytest

from tests.hardening.hostile import process_figures
from tests.integration.test_door_station import door_station  # noqa: F401  (a fixture)
from tests.peers.capture import write_dtmf_pcap
from tests.peers.sipp import run_sipp, uac_scenario

pytestmark = pytest.mark.peers

CALLS, BATCH, WARM_UP_BATCHES = 300, 30, 3
# The event log keeps its newest 1000 events in memory (firmware/runtime/eventlog.py), ~1.5 kB
# each with dict overhead; 300 calls do not reach that cap, so RSS may rise by what each call's
# event costs. A leaked call (dialog, transactions, media stream, socket) costs far more.
RSS_SLOPE_LIMIT_KB = 150  # per batch of 30 calls, 5 kB a call: measured ~50-90 (the event log)
# Each call leaves two server transactions (INVITE accepted, BYE completed) for 64*T1 = 32 s
# (RFC 6026, RFC 3261 Timer J); the endpoint keeps at most 256 and answers 503 beyond, which a
# proxy turns into 500. 3 calls/s stays under that: ~190 transactions at steady state.
CALLS_PER_SECOND = 3
SIPP_CALLER = "sip:sipp@127.0.0.1"


def slope(values):
    """Least-squares growth per sample."""
    n = len(values)
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    return num / sum((i - mean_x) ** 2 for i in range(n))


def test_300_calls_with_dtmf_leave_no_growing_resources(
        kamailio, door_station, tmp_path):  # noqa: F811
    station = door_station(answer={"mode": "auto", "allow": [SIPP_CALLER],
                                   "max_duration_s": 60},
                           door={"codes": [{"caller": SIPP_CALLER, "code": "2468"}]})
    pid = station.fw.pid
    workdir = tmp_path / "sipp"
    workdir.mkdir()
    write_dtmf_pcap(workdir / "dtmf.pcap", "13")
    # The ACK and BYE follow the Record-Route the station's 2xx copies (RFC 3261 §12.1.1).
    scenario = uac_scenario(pcap="dtmf.pcap", hold_ms=100)
    samples = [process_figures(pid)]
    completed = 0
    for _ in range(CALLS // BATCH):
        result = run_sipp(scenario, ("127.0.0.1", kamailio.udp_port), service="door",
                          workdir=workdir, calls=BATCH, timeout=60,
                          extra_args=["-l", "1", "-r", str(CALLS_PER_SECOND)])
        assert result.returncode == 0, result.describe()
        completed += int(result.stats.get("SuccessfulCall(C)", BATCH))
        samples.append(process_figures(pid))
    assert station.fw.alive, station.describe()
    calls = station.events("call")
    answered = [e for e in calls if e.get("outcome") == "completed"]
    print(f"soak: {completed} calls completed by SIPp, {len(answered)} completed calls in the "
          f"event log; samples every {BATCH} calls:")
    for key in ("rss_kb", "fds", "threads"):
        series = [s[key] for s in samples]
        print(f"  {key}: {series} (slope after warm-up {slope(series[WARM_UP_BATCHES:]):+.2f}"
              f" per {BATCH} calls)")
    assert completed == CALLS and len(answered) >= CALLS, station.describe()
    steady = samples[WARM_UP_BATCHES:]
    # After warm-up: RSS grows by less than the event log's share on trend, fds and threads not at
    # all (a media thread may be caught mid-exit: compare the ends, not every sample).
    assert slope([s["rss_kb"] for s in steady]) < RSS_SLOPE_LIMIT_KB, samples
    assert steady[-1]["fds"] <= steady[0]["fds"] + 2, samples
    assert steady[-1]["threads"] <= steady[0]["threads"] + 1, samples
