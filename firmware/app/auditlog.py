"""What the event log keeps, summarises and writes when (issue 12), sans-I/O.

The runtime's event log (firmware/runtime/eventlog.py) does the storing and the file I/O; every
decision is made here, from the event and the monotonic time `now` the runtime passes in.

- Two rings. Security events (SECURITY_TYPES: door openings, the door contact, lockouts, wrong
  codes, logins,
  password and configuration changes, refused redirects) are kept in their own ring, so no amount
  of other events pushes them out; everything else shares the general ring.
- Rejected calls are summarised per source IP address (not per address and port: changing the
  source port costs an attacker nothing). The first rejection from an address is logged in full
  and opens a window of `window_s`; the rest of that window is only counted, and when it ends
  one `rejected_summary` event says how many there were ("caller_rejected ×412 from 192.0.2.7 in
  60 s"). Addresses are tracked in a bounded table; once `max_sources` windows are open, new
  addresses share one window under OTHER_SOURCES. A rejection is an event of type
  `caller_rejected`, or any event with `outcome` "rejected" (a call refused with 480/486/488).
- Attacker-controlled text is cut: every string field (and string in a list field) longer than
  MAX_FIELD_CHARS keeps its first MAX_FIELD_CHARS - 1 characters and ends with "…".
- Writes are batched. Events an outsider can cause in numbers (rejections, their summaries,
  `auth_failed`) are written at most once per `interval_s`: the first after a quiet interval at
  once, later ones together when the interval has passed. Any other event is rare, bounded by
  what trusted people do, and written at once, together with whatever was waiting, so the file
  stays in id order. The runtime writes what is left at shutdown.

Public API
    is_security(type_) -> bool
    is_rejection(type_, fields) -> bool
    is_batched(type_, fields) -> bool
    clip(fields, limit=MAX_FIELD_CHARS) -> a new dict
    RejectionLimiter(window_s=WINDOW_S, max_sources=MAX_SOURCES)
        offer(address, type_, now) -> True: log this rejection in full; False: only counted
        due(now, everything=False) -> [summary fields] of the windows that ended (or of all
            of them, at shutdown); fields source_ip, count (every rejection of the window, the
            one logged in full included), suppressed (count - 1), period_s, types {type: n},
            text
        next_deadline() -> float or None; suppressed (total not logged in full)
    summary_text(fields) -> "caller_rejected ×412 from 192.0.2.7 in 60 s"
    WriteBatcher(interval_s=WRITE_INTERVAL_S)
        add(batched, now) -> True when the pending events are to be written now
        written(now); next_deadline() -> float or None; pending (events waiting)
"""


SECURITY_TYPES = (
    "door_open", "lockout", "code_failed", "login", "logout", "admin_password_set",
    "config_saved", "config", "setup_code", "redirect_refused",
    "door_opened", "door_closed", "door_held_open",  # the door contact (issue 17)
)
BATCHED_TYPES = ("caller_rejected", "rejected_summary", "auth_failed")
SUMMARY_TYPE = "rejected_summary"
OTHER_SOURCES = "*"
UNKNOWN_SOURCE = "?"

WINDOW_S = 60.0
MAX_SOURCES = 64
MAX_FIELD_CHARS = 200
WRITE_INTERVAL_S = 30.0
ELLIPSIS = "\u2026"


def is_security(type_: str | None) -> bool:
    return type_ in SECURITY_TYPES


def is_rejection(type_: str, fields: dict) -> bool:
    return type_ == "caller_rejected" or fields.get("outcome") == "rejected"


def is_batched(type_: str, fields: dict) -> bool:
    return type_ in BATCHED_TYPES or is_rejection(type_, fields)


def _clip_value(value: object, limit: int) -> object:
    if isinstance(value, str) and len(value) > limit:
        return value[:limit - 1] + ELLIPSIS
    if isinstance(value, (list, tuple)):
        return [_clip_value(v, limit) if isinstance(v, str) else v for v in value]
    return value


def clip(fields: dict, limit: int = MAX_FIELD_CHARS) -> dict:
    clipped = {}
    for key in fields:
        clipped[key] = _clip_value(fields[key], limit)
    return clipped


def summary_text(fields: dict) -> str:
    types = fields["types"]
    names = "+".join(sorted(types)) if types else "rejected"
    if fields["source_ip"] == OTHER_SOURCES:
        where = "other addresses"
    else:
        where = fields["source_ip"]
    return "%s \u00d7%d from %s in %d s" % (names, fields["count"], where,
                                           int(fields["period_s"] + 0.5))


class _Window:
    __slots__ = ("start", "end", "count", "types")

    def __init__(self, now: float, window_s: float) -> None:
        self.start = now
        self.end = now + window_s
        self.count = 0
        self.types: dict[str, int] = {}


class RejectionLimiter:
    def __init__(self, window_s: float = WINDOW_S, max_sources: int = MAX_SOURCES) -> None:
        self.window_s = window_s
        self.max_sources = max_sources
        self.suppressed = 0
        self._windows: dict[str, _Window] = {}  # address -> _Window
        self._ended: list[dict] = []  # summaries of windows closed before due() collected them

    def offer(self, address: str | None, type_: str, now: float) -> bool:
        address = address or UNKNOWN_SOURCE
        self._close(now)
        if address not in self._windows and len(self._windows) >= self.max_sources:
            address = OTHER_SOURCES
        window = self._windows.get(address)
        first = window is None
        if window is None:
            window = _Window(now, self.window_s)
            self._windows[address] = window
        else:
            self.suppressed += 1
        window.count += 1
        window.types[type_] = window.types.get(type_, 0) + 1
        return first

    def due(self, now: float, everything: bool = False) -> list[dict]:
        self._close(now, everything)
        ended = self._ended
        self._ended = []
        return ended

    def next_deadline(self) -> float | None:
        if self._ended:
            return 0.0
        ends = [w.end for w in self._windows.values() if w.count > 1]
        return min(ends) if ends else None

    def _close(self, now: float, everything: bool = False) -> None:
        for address in sorted(self._windows):
            window = self._windows[address]
            if everything or now >= window.end:
                del self._windows[address]
                if window.count > 1:
                    self._ended.append(self._summary(address, window, now))

    def _summary(self, address: str, window: "_Window", now: float) -> dict:
        period = min(now, window.end) - window.start
        fields = {"source_ip": address, "count": window.count,
                  "suppressed": window.count - 1, "period_s": round(period, 1),
                  "types": dict(window.types)}
        fields["text"] = summary_text(fields)
        return fields

    def __len__(self) -> int:
        return len(self._windows)


class WriteBatcher:
    """Batched events go out at most once per `interval_s` (the first after a quiet interval at
    once); any other event goes out at once, with whatever waits."""

    def __init__(self, interval_s: float = WRITE_INTERVAL_S) -> None:
        self.interval_s = interval_s
        self.pending = 0
        self._batched = 0  # batched events among the pending ones
        self._last: float | None = None  # when batched events were last written

    def add(self, batched: bool, now: float) -> bool:
        self.pending += 1
        if not batched:
            return True
        self._batched += 1
        return self._last is None or now - self._last >= self.interval_s

    def written(self, now: float) -> None:
        if self._batched:
            self._last = now
        self.pending = 0
        self._batched = 0

    def next_deadline(self) -> float | None:
        if not self.pending:
            return None
        if self._last is None:
            return 0.0
        return self._last + self.interval_s
