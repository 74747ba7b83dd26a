"""SIP transactions, sans-I/O: the four state machines of RFC 3261 §17 and their table.

Implements RFC 3261 §17.1.1 (INVITE client), §17.1.2 (non-INVITE client), §17.2.1 (INVITE
server), §17.2.2 (non-INVITE server), §17.1.3 / §17.2.3 (matching, with the RFC 2543 fallback),
§9.2 (finding the INVITE a CANCEL refers to), §17.1.4 / §17.2.4 (transport errors), as updated by
RFC 6026 (the Accepted state and Timers L and M: 2xx responses and their retransmissions belong to
the transaction user, never to the transaction) and RFC 4320 (a non-INVITE client that gets no
answer reports a timeout; it never makes up a 408).

Public API
- `T1`, `T2`, `T4` and `TIMER_A` ... `TIMER_M` (seconds, RFC 3261 Table 4, RFC 6026 §8).
  Timers D, I, J and K hold their unreliable-transport value; on reliable transports they are 0.
- `new_branch() -> str`: "z9hG4bK" + 24 random hex digits (§8.1.1.7).
- `ClientTransaction(request, reliable, now)`: sends `request` (its top Via carries the branch);
  the INVITE or non-INVITE machine is chosen from the method. Input `receive(response, now)`.
- `ServerTransaction(request, reliable, now)`: created for a new request. An INVITE server
  transaction sends a 100 (Trying) at the end of the turn in which the INVITE arrived, unless
  the TU has responded by then (§17.2.1, `TIMER_TRYING` below). Inputs
  `receive(request_or_ack, now)` for retransmissions and ACKs, `send_response(response, now)`
  from the transaction user.
- Common to both: `handle_timer(now)`, `transport_error(now)` (the owner could not send),
  `get_timer() -> float | None` (earliest deadline), `messages_to_send() -> list` of Request /
  Response objects to (re)transmit to the transaction's peer (drains), `next_event()` (None when
  empty), `state`, `terminated`, `request`, `branch`, `method`, `reliable`; servers also keep
  `last_response`.
- Events: `ResponseReceived(response)` (every response for the TU, including each 2xx while an
  INVITE client is Accepted), `AckReceived(ack)` (an ACK reaching an Accepted INVITE server,
  RFC 6026 §8.7), `TransactionTimeout()` (Timer B, F or H), `TransportError()`,
  `TransactionTerminated()` (always the last event).
- `TransactionTable(max_transactions=256)`: `add(transaction) -> bool` (False when full or the
  key is taken; a full table first drops a lingering transaction, which
  `evicted_transactions()` then hands out once so the owner forgets it too; `make_room(spare)`
  drops ahead of time),
  `remove(transaction)`, `ack_for_2xx(ack)` (an ACK that matched no transaction: the ACK for an
  accepted INVITE's 2xx, which marks that INVITE server transaction as ACKed), `lookup(message)`
  (a response finds its client transaction, a request its server transaction; None for strays:
  the owner handles stray responses and ACKs for 2xx), `match_response`, `match_request`,
  `find_invite_for_cancel(cancel)`, `get_timer()`, `handle_timer(now) -> [(transaction,
  event)]` (drives due timers, collects every pending event, removes terminated transactions)
  and `messages_to_send() -> [(transaction, message)]`; `len(table)` and iterating over it give
  the transactions held. The table keeps its timers in a deadline heap (no scan per turn:
  `get_timer` is O(1), `handle_timer` O(k log n) for k due timers); a transaction belongs to at
  most one table, and tells it of every input (`_feed`), so timers, events and messages set
  off by the owner's own calls (`receive`, `send_response`, `transport_error`) are found too.

Zero-length timers (D, I, J, K on reliable transports) fire within the call that starts them, so
such a transaction reaches Terminated at once. The one exception is the INVITE server's
`TIMER_TRYING`, started by the constructor: it is due at once and fires at the owner's next
`handle_timer`, i.e. once the turn that delivered the INVITE to the TU is over. Inputs a
state has no row for are absorbed, as the RFC asks for late or duplicate messages.
"""

import binascii
import os
from heapq import heappop, heappush

from firmware.sip.errors import ParseError
from firmware.sip.message import Request, Response

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Iterator
    from typing import Any

    from firmware.sip.message import CSeq, Via

MAGIC_COOKIE = "z9hG4bK"

