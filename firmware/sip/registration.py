"""Keeping the station registered with its registrar, sans-I/O.

RFC 3261 section 10.2 (REGISTER: one Call-ID, a rising CSeq, refreshing before the binding
expires, Expires: 0 to remove it), section 10.2.8 and 21.4.17 (423 Interval Too Brief and
Min-Expires), section 22 with RFC 7616 / RFC 8760 (answering 401/407 digest challenges),
section 20.33 (Retry-After), and the back-off with jitter of RFC 5626 section 4.5.

Public API
- `Registration(aor, registrar_uri, contact, username, password, expires=3600,
  random=os.urandom)`: `random(n)` returns n random bytes (Call-ID, tags, cnonce, jitter).
- Inputs: `start(now)`; `on_response(response, now)` for final responses of our REGISTER
  transactions (others are ignored); `on_timeout(now)` when that transaction times out or its
  transport fails; `flow_failed(now)` when the TCP/TLS connection to the registrar is lost;
  `stop(now)` sends an unregister (Expires: 0) and returns it; `handle_timer(now)`.
- Outputs: `requests_to_send()` drains REGISTER requests (no Via / Max-Forwards: the endpoint
  adds them); the unregister from `stop` is queued there too, so send only what this drains.
  `next_event()` returns `RegistrationChanged(state, error)` or None; `get_timer()` is the next
  time `handle_timer` wants to run, or None.
- Status: `state` (STATE_* below), `error` (human text or None), `next_refresh` (absolute time
  of the next refresh or retry, None while a request is in flight), `expires` (granted, or None).

Policy, and why
- Refresh at max(expires / 2, expires - REFRESH_MARGIN) after the successful request was sent:
  long registrations refresh 90 s before they lapse, room for a refresh that times out
  (Timer F, 32 s) plus retries; short ones refresh half-way, as a lapse then comes sooner.
  Timing from the send time is safe: the registrar starts counting when it receives it.
- A final failure or timeout makes the state `failed` and schedules a retry, for ever:
  unreachable-type failures (timeout, lost connection, 408, 480, 5xx) wait 2, 4, 8, 16, 20 s;
  rejections (wrong password, 403, 404, other 4xx, 6xx) wait 30, 60 ... 300 s, so a bad
  password never hammers the registrar yet is retried after it is fixed. Each wait is drawn
  between 50 % and 100 % of that value (RFC 5626 section 4.5) so doors that lost the same
  registrar do not return in lock-step; Retry-After (at most an hour) lengthens it.
- Credentials are cached per realm and sent with refreshes (nc counting up per nonce, RFC 7616
  section 3.4); a challenge to credentials we just built from a fresh challenge is a wrong
  password unless it says stale=true, which is answered with the new nonce (section 3.3).
- Losing the connection while registered re-registers at once: the registrar can no longer
  reach us over it. Further failures then back off as above.
- Path (RFC 3327): REGISTER says `Supported: path`, so a proxy between us and the registrar
  (an SBC in front of a PBX) may record itself; nothing else is asked of a UA.
- Service-Route (RFC 3608 §6.1): the route set of the latest 2xx (at most MAX_SERVICE_ROUTES)
  is `service_route`, the preloaded Route of every request we send outside a dialog; each 2xx
  replaces it (none: empty), a failure clears it.
- One attempt answers at most MAX_CHALLENGE_ROUNDS 401/407/423 responses, so a registrar that
  keeps saying stale=true cannot hold us in a tight loop.
"""

import os

from firmware.compat import ordered_dict
from firmware.sip import auth
from firmware.sip.errors import ParseError
from firmware.sip.message import NameAddress, Request
from firmware.sip.uri import URI

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable

    from firmware.sip.digest import Challenge
    from firmware.sip.message import Response

STATE_DISABLED = "disabled"          # not started
STATE_UNREGISTERED = "unregistered"  # first attempt in flight, or unregistered by stop()
STATE_REGISTERED = "registered"      # the registrar holds our binding
STATE_FAILED = "failed"              # the last attempt failed; a retry is scheduled

# Inputs of the public state machine.
_START = "start"
_ACCEPTED = "accepted"
_FAILED = "failed"
_REMOVED = "removed"

