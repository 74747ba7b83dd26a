"""The headline table: one row per figure, Doorline next to baresip, ratio, goal, met?

`figures(results) -> list[dict]` pulls each figure out of the raw results (keys `figure`, `unit`,
`doorline`, `baresip`, `ratio`, `goal`, `met`; a side that could not be measured carries its
error text instead of a number, and then the goal is not met). `markdown(results) -> str` renders
them with the run's metadata. Goals are the issues' (issue 14's table: start → registered
≤ 37 ms, INVITE → 200 median ≤ 1.0 ms, RSS ≤ 19 MB idle and ≤ 22 MB in an SRTP call, CPU per
call ≤ 1.0 × baresip, RTP pacing and drift kept) and are checked on Doorline's number; "—" means
the figure is reported, not judged.
"""


def _get(tree, *path):
    for key in path:
        if not isinstance(tree, dict):
            return None
        tree = tree.get(key)
    return tree


def _failure(tree, *path):
    """The reason a side has no number: the error (or n/a note) nearest to the figure."""
    for depth in range(len(path), -1, -1):
        node = _get(tree, *path[:depth])
        if isinstance(node, dict):
            for key in ("error", "na"):
                if node.get(key):
                    return ("error: " if key == "error" else "n/a: ") + node[key]
    return "not measured"


def _mb(kb):
    return None if kb is None else kb / 1024.0


def _ms(seconds):
    return None if seconds is None else seconds * 1000.0


# (figure, unit, case, path to the value inside one side, transform, goal kind, goal, text)
ROWS = (
    ("CPU share, G.711 call, SRTP off", "% of a core", "calls", ("off", "cpu_percent"), None,
     "ratio_max", 1.0, "≤ 1.0 × baresip"),
    ("CPU share, G.711 call, SRTP mandatory", "% of a core", "calls",
     ("mandatory", "cpu_percent"), None, "ratio_max", 1.0, "≤ 1.0 × baresip"),
    ("CPU share, G.711 call, audio through ALSA at 48 kHz (file plugins)", "% of a core",
     "alsa_path", ("alsa_cpu_percent",), None, None, None, "—"),
    ("CPU share, same call, 8 kHz WAV path (beside the ALSA row)", "% of a core", "alsa_path",
     ("wav_cpu_percent",), None, None, None, "—"),
    ("ALSA 48 kHz path ÷ 8 kHz WAV path, CPU", "×", "alsa_path", ("ratio_to_wav",), None,
     "at_most", 1.2, "≤ 1.2 × the WAV path"),
    ("same, rate conversion in the pure-Python fallback", "×", "alsa_path",
     ("python_ratio_to_wav",), None, None, None, "— (the old path)"),
    ("RTP send interval p50", "ms", "calls", ("off", "rtp", "p50_ms"), None, None, None, "—"),
    ("RTP send interval p99", "ms", "calls", ("off", "rtp", "p99_ms"), None, "near", (20.0, 1.0),
     "within 1 ms of 20 ms"),
    ("RTP send interval p99 deviation from 20 ms", "ms", "calls",
     ("off", "rtp", "p99_deviation_ms"), None, "at_most", 1.0, "≤ 1 ms (issue 14: keep)"),
    ("RTP send interval max deviation from 20 ms", "ms", "calls",
     ("off", "rtp", "max_deviation_ms"), None, None, None, "—"),
    ("RTP timestamp drift vs capture clock", "ms/min", "calls",
     ("off", "rtp", "drift_ms_per_min"), None, "abs_below", 1.0, "< 1 ms/min (16.7 ppm)"),
    ("INVITE → 200 OK (auto-answer) median", "ms", "invite_200", ("latency_ms", "p50"), None,
     "at_most", 1.0, "≤ 1.0 ms"),
    ("INVITE → 200 OK (auto-answer) p99", "ms", "invite_200", ("latency_ms", "p99"), None,
     "below", 20.0, "< 20 ms"),
    ("button press → INVITE on the wire, median", "ms", "button_invite", ("latency_ms", "p50"),
     None, "below", 10.0, "< 10 ms"),
    ("start → registered (200 to REGISTER), median", "ms", "start_registered", ("median_s",),
     _ms, "at_most", 37.0, "≤ 37 ms"),
    ("start → registered, Doorline's first start with a new configuration (no start plan)",
     "ms", "start_registered", ("first_start_s",), _ms, None, None,
     "— (the row above: restarts)"),
    ("RSS idle, registered", "MB", "calls", ("off", "idle_rss_kb"), _mb, "at_most", 19.0,
     "≤ 19 MB"),
    ("RSS during an SRTP call", "MB", "calls", ("mandatory", "call_rss_kb"), _mb, "at_most",
     22.0, "≤ 22 MB"),
    ("5 % loss + 60 ms jitter: longest gap in output", "ms", "receive_loss", ("longest_gap_ms",),
     None, "at_most", 60.0, "none > 60 ms"),
    ("5 % loss + 60 ms jitter: concealed frames", "count", "receive_loss", ("concealed",), None,
     None, None, "—"),
    ("G.711 encode+decode, 160-sample frames (PCMU)", "frames/s per core", "codec",
     ("pcmu", "frames_per_cpu_s"), None, "at_least", 2000.0, "≥ 2000"),
    # issue 15 (tools/bench/audio.py): baresip's "on" is its speex_pp preprocessor (no AEC)
    ("CPU share, G.711 call, AEC+NS+AGC on (baresip: speex_pp)", "% of a core", "audio",
     ("pcmu", "on_cpu_percent"), None, None, None, "—"),
    ("G.711 call: processing on ÷ off, CPU", "×", "audio", ("pcmu", "ratio_on_to_off"), None,
     "at_most", 2.0, "≤ 2.0 × the same call without"),
    ("CPU share, G.722 call, AEC+NS+AGC on (baresip: speex_pp)", "% of a core", "audio",
     ("g722", "on_cpu_percent"), None, None, None, "—"),
    ("G.722 call: processing on ÷ off, CPU", "×", "audio", ("g722", "ratio_on_to_off"), None,
     "at_most", 2.0, "≤ 2.0 × the same call without"),
    ("ERLE, box (50 ms), 8 kHz", "dB", "audio", ("erle", "box_8k", "erle_db"), None,
     "at_least", 25.0, "≥ 25 dB"),
    ("ERLE, hallway (150 ms), 8 kHz", "dB", "audio", ("erle", "hallway_8k", "erle_db"), None,
     "at_least", 25.0, "≥ 25 dB"),
    ("ERLE, box (50 ms), 16 kHz (G.722)", "dB", "audio", ("erle", "box_16k", "erle_db"), None,
     "at_least", 25.0, "≥ 25 dB"),
    ("ERLE, hallway (150 ms), 16 kHz (G.722)", "dB", "audio", ("erle", "hallway_16k", "erle_db"),
     None, "at_least", 25.0, "≥ 25 dB"),
    ("conference mixing, 3 parties (door + 2 calls)", "% of a core", "conference",
     ("parties_3", "core_percent"), None, "below", 5.0, "< 5 %"),
    ("CPU share, call with 640x480 @ 15 fps H.264 video (pc-sim pattern, libx264)",
     "% of a core", "camera", ("video_call_cpu_percent",), None, None, None, "—"),
    ("RSS during that video call", "MB", "camera", ("video_call_rss_kb",), _mb, None, None,
     "—"),
    ("capture → first RTP packet of the frame, median", "ms", "camera",
     ("capture_to_rtp_ms_median",), None, "at_most", 100.0, "≤ 100 ms"),
    ("button press → ring JPEG on disk (camera cold), median", "ms", "camera",
     ("snapshot_latency_ms", "p50"), None, "at_most", 300.0, "≤ 300 ms"),
    ("CPU share idle, camera configured but unused", "% of a core", "camera",
     ("idle_camera_cpu_percent",), None, None, None, "— (beside the next row)"),
    ("CPU share idle, no camera", "% of a core", "camera", ("idle_none_cpu_percent",), None,
     None, None, "—"),
    ("RSS idle, camera configured but unused ÷ no camera", "×", "camera", ("idle_rss_ratio",),
     None, "at_most", 1.05, "≈ 1 (≤ 1.05)"),
)