# RFC 3261 Table 4 and RFC 6026 §8 (seconds).
T1 = 0.5  # round-trip time estimate
T2 = 4.0  # longest retransmission interval for non-INVITE requests and INVITE responses
T4 = 5.0  # longest time a message stays in the network
TIMER_A = T1  # INVITE request retransmission, first interval (unreliable only), doubles
TIMER_B = 64 * T1  # INVITE transaction timeout
TIMER_C = 180.0  # proxy INVITE timeout (§16.6); a user agent never starts it
TIMER_D = 32.0  # wait for response retransmissions (0 on reliable)
TIMER_E = T1  # non-INVITE request retransmission, first interval (unreliable only), up to T2
TIMER_F = 64 * T1  # non-INVITE transaction timeout
TIMER_G = T1  # INVITE response retransmission, first interval (unreliable only), up to T2
TIMER_H = 64 * T1  # wait for ACK receipt
TIMER_I = T4  # wait for ACK retransmissions (0 on reliable)
TIMER_J = 64 * T1  # wait for non-INVITE request retransmissions (0 on reliable)
TIMER_K = T4  # wait for response retransmissions (0 on reliable)
TIMER_L = 64 * T1  # RFC 6026: wait for retransmissions of an accepted INVITE
TIMER_M = 64 * T1  # RFC 6026: wait for 2xx retransmissions and forked 2xx
# §17.2.1: the server transaction "MUST generate a 100 (Trying) response unless it knows that
# the TU will generate a provisional or final response within 200 ms". It waits for the end of
# the turn that handed the INVITE to the TU (the owner's next handle_timer) and is left out
# when the TU responded within it: an auto-answered call's 200, a ringing call's 180, a
# refusal, all leave in that turn (issue 14: the answer path); anything slower gets its 100.
TIMER_TRYING = 0.0

# States.
CALLING = "Calling"
TRYING = "Trying"
PROCEEDING = "Proceeding"
COMPLETED = "Completed"
ACCEPTED = "Accepted"
CONFIRMED = "Confirmed"
TERMINATED = "Terminated"

# Inputs: the arrow labels of RFC 3261 Figures 5-8 and RFC 6026 Figures 5 and 7.
PROVISIONAL = "1xx"
SUCCESS = "2xx"
FAILURE = "300-699"
PROVISIONAL_FROM_TU = "1xx from TU"
SUCCESS_FROM_TU = "2xx from TU"
FAILURE_FROM_TU = "300-699 from TU"
REQUEST = "request retransmission"
ACK = "ACK"
TRANSPORT_ERROR = "transport error"
FIRES_A = "Timer A"
FIRES_B = "Timer B"
FIRES_D = "Timer D"
FIRES_E = "Timer E"
FIRES_F = "Timer F"
FIRES_G = "Timer G"
FIRES_H = "Timer H"
FIRES_I = "Timer I"
FIRES_J = "Timer J"
FIRES_K = "Timer K"
FIRES_L = "Timer L"
FIRES_M = "Timer M"
FIRES_TRYING = "Timer Trying"  # TIMER_TRYING above (no letter in RFC 3261's Table 4)

# (state, input) -> (next state, action). The action names a method `_<action>`; None does
# nothing beyond the state change.
INVITE_CLIENT = {
    # §17.1.1.2 (Figure 5) as updated by RFC 6026 §7.2 / §8.4
    (CALLING, FIRES_A): (CALLING, "retransmit_invite"),
    (CALLING, FIRES_B): (TERMINATED, "time_out"),
    (CALLING, TRANSPORT_ERROR): (TERMINATED, "report_transport_error"),
    (CALLING, PROVISIONAL): (PROCEEDING, "stop_retransmitting"),
    (CALLING, SUCCESS): (ACCEPTED, "accept"),
    (CALLING, FAILURE): (COMPLETED, "acknowledge_failure"),
    (PROCEEDING, PROVISIONAL): (PROCEEDING, "pass_up"),
    (PROCEEDING, SUCCESS): (ACCEPTED, "accept"),
    (PROCEEDING, FAILURE): (COMPLETED, "acknowledge_failure"),
    # §17.1.1.2: a retransmitted failure is acknowledged again, not passed up
    (COMPLETED, FAILURE): (COMPLETED, "resend_ack"),
    (COMPLETED, TRANSPORT_ERROR): (TERMINATED, "report_transport_error"),
    (COMPLETED, FIRES_D): (TERMINATED, None),
    # RFC 6026 §8.4: every 2xx (retransmitted or forked) goes to the TU, which ACKs it
    (ACCEPTED, SUCCESS): (ACCEPTED, "pass_up"),
    (ACCEPTED, FIRES_M): (TERMINATED, None),
}

NON_INVITE_CLIENT = {
    # §17.1.2.2 (Figure 6); RFC 4320 §4.2: a timeout is reported, never a 408
    (TRYING, FIRES_E): (TRYING, "retransmit_request"),
    (TRYING, FIRES_F): (TERMINATED, "time_out"),
    (TRYING, TRANSPORT_ERROR): (TERMINATED, "report_transport_error"),
    (TRYING, PROVISIONAL): (PROCEEDING, "pass_up"),
    (TRYING, SUCCESS): (COMPLETED, "complete"),
    (TRYING, FAILURE): (COMPLETED, "complete"),
    (PROCEEDING, FIRES_E): (PROCEEDING, "retransmit_request_at_t2"),
    (PROCEEDING, FIRES_F): (TERMINATED, "time_out"),
    (PROCEEDING, TRANSPORT_ERROR): (TERMINATED, "report_transport_error"),
    (PROCEEDING, PROVISIONAL): (PROCEEDING, "pass_up"),
    (PROCEEDING, SUCCESS): (COMPLETED, "complete"),
    (PROCEEDING, FAILURE): (COMPLETED, "complete"),
    (COMPLETED, FIRES_K): (TERMINATED, None),
}

