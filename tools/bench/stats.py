"""Plain-Python statistics for the bench: percentiles, RTP pacing, drift and audio gaps.

Nothing here starts processes or reads clocks; every function takes numbers and returns numbers,
so the analysis is unit-testable on synthetic data.

Public API:
- `percentile(values, q) -> float | None`: linear interpolation between closest ranks (q in 0-100).
- `median(values)`, `summary(values) -> dict` (count, min, p50, p99, max, mean; None when empty).
- `rtp_stream(packets, payload_types=(0, 8)) -> list[(capture_ts, rtp_timestamp, seq)]`: the
  busiest RTP stream (by source port and SSRC) among captured datagrams, in capture order.
- `send_intervals(stream, skip_seconds=1.0) -> list[float]`: ms between consecutive packets,
  after a warm-up.
- `interval_figures(intervals) -> dict`: p50, p99, p99 and max of |interval - 20 ms|, stdev.
- `timestamp_drift_ms_per_min(stream, clock_rate=8000) -> float | None`: least-squares slope of
  RTP time against capture time, as milliseconds gained (+) or lost (-) per minute.
- `silence_gaps(samples, rate, window_ms=5.0, threshold=0.1) -> dict`: the longest run of
  low-energy windows between the first and the last loud one (a window is "low" below
  `threshold` × the median window RMS of the signal), how many runs exceed 60 ms, and
  `signal_s`, the span from the first to the last loud window (proof the stream was heard).
"""

import math
import struct

GAP_LIMIT_MS = 60.0
RTP_NOMINAL_MS = 20.0


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def median(values):
    return percentile(values, 50)


def summary(values):
    values = list(values)
    if not values:
        return {"count": 0, "min": None, "p50": None, "p99": None, "max": None, "mean": None}
    return {"count": len(values), "min": min(values), "p50": percentile(values, 50),
            "p99": percentile(values, 99), "max": max(values),
            "mean": sum(values) / len(values)}


def _rtp_header(payload):
    if len(payload) < 12 or payload[0] >> 6 != 2:
        return None
    marker_pt, seq, timestamp, ssrc = struct.unpack_from("!BHII", payload, 1)
    return marker_pt & 0x7F, seq, timestamp, ssrc


def rtp_stream(packets, payload_types=(0, 8)):
    streams = {}
    for packet in packets:
        header = _rtp_header(packet.payload)
        if header is None or header[0] not in payload_types:
            continue
        _, seq, timestamp, ssrc = header
        streams.setdefault((packet.src, ssrc), []).append((packet.ts, timestamp, seq))
    if not streams:
        return []
    busiest = max(streams.values(), key=len)
    return sorted(busiest)


def send_intervals(stream, skip_seconds=1.0):
    if not stream:
        return []
    start = stream[0][0] + skip_seconds
    kept = [entry for entry in stream if entry[0] >= start]
    return [(later[0] - earlier[0]) * 1000.0
            for earlier, later in zip(kept, kept[1:], strict=False)]


def interval_figures(intervals):
    if not intervals:
        return {"count": 0, "p50_ms": None, "p99_ms": None, "p99_deviation_ms": None,
                "max_deviation_ms": None, "stdev_ms": None}
    mean = sum(intervals) / len(intervals)
    variance = sum((value - mean) ** 2 for value in intervals) / len(intervals)
    return {
        "count": len(intervals),
        "p50_ms": percentile(intervals, 50),
        "p99_ms": percentile(intervals, 99),
        # Issue 14's "send interval p99 deviation": the 99th percentile of |interval - 20 ms|
        # (early and late alike), which p99 of the interval alone does not see.
        "p99_deviation_ms": percentile([abs(value - RTP_NOMINAL_MS) for value in intervals], 99),
        "max_deviation_ms": max(abs(value - RTP_NOMINAL_MS) for value in intervals),
        "stdev_ms": math.sqrt(variance),
    }


def _unwrapped(timestamps):
    # RTP timestamps are 32-bit and wrap (RFC 3550 §5.1); unwrap relative to the first one.
    out = []
    offset = 0
    previous = None
    for value in timestamps:
        if previous is not None:
            step = (value - previous) & 0xFFFFFFFF
            offset += step - 0x100000000 if step >= 0x80000000 else step
        out.append(offset)
        previous = value
    return out


def timestamp_drift_ms_per_min(stream, clock_rate=8000):
    if len(stream) < 3:
        return None
    capture = [entry[0] - stream[0][0] for entry in stream]
    media = [value / clock_rate for value in _unwrapped([entry[1] for entry in stream])]
    count = len(capture)
    mean_x = sum(capture) / count
    mean_y = sum(media) / count
    spread = sum((x - mean_x) ** 2 for x in capture)
    if spread <= 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(capture, media, strict=True)) / spread
    return (slope - 1.0) * 60000.0


def silence_gaps(samples, rate, window_ms=5.0, threshold=0.1):
    size = max(1, int(rate * window_ms / 1000.0))
    levels = []
    for start in range(0, len(samples) - size + 1, size):
        chunk = samples[start:start + size]
        levels.append(math.sqrt(sum(value * value for value in chunk) / size))
    loud_reference = median([level for level in levels if level > 1e-4]) or 0.0
    result = {"window_ms": window_ms, "audio_s": len(samples) / float(rate), "signal_s": 0.0,
              "longest_gap_ms": None, "gaps_over_60ms": None, "reference_rms": loud_reference}
    if loud_reference <= 0.0:
        return result
    floor = loud_reference * threshold
    loud = [index for index, level in enumerate(levels) if level >= floor]
    longest = 0
    over = 0
    run = 0
    for level in levels[loud[0]:loud[-1] + 1]:
        if level < floor:
            run += 1
            continue
        if run:
            longest = max(longest, run)
            over += run * window_ms > GAP_LIMIT_MS
        run = 0
    result["signal_s"] = (loud[-1] - loud[0] + 1) * window_ms / 1000.0
    result["longest_gap_ms"] = longest * window_ms
    result["gaps_over_60ms"] = over
    return result