def _met(kind, goal, value, ratio):
    if kind is None:
        return None
    if value is None:
        return False
    if kind == "ratio_max":
        return ratio is not None and ratio <= goal
    if kind == "near":
        return abs(value - goal[0]) <= goal[1]
    if kind == "abs_below":
        return abs(value) < goal
    if kind == "below":
        return value < goal
    if kind == "at_most":
        return value <= goal
    if kind == "at_least":
        return value >= goal
    raise ValueError(kind)


def figures(results):
    rows = []
    for figure, unit, case, path, transform, kind, goal, text in ROWS:
        row = {"figure": figure, "unit": unit, "goal": text}
        values = {}
        for side in ("doorline", "baresip"):
            value = _get(results.get("cases", {}), case, side, *path)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                values[side] = transform(value) if transform else value
                row[side] = values[side]
            else:
                values[side] = None
                row[side] = _failure(results.get("cases", {}), case, side, *path)
        ratio = None
        if values["doorline"] is not None and values["baresip"] not in (None, 0):
            ratio = values["doorline"] / values["baresip"]
        row["ratio"] = ratio
        row["met"] = _met(kind, goal, values["doorline"], ratio)
        rows.append(row)
    return rows


def _cell(value):
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:.0f}"
        return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value).replace("|", "/").replace("\n", " ")[:160]


def markdown(results):
    meta = results.get("meta", {})
    lines = [
        f"# Doorline bench ({meta.get('mode')}) — {meta.get('date')}",
        "",
        f"{meta.get('host')} · {meta.get('machine')} · {meta.get('cpus')} CPUs · "
        f"Python {meta.get('python')} · kernel {meta.get('kernel')} · {meta.get('baresip')} · "
        f"load at start {meta.get('loadavg_start')} · run took {meta.get('elapsed_s')} s",
        "",
        "| figure | unit | Doorline | baresip | ratio | goal | met? |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in results.get("figures", []):
        met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"| {row['figure']} | {row['unit']} | {_cell(row['doorline'])} | "
                     f"{_cell(row['baresip'])} | {ratio} | {row['goal']} | {met} |")
    errors = results.get("errors", [])
    if errors:
        lines += ["", "## Errors", ""]
        lines += [f"- `{entry['case']}`: {_cell(entry['error'])}" for entry in errors]
    lines += ["", "Raw numbers: results.json; plot: rtp_interval.svg; captures and logs: work/.",
              ""]
    return "\n".join(lines)