_TRANSITIONS = {
    (STATE_DISABLED, _START): STATE_UNREGISTERED,       # §10.2: send the first REGISTER
    (STATE_UNREGISTERED, _START): STATE_UNREGISTERED,   # started again after stop()
    (STATE_UNREGISTERED, _ACCEPTED): STATE_REGISTERED,  # §10.2.4: the 2xx lists our binding
    (STATE_FAILED, _ACCEPTED): STATE_REGISTERED,        # a retry got through
    (STATE_REGISTERED, _ACCEPTED): STATE_REGISTERED,    # §10.2.1: refresh accepted
    (STATE_UNREGISTERED, _FAILED): STATE_FAILED,        # §10.2.8 error, or §17.1.2.2 timeout
    (STATE_REGISTERED, _FAILED): STATE_FAILED,          # refresh failed: the binding is lost
    (STATE_FAILED, _FAILED): STATE_FAILED,              # the retry failed too
    (STATE_REGISTERED, _REMOVED): STATE_UNREGISTERED,   # §10.2.2: Expires: 0 answered
    (STATE_FAILED, _REMOVED): STATE_UNREGISTERED,
    (STATE_UNREGISTERED, _REMOVED): STATE_UNREGISTERED,
}

REFRESH_MARGIN = 90.0
UNREACHABLE_BACKOFF = (2.0, 20.0)   # (first wait, cap): a returning registrar is seen in < 30 s
REJECTED_BACKOFF = (30.0, 300.0)
MAX_RETRY_AFTER = 3600.0
MAX_CHALLENGE_ROUNDS = 4           # 401/407/423 answers in one attempt before giving it up
MAX_SERVICE_ROUTES = 8
TRANSACTION_GUARD = 40.0           # Timer F (32 s) plus slack: never wait for ever on a report

TIMEOUT_ERROR = "timeout: no response from registrar"
FLOW_ERROR = "connection to registrar lost"

_UNREACHABLE_STATUSES = (408, 480)


class RegistrationChanged:
    """The public state or error changed."""

    __slots__ = ("state", "error")

    def __init__(self, state: str, error: "str | None") -> None:
        self.state = state
        self.error = error

    def __repr__(self) -> str:
        return f"<RegistrationChanged {self.state} {self.error or ''}>"


class _Attempt:
    """What we remember about the REGISTER in flight."""

    __slots__ = ("cseq", "sent_at", "answered")

    def __init__(self, cseq: int, sent_at: float,
                 answered: "tuple[str, str] | None") -> None:
        self.cseq = cseq
        self.sent_at = sent_at
        self.answered = answered  # credentials key built from the challenge just received


def _leading_int(value: "str | None") -> "int | None":
    """The number at the start of a header value (`120 (busy);duration=60`), or None."""
    if value is None:
        return None
    digits = ""
    for character in value.strip():
        if not character.isdigit():
            break
        digits += character
    return int(digits) if digits else None


