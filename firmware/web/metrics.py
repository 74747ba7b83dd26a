"""`/metrics` in the Prometheus text exposition format (version 0.0.4).

`prometheus_text(values) -> str` turns the station's `{name: number}` into one HELP, one TYPE
and one sample line per metric, names prefixed `doorline_`. Names ending in `_total` are
counters, the rest gauges. Values that are not numbers are left out rather than breaking the
scrape; names are reduced to the characters Prometheus allows.
"""

import math

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PREFIX = "doorline_"

HELP = {
    "registration_registered": "1 while registered with the SIP registrar, else 0.",
    "calls_active": "Calls in progress.",
    "calls_total": "Calls placed or answered since start.",
    "rtp_packets_lost_total": "RTP packets lost on received streams since start.",
    "rtp_jitter_ms": "Interarrival jitter of the current call in milliseconds.",
    "door_openings_total": "Door relay pulses since start.",
    "uptime_seconds": "Seconds since the station started.",
    "mqtt_connected": "1 while connected to the [mqtt] broker (0 when off or away).",
    "mqtt_events_dropped_total": "Events dropped from the MQTT queue while the broker was away.",
    "webhook_deliveries_total": "Events delivered to webhooks (2xx answers).",
    "webhook_failures_total": "Events given up on by webhooks after their retries.",
    "webhook_dropped_total": "Events dropped from full webhook queues.",
}


def _metric_name(name: str) -> str:
    cleaned = "".join(c if c.isascii() and (c.isalnum() or c in "_:") else "_" for c in str(name))
    return PREFIX + cleaned


def _format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def prometheus_text(values: dict[str, float]) -> str:
    lines = []
    for name in sorted(values, key=str):
        value = values[name]
        if not isinstance(value, (int, float)):
            continue
        metric = _metric_name(name)
        kind = "counter" if metric.endswith("_total") else "gauge"
        help_text = HELP.get(name, metric[len(PREFIX):].replace("_", " ") + ".")
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}",
                  f"{metric} {_format_value(value)}"]
    return "\n".join(lines) + "\n"
