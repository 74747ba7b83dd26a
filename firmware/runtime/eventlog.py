"""The persistent event log: calls, door openings, rejected callers, lockouts, registration.

JSON lines in `<state_dir>/events.jsonl`, one event per line with an increasing `id` and a unix
`time`. What is kept, summarised and written when is decided in firmware/app/auditlog.py (issue
12); this module stores and writes:
- two bounded rings in memory: security events (at most MAX_SECURITY_EVENTS) and the rest (at
  most MAX_EVENTS), so rejected-call noise never pushes a door opening or a lockout out;
  `since()` merges them into one stream ordered by id;
- rejected calls pass the per-address limiter: the first from an address is stored, the rest of
  its window only counted, then one `rejected_summary` event (armed with `schedule`);
- string fields are cut to auditlog.MAX_FIELD_CHARS;
- the file is appended to in batches (auditlog.WriteBatcher): rejections and `auth_failed` at
  most once per WRITE_INTERVAL_S, anything else at once with what was waiting; `close()` writes
  the rest (shutdown). When the file holds more than twice what the rings hold it is rewritten
  (atomically) with the rings' events. A torn last line (power cut while writing) is skipped on
  load. `writes` counts file writes (appends and rewrites), `suppressed` the rejections that were
  only counted.

    EventLog(state_dir, clock=time.time, monotonic=time.monotonic, schedule=None)
        schedule(delay_s, callback) -> handle with cancel(), e.g. loop.call_later; without it,
        due summaries and batched writes wait for the next append() or close()
    append(type_, **fields) -> the event, or None when it was only counted
    since(last_id=None) -> [events] oldest first; events (all of them, merged)
    subscribe(callback) -> unsubscribe(): callback(event) for every event stored from then on
        (after it is in the ring): MQTT, webhooks and the event stream listen here. A callback
        only queues (it runs inside append(), on the event loop); one that raises is logged
        and kept.
    close()
"""

import heapq
import json
import logging
import os
import time
from typing import TYPE_CHECKING

from firmware.app import auditlog
from firmware.app.callers import source_ip

if TYPE_CHECKING:
    from collections.abc import Callable


log = logging.getLogger("doorline.events")

MAX_EVENTS = 1000
MAX_SECURITY_EVENTS = 1000
FILE_NAME = "events.jsonl"
RESERVED = ("id", "time", "type")  # a field of these names is stored as field_<name>


def _line(event: dict) -> str:
    return json.dumps(event, separators=(",", ":"), default=str) + "\n"


class EventLog:
    def __init__(self, state_dir: str, clock: "Callable" = time.time,
                 monotonic: "Callable[[], float]" = time.monotonic,
                 schedule: "Callable | None" = None) -> None:
        self.path = os.path.join(state_dir, FILE_NAME)
        self.clock = clock
        self.monotonic = monotonic
        self.schedule = schedule
        self.limiter = auditlog.RejectionLimiter()
        self.batcher = auditlog.WriteBatcher()
        self.writes = 0
        self._security: list[dict] = []
        self._general: list[dict] = []
        self._pending: list[dict] = []  # events not written yet, in id order
        self._lines = 0
        self._timer = None
        self._closed = False
        self._subscribers: list[Callable[[dict], None]] = []
        self._load()
        ids = [e["id"] for e in self._security[-1:] + self._general[-1:]]
        self._next_id = max(ids) + 1 if ids else 1

    @property
    def suppressed(self) -> int:
        return self.limiter.suppressed

    @property
    def events(self) -> list[dict]:
        return list(heapq.merge(self._security, self._general, key=lambda e: e["id"]))

    def _load(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    self._lines += 1
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict) and isinstance(event.get("id"), int):
                        self._ring(event.get("type")).append(event)
        except FileNotFoundError:
            pass
        for ring in (self._security, self._general):
            ring.sort(key=lambda e: e["id"])
        self._security = self._security[-MAX_SECURITY_EVENTS:]
        self._general = self._general[-MAX_EVENTS:]

    def _ring(self, type_: str | None) -> list[dict]:
        return self._security if auditlog.is_security(type_) else self._general

    # -- storing ---------------------------------------------------------------------------
    def append(self, type_: str, **fields: object) -> dict | None:
        now = self.monotonic()
        fields = auditlog.clip(fields)
        self._summaries(now)
        if auditlog.is_rejection(type_, fields):
            source = fields.get("source")
            address = source_ip(source) if isinstance(source, str) and source else None
            if not self.limiter.offer(address, type_, now):
                self._arm(now)
                return None
        event = self._store(type_, fields, now)
        self._arm(now)
        return event

    def _summaries(self, now: float, everything: bool = False) -> None:
        for fields in self.limiter.due(now, everything):
            self._store(auditlog.SUMMARY_TYPE, fields, now)

    def _store(self, type_: str, fields: dict,
               now: float) -> dict:
        event = {"id": self._next_id, "time": round(self.clock(), 3), "type": type_}
        for key, value in fields.items():
            event["field_" + key if key in RESERVED else key] = value
        self._next_id += 1
        ring = self._ring(type_)
        ring.append(event)
        limit = MAX_SECURITY_EVENTS if ring is self._security else MAX_EVENTS
        if len(ring) > limit:
            del ring[:-limit]
        self._pending.append(event)
        if self.batcher.add(auditlog.is_batched(type_, fields), now):
            self._flush(now)
        for callback in list(self._subscribers):
            try:
                callback(event)
            except Exception:  # a listener's fault must not lose the event or stop the log
                log.exception("event subscriber %r failed", callback)
        return event

    def subscribe(self, callback: "Callable[[dict], None]") -> "Callable[[], None]":
        """callback(event) for each event stored from now on; returns the unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    def since(self, last_id: int | None = None) -> list[dict]:
        events = self.events
        if last_id is None:
            return events
        return [e for e in events if e["id"] > last_id]

    # -- time ------------------------------------------------------------------------------
    def _arm(self, now: float) -> None:
        if self.schedule is None or self._closed:
            return
        deadlines = [t for t in (self.batcher.next_deadline(), self.limiter.next_deadline())
                     if t is not None]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if deadlines:
            self._timer = self.schedule(max(0.0, min(deadlines) - now), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        now = self.monotonic()
        self._summaries(now)
        deadline = self.batcher.next_deadline()
        if deadline is not None and now >= deadline:
            self._flush(now)
        self._arm(now)

    def close(self) -> None:
        """Summaries of the open windows and every event not written yet go to the file."""
        now = self.monotonic()
        self._summaries(now, everything=True)
        self._flush(now)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closed = True

    # -- the file --------------------------------------------------------------------------
    def _flush(self, now: float) -> None:
        pending, self._pending = self._pending, []
        self.batcher.written(now)
        if not pending:
            return
        try:
            self._write(pending)
        except OSError as exc:
            log.warning("cannot write the event log: %s", exc)

    def _write(self, pending: list[dict]) -> None:
        self.writes += 1
        if self._lines + len(pending) > 2 * (MAX_EVENTS + MAX_SECURITY_EVENTS):
            events = self.events
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(_line(e) for e in events)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._lines = len(events)
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write("".join(_line(e) for e in pending))
        self._lines += len(pending)
