"""Reliable provisional responses (RFC 3262, "100rel"), both sides, sans-I/O.

PBXs configured with 100rel (Asterisk/FreePBX `100rel=yes`, 3CX, many SBCs) send their 180/183
reliably and expect a PRACK; some also send INVITEs with `Require: 100rel`, which a UA that does
not do it must refuse with 420 (RFC 3261 §8.2.2.3), so the call never rings.

Public API
- `OPTION_TAG = "100rel"`; `requires(message)` / `supports(message)`: is the tag in Require /
  in Supported or Require (RFC 3262 §3: a UAC that requires it supports it too).
- UAC side, `ReliableReceiver` (one per outgoing INVITE, i.e. per `Branch`): `receive(response)
  -> (send_prack, report)` for a 101-199 response: whether to PRACK it (RFC 3262 §4) and
  whether it is new for the call (a retransmitted reliable 18x is neither PRACKed again nor
  reported twice). `prack(dialog, response) -> Request`: the PRACK with its RAck (§7.2).
- UAS side, `ReliableSender` (one per incoming INVITE that requires 100rel): `send(response,
  now)` marks a 18x reliable (Require: 100rel, RSeq, §7.1) and queues it; `on_prack(request)
  -> status` (200 for the one we wait for, 481 otherwise: §3); `final_sent()` stops the
  retransmissions; `get_timer()`, `handle_timer(now)`; `to_send()` drains the responses to
  (re)send through the INVITE's server transaction; `gave_up` after 64*T1 without a PRACK (the
  call then rejects the INVITE with a 5xx, §3).

Both sides are tables `(state, input) -> (next state, action)` citing RFC 3262, fed through
one `_feed` as in transaction.py.
"""

from firmware.sip.transaction import T1

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sip.dialog import Dialog
    from firmware.sip.message import Request, Response

    Table = dict[tuple[str, str], tuple[str, "str | None"]]

OPTION_TAG = "100rel"
MAX_RSEQ = 2 ** 31 - 1  # §7.1: the first RSeq is in 1..2**31-1
GIVE_UP_AFTER = 64 * T1  # §3: no PRACK within 64*T1: reject the INVITE with a 5xx


def _tags(message: "Request | Response", name: str) -> "list[str]":
    return [tag.strip().lower() for tag in message.headers.get_all(name) if tag.strip()]


def requires(message: "Request | Response") -> bool:
    return OPTION_TAG in _tags(message, "Require")


def supports(message: "Request | Response") -> bool:
    return OPTION_TAG in _tags(message, "Supported") or requires(message)


def _number(text: "str | None") -> "int | None":
    text = (text or "").strip()
    if not text or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value <= 2 ** 32 - 1 else None


# -- UAC: reliable 18x received --------------------------------------------------------------
# per early dialog (To tag): nothing seen yet, or the RSeq of the last PRACKed response
R_NONE = "none seen"
R_SEEN = "in sequence"

IN_ORDER = "next RSeq"  # the first reliable 18x of the dialog, or RSeq one more than the last
DUPLICATE = "RSeq already seen"
OUT_OF_ORDER = "RSeq gap"

RECEIVE: "Table" = {
    # §4: the first reliable response of a dialog sets the expected sequence; PRACK it
    (R_NONE, IN_ORDER): (R_SEEN, "prack"),
    # §4: each next one in sequence is PRACKed and reported
    (R_SEEN, IN_ORDER): (R_SEEN, "prack"),
    # §4: a retransmission is not PRACKed again (the PRACK's own transaction resends it)
    (R_SEEN, DUPLICATE): (R_SEEN, None),
    # §4: a response out of order (RSeq gap) is discarded: the UAS retransmits the missing one
    (R_SEEN, OUT_OF_ORDER): (R_SEEN, None),
}


class ReliableReceiver:
    """The RSeq of every early dialog of one INVITE (RFC 3262 §4)."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[str, int] = {}  # To tag -> RSeq last PRACKed

    def receive(self, response: "Response") -> "tuple[bool, bool]":
        """(send a PRACK, report the 18x upward) for a provisional response (not 100)."""
        if not requires(response):
            return False, True  # an unreliable 18x: reported as ever
        rseq = _number(response.headers.get("RSeq"))
        tag = response.to_address().tag
        if rseq is None or not tag:
            return False, True  # §7.1 violated: taken as an unreliable 18x
        last = self._last.get(tag)
        if last is None:
            state, name = R_NONE, IN_ORDER
        elif rseq == last + 1:
            state, name = R_SEEN, IN_ORDER
        elif rseq <= last:
            state, name = R_SEEN, DUPLICATE
        else:
            state, name = R_SEEN, OUT_OF_ORDER
        _, action = RECEIVE[(state, name)]
        if action != "prack":
            return False, False
        self._last[tag] = rseq
        if len(self._last) > 16:  # bounded: a forking proxy gives few early dialogs
            self._last.pop(next(iter(self._last)))
        return True, True

    @staticmethod
    def prack(dialog: "Dialog", response: "Response") -> "Request":
        """§7.2: RAck = the response's RSeq, then its CSeq number and method."""
        cseq = response.cseq()
        request = dialog.create_request("PRACK")
        request.headers.set("RAck", "%s %d %s" % (
            response.headers.get("RSeq").strip(), cseq.seq, cseq.method))
        return request


# -- UAS: our reliable 18x -------------------------------------------------------------------
S_IDLE = "idle"  # no reliable 18x outstanding
S_UNACKED = "waiting for PRACK"
S_DONE = "final sent"  # the INVITE has its final response: nothing is retransmitted
S_FAILED = "no PRACK"