class Registration:
    def __init__(self, aor: str, registrar_uri: str, contact: str, username: str, password: str,
                 expires: int = 3600, random: "Callable[[int], bytes]" = os.urandom,
                 credentials: "auth.Credentials | None" = None) -> None:
        self.aor = aor
        self.registrar_uri = registrar_uri
        self.contact = contact
        self._contact_uri = URI.parse(contact)  # a bad contact fails here, not on the first 200
        self.username = username
        self.password = password
        self.requested_expires = expires
        self._random = random
        # the station's digest answerer (firmware/sip/auth.py): nonce counts shared with calls
        self._auth = credentials or auth.Credentials(username, password, random)
        self._call_id = random(16).hex()  # constant across refreshes (§10.2)
        self._cseq = 0
        self.state = STATE_DISABLED
        self.error: str | None = None
        self.next_refresh: float | None = None
        self.expires: int | None = None
        self.service_route: list[str] = []  # RFC 3608: from the latest 2xx
        self._removed: str | None = None  # a former Contact to remove (move)
        self._running = False
        self._stopping = False
        self._attempt: _Attempt | None = None
        self._due: float | None = None
        self._failures = 0
        self._challenge_rounds = 0
        # (header name, realm) -> challenge, in the order challenged
        self._credentials: dict[tuple[str, str], Challenge] = ordered_dict()
        self._fresh_key: tuple[str, str] | None = None
        self._resend_after_flow_loss = False
        self._flow_lost = False
        self._outbox: list[Request] = []
        self._events: list[RegistrationChanged] = []
        self.changed_at: float | None = None  # `now` of the last change of `state`
        self.attempt_started: float | None = None  # `now` of the current/last attempt's start

    # -- inputs ----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        if self._running:
            return
        self._running = True
        self._stopping = False
        self._failures = 0
        self._move(_START, None, now)
        self._send(now)

    def stop(self, now: float) -> "Request | None":
        """Remove our binding (§10.2.2); returns the unregister, also queued for sending."""
        if not self._running or self._stopping:
            return None
        self._stopping = True
        # A REGISTER still in flight is superseded: its higher CSeq makes the registrar apply
        # the unregister last (§10.3 step 7), and shutdown cannot wait for Timer F.
        return self._send(now)

    def on_response(self, response: "Response", now: float) -> None:
        attempt = self._attempt
        if attempt is None or response.status < 200 or not self._is_ours(response, attempt):
            return
        self._attempt = None
        status = response.status
        if status in (401, 407):
            self._on_challenge(response, attempt, now)
        elif self._stopping:
            self._finish_stop(now)
        elif 200 <= status < 300:
            self._on_accepted(response, attempt, now)
        elif status == 423:
            self._on_interval_too_brief(response, now)
        else:
            unreachable = status in _UNREACHABLE_STATUSES or 500 <= status < 600
            reason = f"{status} {response.reason}" if response.reason else str(status)
            self._fail(now, reason, unreachable, _leading_int(response.headers.get("Retry-After")))

    def on_timeout(self, now: float) -> None:
        if self._attempt is None:
            return
        self._attempt = None
        if self._stopping:
            self._finish_stop(now)
        elif self._resend_after_flow_loss:
            self._send(now)
        else:
            self._fail(now, FLOW_ERROR if self._flow_lost else TIMEOUT_ERROR, True)

    def flow_failed(self, now: float) -> None:
        if not self._running or self._stopping:
            return
        was_registered = self.state == STATE_REGISTERED
        if was_registered:
            self.expires = None
            self._move(_FAILED, FLOW_ERROR, now)
        if self._attempt is not None:
            # The endpoint fails the transaction on that flow too; act on its on_timeout.
            self._flow_lost = True
            self._resend_after_flow_loss = was_registered
        elif was_registered:
            self._send(now)

    def refresh_now(self, now: float) -> None:
        """Re-register at once (the NAT mapping changed; or a keep-alive check): only while
        registered and with no REGISTER in flight."""
        if self._running and not self._stopping and self._attempt is None and \
                self.state == STATE_REGISTERED:
            self._send(now)

    def move(self, contact: str, now: float) -> None:
        """Our Contact moved (a new local port, after a NAT mapping changed): register it now
        and remove the one it replaces in the same REGISTER (RFC 3261 §10.2.2: its own
        `expires=0`), superseding a REGISTER still in flight (a higher CSeq, §10.3)."""
        if not self._running or self._stopping or contact == self.contact:
            return
        if self._removed is None:
            self._removed = self.contact
        self.contact = contact
        self._contact_uri = URI.parse(contact)
        self._attempt = None
        self._send(now)

    def lost(self, now: float, error: str) -> None:
        """The registrar stopped answering (keep-alives, firmware/sip/keepalive.py): the
        binding is as good as gone; re-register with the unreachable back-off. A refresh still
        in flight is given up (its late answer no longer counts) rather than waited for until
        Timer F, so the failure shows within the keep-alive's two periods."""
        if self._running and not self._stopping and self.state == STATE_REGISTERED:
            self._attempt = None
            self._fail(now, error, True)

    def handle_timer(self, now: float) -> None:
        if self._attempt is not None:
            if now >= self._attempt.sent_at + TRANSACTION_GUARD:
                self.on_timeout(now)
        elif self._due is not None and now >= self._due:
            self._send(now)

    # -- outputs ---------------------------------------------------------------------------
    def get_timer(self) -> "float | None":
        if self._attempt is not None:
            return self._attempt.sent_at + TRANSACTION_GUARD
        return self._due

    def requests_to_send(self) -> "list[Request]":
        requests, self._outbox = self._outbox, []
        return requests

    def next_event(self) -> "RegistrationChanged | None":
        return self._events.pop(0) if self._events else None

    @property
    def registering(self) -> bool:
        """A REGISTER is outstanding and we are not (or no longer) registered: the first
        attempt, or a retry after a failure (a refresh while registered is not)."""
        return self._attempt is not None and not self._stopping and \
            self.state != STATE_REGISTERED

    @property
    def attempt(self) -> int:
        """The attempts since the last success (or the start), the one in flight included."""
        return self._failures + (1 if self.registering else 0)

    # -- internals -------------------------------------------------------------------------
    def _move(self, event: str, error: "str | None", now: float) -> None:
        state = _TRANSITIONS[(self.state, event)]
        if (state, error) != (self.state, self.error):
            if state != self.state:
                self.changed_at = now
            self.state, self.error = state, error
            self._events.append(RegistrationChanged(state, error))

    def _is_ours(self, response: "Response", attempt: "_Attempt") -> bool:
        try:
            cseq = response.cseq()
        except ParseError:
            return False
        return response.headers.get("Call-ID") == self._call_id and \
            cseq.seq == attempt.cseq and cseq.method == "REGISTER"

    def _send(self, now: float) -> "Request":
        self._cseq += 1
        self._due = None
        self.next_refresh = None
        self._flow_lost = False
        self._resend_after_flow_loss = False
        expires = 0 if self._stopping else self.requested_expires
        request = Request("REGISTER", self.registrar_uri)
        headers = request.headers
        headers.set("From", f"<{self.aor}>;tag={self._random(8).hex()}")  # new tag: §8.1.1.3
        headers.set("To", f"<{self.aor}>")
        headers.set("Call-ID", self._call_id)
        headers.set("CSeq", f"{self._cseq} REGISTER")
        headers.set("Contact", f"<{self.contact}>")
        if self._removed is not None:
            headers.add("Contact", f"<{self._removed}>;expires=0")
        headers.set("Expires", str(expires))
        headers.set("Supported", "path")  # RFC 3327 §5
        for key, challenge in self._credentials.items():
            headers.add(key[0], self._auth.answer(challenge, "REGISTER", request.uri))
        if self._challenge_rounds == 0:  # a new attempt (not the answer to a challenge)
            self.attempt_started = now
        self._attempt = _Attempt(self._cseq, now, self._fresh_key)
        self._fresh_key = None
        self._outbox.append(request)
        return request

    def _on_challenge(self, response: "Response", attempt: "_Attempt", now: float) -> None:
        """§22.2: answer with credentials, once per fresh challenge."""
        status = response.status
        found = auth.challenge_in(response)
        self._challenge_rounds += 1
        if found is None:
            error = f"{status}: no supported authentication challenge"
        elif attempt.answered == (found[0], found[1].realm) and not found[1].stale:
            error = f"{status}: wrong username or password"
        elif self._challenge_rounds > MAX_CHALLENGE_ROUNDS:
            error = f"{status}: registrar keeps challenging our credentials"
        else:
            answer_name, challenge = found
            key = (answer_name, challenge.realm)
            self._credentials[key] = challenge
            self._fresh_key = key
            self._send(now)
            return
        if self._stopping:
            self._finish_stop(now)
        else:
            self._fail(now, error, False)

    def _on_interval_too_brief(self, response: "Response", now: float) -> None:
        """§10.2.8: retry with at least Min-Expires."""
        minimum = _leading_int(response.headers.get("Min-Expires"))
        self._challenge_rounds += 1
        if minimum is None or minimum <= self.requested_expires or \
                self._challenge_rounds > MAX_CHALLENGE_ROUNDS:
            self._fail(now, "423 Interval Too Brief", False)
            return
        self.requested_expires = minimum
        self._send(now)

    def _on_accepted(self, response: "Response", attempt: "_Attempt", now: float) -> None:
        granted = self._granted_expires(response)
        self._challenge_rounds = 0
        if granted <= 0:
            self._fail(now, f"{response.status}: registrar did not keep our contact", False)
            return
        self._failures = 0
        self._removed = None
        self.expires = granted
        self.service_route = response.headers.get_all("Service-Route")[:MAX_SERVICE_ROUTES]
        self._due = attempt.sent_at + max(granted / 2, granted - REFRESH_MARGIN)
        self.next_refresh = self._due
        self._move(_ACCEPTED, None, now)

    def _granted_expires(self, response: "Response") -> int:
        """Our contact's expires param, else the Expires header (§10.2.4); when our contact
        cannot be told apart, the shortest binding listed, refreshing early rather than late."""
        header = _leading_int(response.headers.get("Expires"))
        listed = []
        for value in response.headers.get_all("Contact"):
            try:
                binding = NameAddress.parse(value)
            except ParseError:
                continue
            expires = _leading_int(binding.params.get("expires"))
            if expires is None:
                expires = header
            if expires is None:
                continue
            if binding.uri == self._contact_uri:
                return expires
            listed.append(expires)
        if listed:
            return min(listed)
        return header if header is not None else self.requested_expires

    def _fail(self, now: float, error: str, unreachable: bool,
              retry_after: "float | None" = None) -> None:
        self._failures += 1
        self._challenge_rounds = 0
        self._credentials = ordered_dict()
        self.expires = None
        self.service_route = []
        first, cap = UNREACHABLE_BACKOFF if unreachable else REJECTED_BACKOFF
        wait = min(cap, first * 2 ** min(self._failures - 1, 16))
        wait *= 0.5 + 0.5 * int.from_bytes(self._random(2), "big") / 0xFFFF
        if retry_after is not None:
            wait = max(wait, min(retry_after, MAX_RETRY_AFTER))
        self._due = now + wait
        self.next_refresh = self._due
        self._move(_FAILED, error, now)

    def _finish_stop(self, now: float) -> None:
        self._running = False
        self._stopping = False
        self._credentials = ordered_dict()
        self.expires = None
        self._due = None
        self.next_refresh = None
        self._move(_REMOVED, None, now)
