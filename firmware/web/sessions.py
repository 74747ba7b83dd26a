"""Browser sessions and the per-client login throttle, both in memory and bounded.

A session is created for the login and first-boot forms too (unauthenticated), so that those
forms carry a CSRF token like every other form; logging in replaces it with a fresh session id
(no fixation).

Public API:
- `SessionStore(clock)`: `create(authenticated) -> Session`, `get(session_id) -> Session | None`
  (None when unknown or expired; touching it extends the idle timeout), `drop(session_id)`,
  `drop_all()` (after a password change).
  `Session`: `id`, `csrf` (both 256-bit random, URL-safe), `authenticated`.
- `LoginThrottle(clock)`: `retry_after(client) -> float` (0 when an attempt is allowed now),
  `failed(client)`, `succeeded(client)`. Failures count per `client_key(client)` (an IPv6
  client's whole /64, which one machine can fill with addresses) and, for all clients together,
  at most GLOBAL_FAILURES per GLOBAL_WINDOW s: beyond that every password attempt waits until
  the window has room again (sessions already logged in are not affected).
- `client_key(address) -> str`: an IPv4 address as is, an IPv6 address as its /64 ("2001:db8::/64"),
  an IPv4-mapped IPv6 address as the IPv4 address; anything else unchanged.

`clock` is a monotonic seconds function (time.monotonic), injectable for tests.
"""

import ipaddress
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable


IDLE_TIMEOUT = 30 * 60
ABSOLUTE_TIMEOUT = 12 * 3600
MAX_AUTHENTICATED = 32
MAX_ANONYMOUS = 256  # login forms opened but not submitted; the oldest go first

FREE_FAILURES = 5  # failures allowed before the back-off starts
BACKOFF_BASE = 1.0  # seconds after the first failure beyond FREE_FAILURES, doubling each time
BACKOFF_MAX = 15 * 60
FORGET_AFTER = 3600  # a client's failures are forgotten after this long without new ones
MAX_CLIENTS = 1024
GLOBAL_FAILURES = 20  # failed passwords from all clients together ...
GLOBAL_WINDOW = 60.0  # ... within this many seconds


def client_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    except ValueError:
        return str(address)
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class Session:
    __slots__ = ("id", "csrf", "authenticated", "created", "last_seen")

    def __init__(self, authenticated: bool, now: float) -> None:
        self.id = secrets.token_urlsafe(32)
        self.csrf = secrets.token_urlsafe(32)
        self.authenticated = authenticated
        self.created = now
        self.last_seen = now

    def __repr__(self) -> str:
        return f"<Session authenticated={self.authenticated} created={self.created:.0f}>"


class SessionStore:
    def __init__(self, clock: "Callable[[], float]") -> None:
        self.clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, authenticated: bool) -> "Session":
        now = self.clock()
        self._expire(now)
        same_kind = [s for s in self._sessions.values() if s.authenticated == authenticated]
        limit = MAX_AUTHENTICATED if authenticated else MAX_ANONYMOUS
        excess = len(same_kind) - limit + 1
        for old in sorted(same_kind, key=lambda s: s.last_seen)[:max(0, excess)]:
            del self._sessions[old.id]
        session = Session(authenticated, now)
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> "Session | None":
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            del self._sessions[session.id]
            return None
        session.last_seen = now
        return session

    def drop(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def drop_all(self) -> None:
        self._sessions.clear()

    @staticmethod
    def _expired(session: "Session", now: float) -> bool:
        return now - session.last_seen > IDLE_TIMEOUT or now - session.created > ABSOLUTE_TIMEOUT

    def _expire(self, now: float) -> None:
        for session in [s for s in self._sessions.values() if self._expired(s, now)]:
            del self._sessions[session.id]


class LoginThrottle:
    def __init__(self, clock: "Callable[[], float]") -> None:
        self.clock = clock
        # client key -> (count, time of the last failure)
        self._failures: dict[str, tuple[int, float]] = {}
        self._recent: list[float] = []  # times of the failures within GLOBAL_WINDOW, all clients

    def retry_after(self, client: str) -> float:
        now = self.clock()
        self._recent = [t for t in self._recent if now - t < GLOBAL_WINDOW]
        wait = 0.0
        if len(self._recent) >= GLOBAL_FAILURES:
            wait = self._recent[-GLOBAL_FAILURES] + GLOBAL_WINDOW - now
        count, last = self._failures.get(client_key(client), (0, 0.0))
        if count >= FREE_FAILURES:
            delay = min(BACKOFF_BASE * 2 ** (count - FREE_FAILURES), BACKOFF_MAX)
            wait = max(wait, last + delay - now)
        return max(0.0, wait)

    def failed(self, client: str) -> None:
        client = client_key(client)
        now = self.clock()
        self._recent = [t for t in self._recent if now - t < GLOBAL_WINDOW][-GLOBAL_FAILURES:]
        self._recent.append(now)
        for key, (_, last) in list(self._failures.items()):
            if now - last > FORGET_AFTER:
                del self._failures[key]
        if client not in self._failures and len(self._failures) >= MAX_CLIENTS:
            oldest = min(self._failures, key=lambda k: self._failures[k][1])
            del self._failures[oldest]
        count = self._failures.get(client, (0, 0.0))[0]
        self._failures[client] = (count + 1, now)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client_key(client), None)