SEND = "send 18x"
PRACK_MATCH = "PRACK for it"
PRACK_OTHER = "PRACK for nothing outstanding"
RETRANSMIT = "retransmission due"
GIVE_UP = "64*T1 without PRACK"
FINAL = "final response sent"

SENDER: "Table" = {
    # §3: RSeq one more than the last, Require: 100rel; resent at T1, doubling, until PRACKed
    (S_IDLE, SEND): (S_UNACKED, "send"),
    # §3: no second reliable 18x before the first is PRACKed: it waits and goes then
    (S_UNACKED, SEND): (S_UNACKED, "hold"),
    (S_UNACKED, RETRANSMIT): (S_UNACKED, "retransmit"),
    # §3: a PRACK matching RSeq, CSeq and method acknowledges it (200); then the one held back
    (S_UNACKED, PRACK_MATCH): (S_IDLE, "acknowledge"),
    # §3: a PRACK matching no unacknowledged reliable response gets 481
    (S_IDLE, PRACK_OTHER): (S_IDLE, "refuse"),
    (S_UNACKED, PRACK_OTHER): (S_UNACKED, "refuse"),
    (S_DONE, PRACK_OTHER): (S_DONE, "refuse"),
    (S_FAILED, PRACK_OTHER): (S_FAILED, "refuse"),
    # a PRACK for the outstanding one after the final response (it crossed it) is still 200
    (S_DONE, PRACK_MATCH): (S_DONE, "acknowledge"),
    # §3: 64*T1 without a PRACK: the UAS SHOULD reject the INVITE with a 5xx
    (S_UNACKED, GIVE_UP): (S_FAILED, None),
    # §3 (and §13.3.1.4 of RFC 3261): the final response ends the provisional phase
    (S_IDLE, FINAL): (S_DONE, None),
    (S_UNACKED, FINAL): (S_DONE, None),
    (S_FAILED, FINAL): (S_DONE, None),
}


class ReliableSender:
    """Our reliable provisional responses to one INVITE (RFC 3262 §3)."""

    def __init__(self, first_rseq: int) -> None:
        self.state = S_IDLE
        self._rseq = max(1, min(first_rseq, MAX_RSEQ - 1)) - 1  # the next one sent is first_rseq
        self._outstanding: Response | None = None
        self._held: Response | None = None
        self._interval = T1
        self.next_at: float | None = None
        self.give_up_at: float | None = None
        self._outbox: list[Response] = []
        self._status = 0

    @property
    def gave_up(self) -> bool:
        return self.state == S_FAILED

    def _feed(self, name: str, now: float, *args: object) -> None:
        row = SENDER.get((self.state, name))
        if row is None:
            return
        self.state, action = row
        if name == GIVE_UP or name == FINAL:
            self.next_at = self.give_up_at = None
        if action is not None:
            getattr(self, "_" + action)(now, *args)

    # -- inputs ------------------------------------------------------------------------------
    def send(self, response: "Response", now: float) -> None:
        self._feed(SEND, now, response)

    def on_prack(self, request: "Request", now: float) -> int:
        """The status for this PRACK (200 or 481)."""
        outstanding = self._outstanding
        name = PRACK_MATCH if outstanding is not None and \
            self._rack_matches(request, outstanding) else PRACK_OTHER
        self._status = 481
        self._feed(name, now)
        return self._status

    def final_sent(self, now: float) -> None:
        self._feed(FINAL, now)
        self._held = None

    def handle_timer(self, now: float) -> None:
        if self.give_up_at is not None and now >= self.give_up_at:
            self._feed(GIVE_UP, now)
        elif self.next_at is not None and now >= self.next_at:
            self._feed(RETRANSMIT, now)

    # -- outputs -----------------------------------------------------------------------------
    def get_timer(self) -> "float | None":
        due = [t for t in (self.next_at, self.give_up_at) if t is not None]
        return min(due) if due else None

    def to_send(self) -> "list[Response]":
        out, self._outbox = self._outbox, []
        return out

    # -- actions (SENDER) --------------------------------------------------------------------
    def _send(self, now: float, response: "Response") -> None:
        self._rseq += 1
        response.headers.set("Require", OPTION_TAG)
        response.headers.set("RSeq", str(self._rseq))
        self._outstanding = response
        self._interval = T1
        self.next_at = now + T1
        self.give_up_at = now + GIVE_UP_AFTER
        self._outbox.append(response)

    def _hold(self, now: float, response: "Response") -> None:
        self._held = response  # only the latest: a newer 18x says more than an older one

    def _retransmit(self, now: float) -> None:
        assert self._outstanding is not None  # S_UNACKED
        self._outbox.append(self._outstanding)
        self._interval *= 2  # §3: the interval doubles (no T2 cap in RFC 3262)
        self.next_at = now + self._interval

    def _acknowledge(self, now: float) -> None:
        self._status = 200
        self._outstanding = None
        self.next_at = self.give_up_at = None
        held, self._held = self._held, None
        if held is not None and self.state == S_IDLE:
            self._feed(SEND, now, held)

    def _refuse(self, now: float) -> None:
        self._status = 481

    def _rack_matches(self, request: "Request", response: "Response") -> bool:
        parts = (request.headers.get("RAck") or "").split()
        if len(parts) != 3:
            return False
        cseq = response.cseq()
        return _number(parts[0]) == self._rseq and _number(parts[1]) == cseq.seq and \
            parts[2] == cseq.method