INVITE_SERVER = {
    # §17.2.1 (Figure 7) as updated by RFC 6026 §7.1 / §8.5-§8.7
    # §17.2.1: the 100 (Trying) when the TU has not responded within its turn (TIMER_TRYING);
    # a response of the TU's own (provisional here, final below: their actions replace the
    # timers) makes it unnecessary
    (PROCEEDING, FIRES_TRYING): (PROCEEDING, "send_trying"),
    (PROCEEDING, REQUEST): (PROCEEDING, "resend_last_response"),
    (PROCEEDING, PROVISIONAL_FROM_TU): (PROCEEDING, "send_provisional"),
    (PROCEEDING, SUCCESS_FROM_TU): (ACCEPTED, "send_success"),
    (PROCEEDING, FAILURE_FROM_TU): (COMPLETED, "send_failure"),
    (PROCEEDING, TRANSPORT_ERROR): (TERMINATED, "report_transport_error"),
    (COMPLETED, REQUEST): (COMPLETED, "resend_last_response"),
    (COMPLETED, FIRES_G): (COMPLETED, "retransmit_response"),
    (COMPLETED, FIRES_H): (TERMINATED, "time_out"),
    (COMPLETED, TRANSPORT_ERROR): (TERMINATED, "report_transport_error"),
    (COMPLETED, ACK): (CONFIRMED, "confirm"),
    (CONFIRMED, ACK): (CONFIRMED, None),
    (CONFIRMED, REQUEST): (CONFIRMED, None),
    (CONFIRMED, FIRES_I): (TERMINATED, None),
    # RFC 6026 §8.7: the TU retransmits its 2xx through us; INVITE retransmissions are absorbed;
    # a failed 2xx send does not end the transaction
    (ACCEPTED, REQUEST): (ACCEPTED, None),
    (ACCEPTED, ACK): (ACCEPTED, "pass_ack_up"),
    (ACCEPTED, SUCCESS_FROM_TU): (ACCEPTED, "send_response"),
    (ACCEPTED, TRANSPORT_ERROR): (ACCEPTED, "report_transport_error"),
    (ACCEPTED, FIRES_L): (TERMINATED, None),
}

NON_INVITE_SERVER = {
    # §17.2.2 (Figure 8)
    (TRYING, REQUEST): (TRYING, None),
    (TRYING, PROVISIONAL_FROM_TU): (PROCEEDING, "send_response"),
    (TRYING, SUCCESS_FROM_TU): (COMPLETED, "send_final"),
    (TRYING, FAILURE_FROM_TU): (COMPLETED, "send_final"),
    (PROCEEDING, REQUEST): (PROCEEDING, "resend_last_response"),
    (PROCEEDING, PROVISIONAL_FROM_TU): (PROCEEDING, "send_response"),
    (PROCEEDING, SUCCESS_FROM_TU): (COMPLETED, "send_final"),
    (PROCEEDING, FAILURE_FROM_TU): (COMPLETED, "send_final"),
    (PROCEEDING, TRANSPORT_ERROR): (TERMINATED, "report_transport_error"),
    (COMPLETED, REQUEST): (COMPLETED, "resend_last_response"),
    (COMPLETED, TRANSPORT_ERROR): (TERMINATED, "report_transport_error"),
    (COMPLETED, FIRES_J): (TERMINATED, None),
}


def new_branch() -> str:
    """A fresh RFC 3261 branch: the magic cookie and 96 random bits (§8.1.1.7)."""
    return MAGIC_COOKIE + binascii.hexlify(os.urandom(12)).decode()


# -- events ------------------------------------------------------------------------------------

class ResponseReceived:
    """A response the transaction user must see."""

    __slots__ = ("response",)

    def __init__(self, response: "Response") -> None:
        self.response = response

    def __repr__(self) -> str:
        return f"ResponseReceived({self.response.status} {self.response.reason})"


class AckReceived:
    """An ACK that reached an Accepted INVITE server transaction: it is the TU's (RFC 6026)."""

    __slots__ = ("ack",)

    def __init__(self, ack: "Request") -> None:
        self.ack = ack

    def __repr__(self) -> str:
        return "AckReceived()"


class TransactionTimeout:
    """Timer B or F (no final response) or Timer H (no ACK) fired."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TransactionTimeout()"


class TransportError:
    """The owner reported that a message of this transaction could not be sent."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TransportError()"


