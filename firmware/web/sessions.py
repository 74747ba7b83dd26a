"""Browser sessions and the per-client login throttle, both in memory and bounded.

A session is created for the login and first-boot forms too (unauthenticated), so that those
forms carry a CSRF token like every other form; logging in replaces it with a fresh session id
(no fixation).

Public API:
- `SessionStore(clock, path=None, binding=lambda: "", wall=None)` (`wall`: Unix time,
  time.time by default): `create(authenticated) ->
  Session`, `get(session_id) -> Session | None` (None when unknown or expired; touching it
  extends the idle timeout), `drop(session_id)`, `drop_all()` (after a password change).
  `Session`: `id`, `csrf` (both 256-bit random, URL-safe), `authenticated`.
  With `path` (`<state dir>/sessions.json`, mode 0600) the logged-in sessions survive a restart
  of the process: the file holds, per session, the SHA-256 of its id (not the id: the file
  alone logs no one in), its CSRF token and its times as Unix time; it is rewritten when a
  session is created or dropped, and for idle-time updates at most every SAVE_EVERY s (so
  after a restart a session may reach its idle limit up to that much early). It is
  bound to `binding()` (a digest of the admin password record): a file made under another
  password (a reset or a change) is ignored, so a password change ends every session also
  across a restart. A missing, unreadable or malformed file starts empty (logged); a session
  whose times lie in the future (the clock went back) is dropped.
- `LoginThrottle(clock)`: `retry_after(client) -> float` (0 when an attempt is allowed now),
  `failed(client)`, `succeeded(client)`. Failures count per `client_key(client)` (an IPv6
  client's whole /64, which one machine can fill with addresses) and, for all clients together,
  at most GLOBAL_FAILURES per GLOBAL_WINDOW s: beyond that every password attempt waits until
  the window has room again (sessions already logged in are not affected).
- `client_key(address) -> str`: an IPv4 address as is, an IPv6 address as its /64 ("2001:db8::/64"),
  an IPv4-mapped IPv6 address as the IPv4 address; anything else unchanged.

`clock` is a monotonic seconds function (time.monotonic), injectable for tests.
"""

import base64
import ipaddress
import json
import logging
import os
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

from firmware.compat import hash_constructor

# Issue 14: neither `secrets` nor `hashlib` (each loads OpenSSL's libcrypto, ~3.4 MB): tokens
# straight from os.urandom, SHA-256 from CPython's built-in module.
_found = hash_constructor("sha256")
assert _found is not None
_sha256: "Callable" = _found


def token_urlsafe(nbytes: int) -> str:
    """`nbytes` random bytes as unpadded URL-safe base64 (what `secrets.token_urlsafe` makes)."""
    return base64.urlsafe_b64encode(os.urandom(nbytes)).rstrip(b"=").decode("ascii")


IDLE_TIMEOUT = 30 * 60
ABSOLUTE_TIMEOUT = 12 * 3600
MAX_AUTHENTICATED = 32
MAX_ANONYMOUS = 256  # login forms opened but not submitted; the oldest go first
SAVE_EVERY = 60.0  # seconds between writes that only record sessions being used

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
        self.id = token_urlsafe(32)
        self.csrf = token_urlsafe(32)
        self.authenticated = authenticated
        self.created = now
        self.last_seen = now

    def __repr__(self) -> str:
        return f"<Session authenticated={self.authenticated} created={self.created:.0f}>"


def _digest(session_id: str) -> str:
    return _sha256(session_id.encode()).hexdigest()


