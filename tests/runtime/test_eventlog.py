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
    log = EventLog(str(tmp_path))
    for i in range(35):
        log.append("button", n=i)
    assert len(log.since()) == 10
    lines = (tmp_path / eventlog.FILE_NAME).read_text().splitlines()
    assert len(lines) <= 20
    assert json.loads(lines[-1])["n"] == 34


def test_a_torn_last_line_is_skipped(tmp_path):
    log = EventLog(str(tmp_path))
    log.append("call")
    with open(tmp_path / eventlog.FILE_NAME, "a") as f:
        f.write('{"id": 2, "type": "do')
    again = EventLog(str(tmp_path))
    assert [e["id"] for e in again.since()] == [1]
    assert again.append("call")["id"] == 2