class TransactionTerminated:
    """The transaction reached Terminated; the owner may forget it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TransactionTerminated()"


# -- transactions ------------------------------------------------------------------------------

def _top_via(message: "Request | Response") -> "Via":
    return message.top_via()  # parsed once per message (firmware/sip/message.py)


def _cseq(message: "Request | Response") -> "CSeq":
    return message.cseq()


class _Transaction:
    """What the four machines share: timers, the outgoing queue, the event queue."""

    def __init__(self, request: "Request", reliable: bool,
                 transitions: dict[tuple[str, str], tuple[str, str | None]],
                 state: str) -> None:
        if request.method == "ACK":
            # An ACK for a 2xx is its own transaction-less request (§17.1.1.3, §17.2.3).
            raise ValueError("an ACK never starts a transaction")
        self.request = request
        self.reliable = reliable
        self.method = request.method
        self.branch = _top_via(request).branch
        self.state = state
        self._transitions = transitions
        self._timers: dict[str, float] = {}  # input (e.g. FIRES_A) -> deadline
        self._interval = T1  # current retransmission interval of Timer A, E or G
        self._outgoing: list[Request | Response] = []
        self._events: list[object] = []
        # Kept by the TransactionTable holding this transaction (None outside one): its dict of
        # transactions whose timers, events or messages may have changed (`_feed` adds this
        # one), the heap entry (deadline, sequence, transaction) standing for our earliest
        # timer, and our place in the table's order (kind, sequence of `add`).
        self._watch: dict[_Transaction, None] | None = None
        self._entry: tuple[float, int, _Transaction] | None = None
        self._order = (0, 0)

    @property
    def terminated(self) -> bool:
        return self.state == TERMINATED

    def get_timer(self) -> float | None:
        return min(self._timers.values()) if self._timers else None

    def handle_timer(self, now: float) -> None:
        while True:
            due = [(deadline, name) for name, deadline in self._timers.items() if deadline <= now]
            if not due:
                return
            name = min(due)[1]
            del self._timers[name]
            self._feed(name, None, now)

    def transport_error(self, now: float) -> None:
        self._feed(TRANSPORT_ERROR, None, now)

    def messages_to_send(self) -> "list[Request | Response]":
        messages, self._outgoing = self._outgoing, []
        return messages

    def next_event(self) -> "Any":
        return self._events.pop(0) if self._events else None

    def _feed(self, name: str, message: "Response | Request | None", now: float) -> None:
        if self._watch is not None:  # every change of timers, events and messages comes here
            self._watch[self] = None
        row = self._transitions.get((self.state, name))
        if row is None:
            return
        next_state, action = row
        if action is not None:
            getattr(self, "_" + action)(message, now)
        self.state = next_state
        if next_state == TERMINATED:
            self._timers = {}
            self._events.append(TransactionTerminated())
        else:
            self.handle_timer(now)  # zero-length timers just started fire now

    def _wait(self, unreliable_value: float) -> float:
        """Timers D, I, J and K: their value on unreliable transports, zero on reliable ones."""
        return 0.0 if self.reliable else unreliable_value

    def _time_out(self, message: "Request | Response | None", now: float) -> None:
        self._events.append(TransactionTimeout())

    def _report_transport_error(self, message: "Request | Response | None", now: float) -> None:
        self._events.append(TransportError())


class ClientTransaction(_Transaction):
    """RFC 3261 §17.1.1 (INVITE) or §17.1.2 (any other method; never ACK)."""

    @property
    def lingering(self) -> bool:
        """Completed: only absorbing retransmitted final responses until Timer D or K (§17.1.1.2,
        §17.1.2.2). Accepted INVITE clients still pass 2xx up to be ACKed (RFC 6026): not."""
        return self.state == COMPLETED

    def __init__(self, request: "Request", reliable: bool, now: float) -> None:
        if request.method == "INVITE":
            _Transaction.__init__(self, request, reliable, INVITE_CLIENT, CALLING)
            retransmit, timeout = FIRES_A, (FIRES_B, TIMER_B)
        else:
            _Transaction.__init__(self, request, reliable, NON_INVITE_CLIENT, TRYING)
            retransmit, timeout = FIRES_E, (FIRES_F, TIMER_F)
        self._ack: Request | None = None
        self._outgoing.append(request)
        if not reliable:
            self._timers[retransmit] = now + T1
        self._timers[timeout[0]] = now + timeout[1]

    def __repr__(self) -> str:
        return f"<ClientTransaction {self.method} {self.branch} {self.state}>"

    def receive(self, response: "Response", now: float) -> None:
        if not isinstance(response, Response):
            return
        if response.status < 200:
            self._feed(PROVISIONAL, response, now)
        elif response.status < 300:
            self._feed(SUCCESS, response, now)
        else:
            self._feed(FAILURE, response, now)

    def _pass_up(self, response: "Response", now: float) -> None:
        self._events.append(ResponseReceived(response))

    def _retransmit_invite(self, message: "Request | Response | None", now: float) -> None:
        # §17.1.1.2: Timer A doubles without bound; Timer B ends the transaction first.
        self._outgoing.append(self.request)
        self._interval *= 2
        self._timers[FIRES_A] = now + self._interval

    def _retransmit_request(self, message: "Request | Response | None", now: float) -> None:
        # §17.1.2.2: Timer E doubles up to T2 while Trying.
        self._outgoing.append(self.request)
        self._interval = min(2 * self._interval, T2)
        self._timers[FIRES_E] = now + self._interval

    def _retransmit_request_at_t2(self, message: "Request | Response | None", now: float) -> None:
        # §17.1.2.2: once a provisional response arrived, every T2.
        self._outgoing.append(self.request)
        self._timers[FIRES_E] = now + T2

    def _stop_retransmitting(self, response: "Response", now: float) -> None:
        # §17.1.1.2: Proceeding neither retransmits nor times out; the TU may CANCEL.
        self._timers = {}
        self._pass_up(response, now)

    def _accept(self, response: "Response", now: float) -> None:
        self._timers = {FIRES_M: now + TIMER_M}
        self._pass_up(response, now)

    def _acknowledge_failure(self, response: "Response", now: float) -> None:
        self._timers = {FIRES_D: now + self._wait(TIMER_D)}
        self._ack = self._make_ack(response)
        self._outgoing.append(self._ack)
        self._pass_up(response, now)

    def _resend_ack(self, response: "Response", now: float) -> None:
        assert self._ack is not None  # sent on entering COMPLETED, the only state that resends
        self._outgoing.append(self._ack)

    def _complete(self, response: "Response", now: float) -> None:
        self._timers = {FIRES_K: now + self._wait(TIMER_K)}
        self._pass_up(response, now)

    def _make_ack(self, response: "Response") -> "Request":
        """§17.1.1.3: the ACK for a non-2xx final response, part of this transaction."""
        invite = self.request.headers
        ack = Request("ACK", self.request.uri)
        ack.headers.add("Via", invite.get("Via"))
        for value in invite.get_all("Route"):
            ack.headers.add("Route", value)
        ack.headers.add("Max-Forwards", invite.get("Max-Forwards", "70"))
        ack.headers.add("From", invite.get("From"))
        ack.headers.add("To", response.headers.get("To"))
        ack.headers.add("Call-ID", invite.get("Call-ID"))
        ack.headers.add("CSeq", f"{_cseq(self.request).seq} ACK")
        return ack


class ServerTransaction(_Transaction):
    """RFC 3261 §17.2.1 (INVITE) or §17.2.2 (any other method but ACK)."""

    def __init__(self, request: "Request", reliable: bool, now: float) -> None:
        self.last_response: Response | None = None
        self.acked = False  # an ACK for our 2xx came through (RFC 6026 Accepted state)
        if request.method == "INVITE":
            _Transaction.__init__(self, request, reliable, INVITE_SERVER, PROCEEDING)
            # §17.2.1: a 100 (Trying), so the client stops retransmitting, unless the TU
            # responds in the turn that hands it the INVITE (see TIMER_TRYING).
            self._timers[FIRES_TRYING] = now + TIMER_TRYING
        else:
            _Transaction.__init__(self, request, reliable, NON_INVITE_SERVER, TRYING)

    def __repr__(self) -> str:
        return f"<ServerTransaction {self.method} {self.branch} {self.state}>"

    @property
    def lingering(self) -> bool:
        """Only absorbing retransmissions until a timer ends it: a non-INVITE Completed (Timer
        J, §17.2.2), an INVITE Confirmed (Timer I, §17.2.1), an INVITE Accepted whose ACK has
        arrived (Timer L, RFC 6026 §8.7). An INVITE Completed still resends its failure: not."""
        if self.method != "INVITE":
            return self.state == COMPLETED
        return self.state == CONFIRMED or (self.state == ACCEPTED and self.acked)

    def receive(self, request: "Request", now: float) -> None:
        if not isinstance(request, Request):
            return
        if request.method == "ACK":
            self._feed(ACK, request, now)
        elif request.method == self.method:
            self._feed(REQUEST, request, now)

    def send_response(self, response: "Response", now: float) -> None:
        if response.status < 200:
            self._feed(PROVISIONAL_FROM_TU, response, now)
        elif response.status < 300:
            self._feed(SUCCESS_FROM_TU, response, now)
        else:
            self._feed(FAILURE_FROM_TU, response, now)

    def _send_response(self, response: "Response", now: float) -> None:
        self.last_response = response
        self._outgoing.append(response)

    def _send_trying(self, message: "Request | Response | None", now: float) -> None:
        self._send_response(self.request.make_response(100), now)

    def _send_provisional(self, response: "Response", now: float) -> None:
        self._timers.pop(FIRES_TRYING, None)  # the TU's own provisional response came first
        self._send_response(response, now)

    def _resend_last_response(self, request: "Request", now: float) -> None:
        if self.last_response is not None:
            self._outgoing.append(self.last_response)

    def _send_success(self, response: "Response", now: float) -> None:
        self._timers = {FIRES_L: now + TIMER_L}
        self._send_response(response, now)

    def _send_failure(self, response: "Response", now: float) -> None:
        self._timers = {FIRES_H: now + TIMER_H}
        if not self.reliable:
            self._timers[FIRES_G] = now + T1
        self._send_response(response, now)

    def _retransmit_response(self, message: "Request | Response | None", now: float) -> None:
        # §17.2.1: Timer G doubles up to T2.
        assert self.last_response is not None  # Timer G starts with the response it repeats
        self._outgoing.append(self.last_response)
        self._interval = min(2 * self._interval, T2)
        self._timers[FIRES_G] = now + self._interval

    def _confirm(self, ack: "Request", now: float) -> None:
        self._timers = {FIRES_I: now + self._wait(TIMER_I)}

    def _pass_ack_up(self, ack: "Request", now: float) -> None:
        self.acked = True
        self._events.append(AckReceived(ack))

    def _send_final(self, response: "Response", now: float) -> None:
        self._timers = {FIRES_J: now + self._wait(TIMER_J)}
        self._send_response(response, now)


# -- matching ----------------------------------------------------------------------------------

def _from_tag(message: "Request | Response") -> "str | None":
    return message.from_address().tag if message.headers.get("From") else None


def _to_tag(message: "Request | Response") -> "str | None":
    return message.to_address().tag if message.headers.get("To") else None


def _via_identity(via: "Via") -> tuple:
    """What "the top Via matches" compares for RFC 2543 peers (§17.2.3)."""
    params = sorted((name.lower(), value) for name, value in via.params.items())
    return (via.transport.upper(), via.host.lower(), via.port, tuple(params))


def _rfc2543_identity(request: "Request", via: "Via") -> tuple:
    headers = request.headers
    return (headers.get("Call-ID"), _from_tag(request), _cseq(request).seq,
            _via_identity(via))


def _rfc3261_key(via: "Via", method: str) -> tuple[str, str, int | None, str] | None:
    """§17.2.3: branch, sent-by and method; None for an RFC 2543 peer (no magic cookie)."""
    branch = via.branch
    if not branch or not branch.startswith(MAGIC_COOKIE):
        return None
    return (branch, via.host.lower(), via.port, method)


def _table_order(transaction: "_Transaction") -> tuple[int, int]:
    return transaction._order


class TransactionTable:
    """The transactions of one endpoint, matched per §17.1.3 / §17.2.3, at most
    `max_transactions` of them (a flood of requests must not exhaust memory). When full, a
    `lingering` transaction (one only absorbing retransmissions until its timer ends it) makes
    room for a new one: otherwise 20 calls a second fill the table with 32 s waits (Timers J
    and L over UDP) and refuse calls after about a hundred. `evicted` counts them."""

    def __init__(self, max_transactions: int = 256) -> None:
        self.max_transactions = max_transactions
        self.evicted = 0
        self._clients: dict[tuple, ClientTransaction] = {}  # (branch, CSeq method) ->
        self._servers: dict[tuple | None, ServerTransaction] = {}  # (branch, sent-by, port,
        # method) ->
        # server transactions for requests without a magic cookie
        self._rfc2543_servers: list[ServerTransaction] = []
        # (transaction, message) left by removed transactions
        self._orphan_messages: list[tuple[_Transaction, Request | Response]] = []
        # dropped to make room (`_evict_lingering`), until the owner takes them
        self._evicted: list[_Transaction] = []
        # (Call-ID, CSeq number) -> INVITE server transaction: the ACK for its 2xx is a
        # transaction of its own (a new branch, §13.2.2.4, §17.1.1.3) and matches none, so
        # it is found here to mark the INVITE ACKed (RFC 6026 §8.7; see `ack_for_2xx`)
        self._invites: dict[tuple[str | None, int], ServerTransaction] = {}
        # Timers (issue 14: no scan of the table per turn). A binary heap of (deadline,
        # sequence, transaction), one live entry per transaction with a timer (the one its
        # `_entry` is); an entry whose transaction re-armed, stopped its timers or left is
        # stale and dropped when it reaches the top, or all at once when the stale outnumber
        # the live (`_compact_if_stale`). Transactions tell the table of changes through `_touched`
        # (see `_Transaction._feed`); `_refresh` brings their entries up to date, then they
        # wait in `_pending` until `handle_timer` collects their events, and in `_unsent`
        # until `messages_to_send` collects their messages. Those three hold only
        # transactions of the table: at most `max_transactions` each.
        self._heap: list[tuple[float, int, _Transaction]] = []
        self._live = 0  # entries in the heap that are live
        self._sequence = 0  # of heap entries: the tie-break between equal deadlines
        self._added = 0  # of `add`: the order in which the table iterates (see `_order`)
        self._touched: dict[_Transaction, None] = {}
        self._pending: dict[_Transaction, None] = {}
        self._unsent: dict[_Transaction, None] = {}

    def __len__(self) -> int:
        return len(self._clients) + len(self._servers) + len(self._rfc2543_servers)

    def __iter__(self) -> "Iterator[Any]":  # ClientTransaction or ServerTransaction
        return iter(list(self._clients.values()) + list(self._servers.values())
                    + self._rfc2543_servers)

    def add(self, transaction: "ServerTransaction | ClientTransaction") -> bool:
        if len(self) >= self.max_transactions and not self._evict_lingering():
            return False
        key: Any  # see the comments in __init__
        store: Any
        if isinstance(transaction, ClientTransaction):
            key = (transaction.branch, transaction.method)
            store = self._clients
        else:
            key = _rfc3261_key(_top_via(transaction.request), transaction.method)
            if key is None:
                self._rfc2543_servers.append(transaction)
                self._adopt(transaction, 2)
                return True
            store = self._servers
        if key in store:
            return False
        store[key] = transaction
        self._adopt(transaction, 0 if store is self._clients else 1)
        if transaction.method == "INVITE" and isinstance(transaction, ServerTransaction):
            request = transaction.request
            self._invites[(request.headers.get("Call-ID"), _cseq(request).seq)] = transaction
        return True

    def _evict_lingering(self) -> bool:
        """Drop the first lingering transaction found (the oldest where dicts keep their
        order): the scan stops there, so with every ACKed INVITE lingering (`ack_for_2xx`) the
        oldest entry is the one dropped and a full table costs no more per call than a small
        one (issue 14: a scan over the whole table was ~40-100 µs of every answer)."""
        stores: Any = (self._clients.values(), self._servers.values(), self._rfc2543_servers)
        for store in stores:
            for old in store:
                if old.lingering:
                    self.remove(old)  # ends this iteration: we return at once
                    self.evicted += 1
                    self._evicted.append(old)
                    return True
        return False

    def make_room(self, spare: int) -> None:
        """Drop lingering transactions until `spare` more fit without dropping one. The owner
        calls it once a turn is over (its timer turn), so the next requests' `add` does not
        pay for the drop (issue 14: ~20 µs of the next INVITE's answer with a full table);
        whatever finds no lingering transaction to drop stays, as in `add`."""
        while len(self) > self.max_transactions - spare and self._evict_lingering():
            pass

    def evicted_transactions(self) -> "list[_Transaction]":
        """The transactions dropped to make room since the last call (each once): the owner
        forgets what it keeps about them, or they would stay referenced forever (they are no
        longer driven, so they never terminate)."""
        evicted, self._evicted = self._evicted, []
        return evicted

    def ack_for_2xx(self, ack: "Request") -> None:
        """An ACK that matched no transaction: if it acknowledges the 2xx of an INVITE server
        transaction here (same Call-ID, CSeq number and From tag), that transaction is ACKed
        (RFC 6026 §8.7: it only absorbs INVITE retransmissions until Timer L), so a full table
        may drop it (`lingering`). The ACK itself still goes to the TU, as before."""
        try:
            transaction = self._invites.get((ack.headers.get("Call-ID"), _cseq(ack).seq))
            if transaction is not None and transaction.state == ACCEPTED and \
                    _from_tag(transaction.request) == _from_tag(ack):
                transaction.acked = True
        except ParseError:
            return

    def remove(self, transaction: "_Transaction") -> None:
        """Forget `transaction`; removing one that is not here is harmless."""
        key: Any  # see the comments in __init__
        store: Any
        if isinstance(transaction, ClientTransaction):
            store, key = self._clients, (transaction.branch, transaction.method)
        else:
            store, key = self._servers, _rfc3261_key(_top_via(transaction.request),
                                                     transaction.method)
        if store.get(key) is transaction:
            del store[key]
            self._release(transaction)
        elif transaction in self._rfc2543_servers:
            self._rfc2543_servers.remove(transaction)
            self._release(transaction)
        if transaction.method == "INVITE" and store is self._servers:
            request = transaction.request
            invite = (request.headers.get("Call-ID"), _cseq(request).seq)
            if self._invites.get(invite) is transaction:
                del self._invites[invite]

    def lookup(self,
               message: "Response | Request") -> "ServerTransaction | ClientTransaction | None":
        if isinstance(message, Response):
            return self.match_response(message)
        return self.match_request(message)

    def match_response(self, response: "Response") -> "ClientTransaction | None":
        """§17.1.3: top Via branch and CSeq method (a CANCEL shares its INVITE's branch)."""
        try:
            key = (_top_via(response).branch, _cseq(response).method)
        except ParseError:
            return None
        return self._clients.get(key)

    def match_request(self, request: "Request") -> "ServerTransaction | None":
        """§17.2.3: the server transaction `request` (a retransmission or an ACK) belongs to."""
        method = "INVITE" if request.method == "ACK" else request.method
        return self._match_server(request, method)

    def find_invite_for_cancel(self, cancel: "Request") -> "ServerTransaction | None":
        """§9.2: the INVITE server transaction a CANCEL refers to (same rules, method INVITE)."""
        return self._match_server(cancel, "INVITE")

    def get_timer(self) -> float | None:
        """The earliest deadline of the transactions held: the top of the heap (O(1) but for
        the transactions changed since the last call and the stale entries it drops)."""
        self._refresh()
        heap = self._heap
        while heap:
            entry = heap[0]
            if entry[2]._entry is entry:
                return entry[0]
            heappop(heap)  # stale
        return None

    def handle_timer(self, now: float) -> "list[tuple[_Transaction, object]]":
        """Drive every transaction whose timer is due; return each pending event paired with
        its transaction and drop the terminated transactions (their last messages stay
        available through `messages_to_send`). Only the transactions with a due timer and
        those changed since the last call are visited, in the table's order (clients, then
        servers, each as added), which is the order of the events returned."""
        self._refresh()
        visit = self._pending
        heap = self._heap
        fired = []
        while heap and heap[0][0] <= now:
            entry = heappop(heap)
            transaction = entry[2]
            if transaction._entry is entry:
                transaction._entry = None
                self._live -= 1
                visit[transaction] = None
                fired.append(transaction)
        if not visit:
            return []
        transactions = list(visit)
        visit.clear()
        if len(transactions) > 1:
            transactions.sort(key=_table_order)
        events = []
        for transaction in transactions:
            deadline = transaction.get_timer()
            if deadline is not None and deadline <= now:
                transaction.handle_timer(now)
            while True:
                event = transaction.next_event()
                if event is None:
                    break
                events.append((transaction, event))
            if transaction.terminated:
                for message in transaction.messages_to_send():
                    self._orphan_messages.append((transaction, message))
                self.remove(transaction)
            else:
                self._unsent[transaction] = None
        for transaction in fired:  # their next deadline (firing a timer touches them anyway)
            if transaction._watch is self._touched:
                self._touched[transaction] = None
        return events

    def messages_to_send(self) -> "list[tuple[_Transaction, Request | Response]]":
        """Every queued message as (transaction, message); the owner sends each to the
        transaction's peer."""
        messages, self._orphan_messages = self._orphan_messages, []
        unsent = self._unsent
        for transaction in self._touched:
            unsent[transaction] = None
        for transaction in self._pending:
            unsent[transaction] = None
        if not unsent:
            return messages
        transactions = list(unsent)
        unsent.clear()
        if len(transactions) > 1:
            transactions.sort(key=_table_order)
        for transaction in transactions:
            for message in transaction.messages_to_send():
                messages.append((transaction, message))
        return messages

    def _adopt(self, transaction: "_Transaction", kind: int) -> None:
        """`transaction` was added (kind 0: client, 1: server, 2: RFC 2543 server)."""
        transaction._watch = self._touched
        transaction._entry = None
        transaction._order = (kind, self._added)
        self._added += 1
        self._touched[transaction] = None  # its timers, and a client's request to send

    def _release(self, transaction: "_Transaction") -> None:
        """`transaction` left the table: it tells us nothing more and its entry is stale."""
        transaction._watch = None
        self._touched.pop(transaction, None)
        self._pending.pop(transaction, None)
        self._unsent.pop(transaction, None)
        if transaction._entry is not None:
            transaction._entry = None
            self._live -= 1
            self._compact_if_stale()

    def _refresh(self) -> None:
        """Bring the heap entries of the transactions changed since the last call up to date;
        they wait in `_pending` for `handle_timer` (their events, their end)."""
        touched = self._touched
        if not touched:
            return
        pending = self._pending
        heap = self._heap
        for transaction in touched:
            pending[transaction] = None
            deadline = transaction.get_timer()
            entry = transaction._entry
            if entry is not None:
                if entry[0] == deadline:
                    continue  # unchanged: the entry stays live
                self._live -= 1  # re-armed or stopped: the entry is stale
            if deadline is None:
                transaction._entry = None
            else:
                self._sequence += 1
                entry = (deadline, self._sequence, transaction)
                transaction._entry = entry
                heappush(heap, entry)
                self._live += 1
        touched.clear()
        self._compact_if_stale()

    def _compact_if_stale(self) -> None:
        """Rebuild the heap from its live entries once the stale ones outnumber them, so re-armed
        timers and dropped transactions cannot grow it without bound (it holds at most twice
        the live entries). A sorted list is a heap."""
        heap = self._heap
        if len(heap) > 2 * self._live:
            heap = [entry for entry in heap if entry[2]._entry is entry]
            heap.sort()
            self._heap = heap

    def _match_server(self, request: "Request", method: str) -> "ServerTransaction | None":
        try:
            via = _top_via(request)
            key = _rfc3261_key(via, method)
            if key is not None:
                return self._servers.get(key)
            return self._match_rfc2543(request, via, method)
        except ParseError:
            return None

    def _match_rfc2543(self, request: "Request", via: "Via",
                       method: str) -> "ServerTransaction | None":
        """§17.2.3 for peers without a magic cookie: Request-URI, tags, Call-ID, CSeq and the
        whole top Via. An ACK's To tag is compared with the tag of the response we sent."""
        identity = _rfc2543_identity(request, via)
        to_tag = _to_tag(request)
        for transaction in self._rfc2543_servers:
            original = transaction.request
            if transaction.method != method or not original.uri == request.uri:
                continue
            if _rfc2543_identity(original, _top_via(original)) != identity:
                continue
            if request.method == "ACK":
                sent = transaction.last_response
                expected_to_tag = _to_tag(sent) if sent is not None else None
            else:
                expected_to_tag = _to_tag(original)
            if to_tag == expected_to_tag:
                return transaction
        return None
