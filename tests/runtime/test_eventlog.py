"""The persistent event log: ids, paging, bounds, restart, torn lines."""

import json

from firmware.runtime import eventlog
from firmware.runtime.eventlog import EventLog


def test_events_survive_a_restart_and_ids_keep_growing(tmp_path):
    log = EventLog(str(tmp_path), clock=lambda: 1000.0)
    log.append("call", peer="sip:flat1@127.0.0.1", outcome="answered")
    log.append("door_open", by="sip:concierge@127.0.0.1", how="dtmf")
    again = EventLog(str(tmp_path))
    assert [e["type"] for e in again.since()] == ["call", "door_open"]
    assert again.append("lockout")["id"] == 3


def test_since_pages_newest_last(tmp_path):
    log = EventLog(str(tmp_path))
    for i in range(5):
        log.append("button", n=i)
    assert [e["n"] for e in log.since(3)] == [3, 4]


def test_reserved_names_cannot_overwrite_the_event_identity(tmp_path):
    event = EventLog(str(tmp_path)).append("lockout", id="127.0.0.1", type="x")
    assert isinstance(event["id"], int) and event["type"] == "lockout"
    assert event["field_id"] == "127.0.0.1"


def test_bounded_and_compacted(tmp_path, monkeypatch):
    monkeypatch.setattr(eventlog, "MAX_EVENTS", 10)
    monkeypatch.setattr(eventlog, "MAX_SECURITY_EVENTS", 5)
    log = EventLog(str(tmp_path))
    for i in range(35):
        log.append("button", n=i)
        log.append("door_open", n=i)
    assert [e["type"] for e in log.since()].count("button") == 10
    assert [e["type"] for e in log.since()].count("door_open") == 5
    lines = (tmp_path / eventlog.FILE_NAME).read_text().splitlines()
    assert len(lines) <= 2 * (10 + 5)
    assert json.loads(lines[-1])["n"] == 34
    again = EventLog(str(tmp_path))
    assert [e["id"] for e in again.since()] == [e["id"] for e in log.since()]


def test_a_torn_last_line_is_skipped(tmp_path):
    log = EventLog(str(tmp_path))
    log.append("call")
    with open(tmp_path / eventlog.FILE_NAME, "a") as f:
        f.write('{"id": 2, "type": "do')
    again = EventLog(str(tmp_path))
    assert [e["id"] for e in again.since()] == [1]
    assert again.append("call")["id"] == 2


class FakeTime:
    """A monotonic clock and a `schedule` that runs callbacks when the clock passes them."""

    def __init__(self):
        self.now = 0.0
        self.timers = []

    def __call__(self):
        return self.now

    def schedule(self, delay, callback):
        timer = Timer(self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds):
        end = self.now + seconds
        for _ in range(1000):
            due = sorted((t for t in self.timers if not t.cancelled and t.at <= end),
                         key=lambda t: t.at)
            if not due:
                break
            self.now = max(self.now, due[0].at)
            due[0].cancelled = True
            due[0].callback()
        self.now = end


class Timer:
    def __init__(self, at, callback):
        self.at = at
        self.callback = callback
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


def _flood(log, clock, count, seconds, address="192.0.2.7"):
    for i in range(count):
        log.append("caller_rejected", caller='"x" <sip:concierge@example.org>;tag=%d' % i,
                   source="udp:%s:%d" % (address, 1024 + i), outcome="rejected",
                   reason="not from the registrar")
        clock.advance(seconds / count)


def test_security_events_survive_a_port_changing_flood(tmp_path, monkeypatch):
    monkeypatch.setattr(eventlog, "MAX_EVENTS", 50)
    clock = FakeTime()
    log = EventLog(str(tmp_path), monotonic=clock, schedule=clock.schedule)
    log.append("door_open", by="sip:concierge@example.org", how="dtmf")
    log.append("lockout", kind="caller", subject="flat1@example.org", duration_s=60)
    for i in range(30):  # other addresses, each rejected once: they fill the general ring
        log.append("caller_rejected", source="udp:10.0.%d.1:5060" % i, outcome="rejected")
    _flood(log, clock, 5000, 300.0)
    types = [e["type"] for e in log.since()]
    assert types.count("door_open") == 1 and types.count("lockout") == 1
    flood = [e for e in log.since() if "192.0.2.7" in json.dumps(e)]
    # one in full and one summary per 60 s window: 5 windows in 300 s
    assert [e["type"] for e in flood].count("caller_rejected") == 5
    summaries = [e for e in flood if e["type"] == "rejected_summary"]
    assert len(summaries) >= 4 and summaries[0]["count"] == 1000
    assert summaries[0]["text"].startswith("caller_rejected \u00d71000 from 192.0.2.7")
    assert log.suppressed >= 5000 - 5
    ids = [e["id"] for e in log.since()]
    assert ids == sorted(ids)
    # The newest `limit` of the merged stream, and paging with since, still work.
    assert [e["id"] for e in log.since(ids[-3])] == ids[-2:]


def test_batched_writes_and_prompt_security_events(tmp_path):
    clock = FakeTime()
    log = EventLog(str(tmp_path), monotonic=clock, schedule=clock.schedule)
    path = tmp_path / eventlog.FILE_NAME

    def lines():
        return path.read_text().splitlines() if path.exists() else []

    for i in range(50):  # 50 addresses, one rejection each, over 20 s
        log.append("caller_rejected", source="udp:10.0.0.%d:5060" % i, outcome="rejected")
        clock.advance(0.4)
    assert log.writes == 1  # the first one; the rest wait for the interval
    assert len(lines()) == 1
    log.append("door_open", by="api")  # written at once, with everything that waited
    assert log.writes == 2 and len(lines()) == 51
    assert json.loads(lines()[-1])["type"] == "door_open"
    log.append("caller_rejected", source="udp:10.1.0.1:5060", outcome="rejected")
    assert log.writes == 2
    clock.advance(eventlog.auditlog.WRITE_INTERVAL_S)
    assert log.writes == 3 and len(lines()) == 52  # the timer wrote it
    log.append("caller_rejected", source="udp:10.1.0.1:5061", outcome="rejected")
    log.close()  # shutdown: the summary of the open window and what waits
    assert json.loads(lines()[-1])["type"] == "rejected_summary"
    assert json.loads(lines()[-1])["count"] == 2
    assert [e["id"] for e in EventLog(str(tmp_path)).since()] == [e["id"] for e in log.since()]


def test_long_attacker_controlled_fields_are_cut(tmp_path):
    log = EventLog(str(tmp_path))
    event = log.append("caller_rejected", caller="<sip:" + "a" * 100000 + "@x>",
                       source="udp:192.0.2.7:5060", outcome="rejected")
    assert len(event["caller"]) == eventlog.auditlog.MAX_FIELD_CHARS
    assert len((tmp_path / eventlog.FILE_NAME).read_text()) < 1000
