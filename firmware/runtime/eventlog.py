"""The persistent event log: calls, door openings, rejected callers, lockouts, registration.

JSON lines in `<state_dir>/events.jsonl`, one event per line with an increasing `id` and a unix
`time`. Bounded: when the file holds more than twice MAX_EVENTS lines it is rewritten (atomically)
with the newest MAX_EVENTS. A torn last line (power cut while writing) is skipped on load.
"""

import json
import logging
import os
import time

log = logging.getLogger("doorline.events")

MAX_EVENTS = 1000
FILE_NAME = "events.jsonl"
RESERVED = ("id", "time", "type")  # a field of these names is stored as field_<name>


class EventLog:
    def __init__(self, state_dir, clock=time.time):
        self.path = os.path.join(state_dir, FILE_NAME)
        self.clock = clock
        self.events = []
        self._lines = 0
        self._load()
        self._next_id = self.events[-1]["id"] + 1 if self.events else 1

    def _load(self):
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    self._lines += 1
                    try:
                        event = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(event, dict) and isinstance(event.get("id"), int):
                        self.events.append(event)
        except FileNotFoundError:
            pass
        self.events = self.events[-MAX_EVENTS:]

    def append(self, type_, **fields):
        event = {"id": self._next_id, "time": round(self.clock(), 3), "type": type_}
        for key, value in fields.items():
            event["field_" + key if key in RESERVED else key] = value
        self._next_id += 1
        self.events.append(event)
        if len(self.events) > MAX_EVENTS:
            del self.events[:-MAX_EVENTS]
        try:
            self._write(event)
        except OSError as exc:
            log.warning("cannot write the event log: %s", exc)
        return event

    def since(self, last_id=None):
        if last_id is None:
            return list(self.events)
        return [e for e in self.events if e["id"] > last_id]

    def _write(self, event):
        line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
        if self._lines >= 2 * MAX_EVENTS:
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(e, separators=(",", ":"), default=str) + "\n"
                             for e in self.events)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            self._lines = len(self.events)
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
        self._lines += 1