class SessionStore:
    def __init__(self, clock: "Callable[[], float]", path: str | None = None,
                 binding: "Callable[[], str]" = lambda: "",
                 wall: "Callable[[], float] | None" = None) -> None:
        self.clock = clock
        self.path = path
        self.binding = binding
        self.wall = wall or (lambda: time.time())
        self._sessions: dict[str, Session] = {}
        # sessions loaded from the file, known by their id's digest until first used
        self._stored: dict[str, Session] = {}
        self._saved_at: float | None = None
        if path is not None:
            self._load()

    def create(self, authenticated: bool) -> "Session":
        now = self.clock()
        self._expire(now)
        same_kind = [s for s in self._all() if s.authenticated == authenticated]
        limit = MAX_AUTHENTICATED if authenticated else MAX_ANONYMOUS
        excess = len(same_kind) - limit + 1
        for old in sorted(same_kind, key=lambda s: s.last_seen)[:max(0, excess)]:
            self._remove(old)
        session = Session(authenticated, now)
        self._sessions[session.id] = session
        if authenticated:
            self._save()
        return session

    def get(self, session_id: str | None) -> "Session | None":
        session = self._sessions.get(session_id) if session_id else None
        if session is None and session_id and self._stored:
            session = self._stored.pop(_digest(session_id), None)
            if session is not None:  # from before a restart: known by its id from now on
                session.id = session_id
                self._sessions[session_id] = session
        if session is None:
            return None
        now = self.clock()
        if self._expired(session, now):
            self._remove(session)
            return None
        session.last_seen = now
        if session.authenticated and (self._saved_at is None or
                                      now - self._saved_at >= SAVE_EVERY):
            self._save()
        return session

    def drop(self, session_id: str) -> None:
        session = self._sessions.pop(session_id, None) or \
            self._stored.pop(_digest(session_id), None)
        if session is not None and session.authenticated:
            self._save()

    def drop_all(self) -> None:
        self._sessions.clear()
        self._stored.clear()
        self._save()

    # -- the file ---------------------------------------------------------------------------
    def _all(self) -> "list[Session]":
        return list(self._sessions.values()) + list(self._stored.values())

    def _remove(self, session: "Session") -> None:
        if self._sessions.pop(session.id, None) is None:
            for key, stored in list(self._stored.items()):
                if stored is session:
                    del self._stored[key]
        if session.authenticated:
            self._save()

    def _save(self) -> None:
        self._saved_at = self.clock()
        if self.path is None:
            return
        offset = self.wall() - self.clock()  # monotonic → Unix time
        pairs = list(self._stored.items()) + \
            [(_digest(s.id), s) for s in self._sessions.values() if s.authenticated]
        entries = [{"id_sha256": key, "csrf": s.csrf, "created": round(s.created + offset, 1),
                    "last_seen": round(s.last_seen + offset, 1)}
                   for key, s in pairs if s.authenticated]
        text = json.dumps({"binding": self.binding(), "sessions": entries})
        tmp = f"{self.path}.tmp.{os.getpid()}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, self.path)
        except OSError as exc:  # the sessions still work; only a restart forgets them
            logging.getLogger("doorline.web").warning(
                "cannot save the sessions to %s: %s", self.path, exc.strerror or exc)
            try:
                os.unlink(tmp)
            except OSError:
                pass

    def _load(self) -> None:
        assert self.path is not None
        try:
            with open(self.path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            logging.getLogger("doorline.web").warning(
                "ignoring the session file %s: %s", self.path, exc)
            return
        if not isinstance(doc, dict) or doc.get("binding") != self.binding() or \
                not isinstance(doc.get("sessions"), list):
            return  # another password (or none): those sessions ended
        now, offset = self.clock(), self.wall() - self.clock()
        for entry in doc["sessions"][:MAX_AUTHENTICATED]:
            try:
                key, csrf = str(entry["id_sha256"]), str(entry["csrf"])
                created = float(entry["created"]) - offset
                last_seen = float(entry["last_seen"]) - offset
            except (KeyError, TypeError, ValueError):
                continue
            if last_seen > now + 1 or created > last_seen:
                continue  # the clock went back (a Pi without RTC before NTP): age unknown
            session = Session(True, now)
            session.id, session.csrf = "", csrf  # the id: given back by the first request
            session.created, session.last_seen = created, last_seen
            if not self._expired(session, now):
                self._stored[key] = session

    @staticmethod
    def _expired(session: "Session", now: float) -> bool:
        return now - session.last_seen > IDLE_TIMEOUT or now - session.created > ABSOLUTE_TIMEOUT

    def _expire(self, now: float) -> None:
        for session in [s for s in self._all() if self._expired(s, now)]:
            self._remove(session)


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
