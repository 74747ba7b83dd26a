"""What the event log keeps, summarises and writes when (firmware/app/auditlog.py): pure."""

from firmware.app import auditlog
from firmware.app.auditlog import RejectionLimiter, WriteBatcher


def test_a_port_changing_flood_from_one_address_is_one_event_and_one_summary():
    limiter = RejectionLimiter(window_s=60.0)
    logged = [limiter.offer("192.0.2.7", "caller_rejected", 100.0 + i * 0.01)
              for i in range(412)]
    assert logged.count(True) == 1 and logged[0]
    assert limiter.suppressed == 411
    assert limiter.next_deadline() == 160.0
    assert limiter.due(159.9) == []
    [summary] = limiter.due(160.0)
    assert summary["source_ip"] == "192.0.2.7"
    assert (summary["count"], summary["suppressed"], summary["period_s"]) == (412, 411, 60.0)
    assert summary["types"] == {"caller_rejected": 412}
    assert summary["text"] == "caller_rejected \u00d7412 from 192.0.2.7 in 60 s"
    assert limiter.due(1000.0) == [] and len(limiter) == 0
    # the next window starts with one event in full again
    assert limiter.offer("192.0.2.7", "caller_rejected", 1000.0)


def test_addresses_are_counted_apart_and_a_lone_rejection_needs_no_summary():
    limiter = RejectionLimiter(window_s=10.0)
    assert limiter.offer("192.0.2.7", "caller_rejected", 0.0)
    assert limiter.offer("192.0.2.8", "caller_rejected", 1.0)
    assert not limiter.offer("192.0.2.8", "call", 2.0)
    assert limiter.next_deadline() == 11.0  # only the window with something to summarise
    summaries = limiter.due(20.0)
    assert [(s["source_ip"], s["count"], s["types"]) for s in summaries] == [
        ("192.0.2.8", 2, {"caller_rejected": 1, "call": 1})]


def test_a_window_that_ended_unnoticed_is_still_summarised():
    limiter = RejectionLimiter(window_s=10.0)
    limiter.offer("192.0.2.7", "caller_rejected", 0.0)
    limiter.offer("192.0.2.7", "caller_rejected", 1.0)
    assert limiter.offer("192.0.2.7", "caller_rejected", 30.0)  # a new window
    assert limiter.next_deadline() == 0.0  # a summary is waiting
    assert [s["count"] for s in limiter.due(30.0)] == [2]


def test_the_table_is_bounded_and_new_addresses_share_one_window():
    limiter = RejectionLimiter(window_s=60.0, max_sources=4)
    for i in range(100):
        limiter.offer("10.0.0.%d" % i, "caller_rejected", 1.0)
    assert len(limiter) == 5  # four addresses and the shared one
    assert limiter.suppressed == 100 - 5
    summaries = limiter.due(0.0, everything=True)
    assert [(s["source_ip"], s["count"]) for s in summaries] == [(auditlog.OTHER_SOURCES, 96)]
    assert summaries[0]["text"] == "caller_rejected \u00d796 from other addresses in 0 s"


def test_shutdown_summarises_every_open_window_with_its_real_period():
    limiter = RejectionLimiter(window_s=60.0)
    limiter.offer(None, "call", 0.0)
    limiter.offer(None, "call", 5.0)
    [summary] = limiter.due(12.5, everything=True)
    assert (summary["source_ip"], summary["count"], summary["period_s"]) == (
        auditlog.UNKNOWN_SOURCE, 2, 12.5)


def test_attacker_controlled_text_is_cut():
    long = "sip:" + "a" * 5000 + "@192.0.2.7"
    fields = auditlog.clip({"caller": long, "count": 3, "targets": [long, 7], "short": "x"})
    assert len(fields["caller"]) == auditlog.MAX_FIELD_CHARS
    assert fields["caller"].endswith(auditlog.ELLIPSIS) and fields["caller"].startswith("sip:a")
    assert len(fields["targets"][0]) == auditlog.MAX_FIELD_CHARS and fields["targets"][1] == 7
    assert (fields["count"], fields["short"]) == (3, "x")


def test_which_events_are_security_rejections_or_batched():
    for name in ("door_open", "lockout", "code_failed", "login", "admin_password_set",
                 "config_saved"):
        assert auditlog.is_security(name)
    for name in ("caller_rejected", "call", "registration", "auth_failed", "rejected_summary"):
        assert not auditlog.is_security(name)
    assert auditlog.is_rejection("caller_rejected", {})
    assert auditlog.is_rejection("call", {"outcome": "rejected"})
    assert not auditlog.is_rejection("call", {"outcome": "completed"})
    assert auditlog.is_batched("auth_failed", {}) and auditlog.is_batched("rejected_summary", {})
    assert not auditlog.is_batched("door_open", {}) and not auditlog.is_batched("call", {})


def test_batched_events_are_written_at_most_once_per_interval_others_at_once():
    batcher = WriteBatcher(interval_s=30.0)
    assert batcher.next_deadline() is None
    assert batcher.add(True, 0.0)  # nothing written yet: write
    batcher.written(0.0)
    assert not batcher.add(True, 1.0) and not batcher.add(True, 29.0)
    assert batcher.pending == 2 and batcher.next_deadline() == 30.0
    assert batcher.add(False, 5.0)  # a door opening goes out at once, with what waits
    batcher.written(5.0)
    assert batcher.next_deadline() is None
    assert not batcher.add(True, 6.0) and batcher.add(True, 35.0)


def test_a_prompt_write_does_not_hold_back_the_next_batched_event():
    batcher = WriteBatcher(interval_s=30.0)
    assert batcher.add(False, 0.0)  # a door opening alone
    batcher.written(0.0)
    assert batcher.add(True, 1.0)  # the first rejection in a while: at once
    batcher.written(1.0)
    assert not batcher.add(True, 2.0)
