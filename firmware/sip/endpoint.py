"""The SIP endpoint: the transport-facing core of the user agent, sans-I/O.

It owns the transaction table and sits between the transports (bytes in and out) and the
transaction user (registration, dialogs, the door station). RFC 3261:
- §18.1.1 / §18.2.1: a new top Via on each request we send (with `rport`, RFC 3581), and on each
  request received, `received`/`rport` filled in from the source address (a `received` already
  in the request is overwritten: never an answer to an address the sender merely names);
- §18.1.2: responses whose top Via is not ours are dropped;
- §18.2.2 + RFC 3581 §4: responses go back over the same flow on streams, else to
  `received`:`rport`;
- §17.1.3 / §17.2.3: matching to transactions; stray responses and ACKs go to the transaction
  user without a transaction (2xx retransmissions and ACKs for 2xx belong to dialogs, §13.2.2.4,
  §13.3.1.4);
- §21.4.1 / §8.2: a request that cannot be parsed but still names its Via, From, To, Call-ID and
  CSeq gets a stateless 400 with the reason.

Admission (a flood must not allocate state): `endpoint.screen`, when set
(firmware/sip/admission.py `Gate`), sees every request that matches no transaction before one is
allocated: it may drop it silently or have it refused statelessly (a 403/404 with a To tag; ACKs
are never answered).

Shape (aioquic style): `receive(data, source, now)`, `flow_failed(peer, now)`,
`handle_timer(now)`; `datagrams_to_send()` → [(bytes, Peer)], `next_event()`, `get_timer()`.
"""

import os

from firmware.sip import transaction as txn
from firmware.sip.errors import ParseError
from firmware.sip.message import Request, Response, check_message, parse

# client transaction states before a final response (§17.1.1, §17.1.2)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any

    from firmware.sip.transaction import ClientTransaction, ServerTransaction

# room a full table makes ahead, outside INVITE turns, for the next INVITE and its BYE
# (`_make_room`)
ROOM_AHEAD = 2

SALVAGE_HEADERS = {
    "via": "Via", "v": "Via", "from": "From", "f": "From", "to": "To", "t": "To",
    "call-id": "Call-ID", "i": "Call-ID", "cseq": "CSeq",
}


class Peer:
    """Where a message came from or goes to. `flow` names a stream connection (None for UDP);
    `server_name` is the name a TLS certificate must carry when it differs from `host`."""

    __slots__ = ("transport", "host", "port", "flow", "server_name")

    def __init__(self, transport: str, host: str, port: int, flow: int | None = None,
                 server_name: str | None = None) -> None:
        self.transport = transport
        self.host = host
        self.port = port
        self.flow = flow
        self.server_name = server_name

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    def same_address(self, other: "Peer") -> bool:
        return (self.transport, self.host, self.port) == (other.transport, other.host, other.port)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Peer) and self.same_address(other) and self.flow == other.flow

    def __hash__(self) -> int:
        return hash((self.transport, self.host, self.port, self.flow))

    def __repr__(self) -> str:
        flow = "" if self.flow is None else " flow %s" % self.flow
        return "<Peer %s %s:%s%s>" % (self.transport, self.host, self.port, flow)


class RequestReceived:
    """A new request for the transaction user. `transaction` is None for an ACK to a 2xx."""

    __slots__ = ("request", "source", "transaction")

    def __init__(self, request: "Request", source: "Peer",
                 transaction: "ServerTransaction | None") -> None:
        self.request = request
        self.source = source
        self.transaction = transaction

    def __repr__(self) -> str:
        return "<RequestReceived %s from %r>" % (self.request.method, self.source)


class ResponseReceived:
    """A response for a request we sent; `transaction` is None for a stray 2xx to INVITE."""

    __slots__ = ("response", "transaction", "context")

    def __init__(self, response: "Response", transaction: "ClientTransaction | None",
                 context: "Any") -> None:
        self.response = response
        self.transaction = transaction
        self.context = context

    def __repr__(self) -> str:
        return "<ResponseReceived %s>" % self.response.status


class RequestFailed:
    """A request we sent got no final response: `reason` is "timeout" or "transport"."""

    __slots__ = ("transaction", "context", "reason")

    def __init__(self, transaction: "ClientTransaction | None", context: "Any",
                 reason: str) -> None:
        self.transaction = transaction
        self.context = context
        self.reason = reason

    def __repr__(self) -> str:
        return "<RequestFailed %s>" % self.reason


class MessageRejected:
    """Something that was not a usable SIP message arrived, or a request was refused by the
    admission screen (then `request` is set), for the rate-limited log."""

    __slots__ = ("source", "reason", "request")

    def __init__(self, source: "Peer", reason: str, request: "Request | None" = None) -> None:
        self.source = source
        self.reason = reason
        self.request = request

    def __repr__(self) -> str:
        return "<MessageRejected %r: %s>" % (self.source, self.reason)


def response_destination(request: "Request", source: "Peer") -> "Peer":
    """Where responses to `request` go (§18.2.2, RFC 3581 §4)."""
    if source.reliable:
        return source
    via = request.top_via()
    host = via.params.get("received") or via.host
    rport = via.params.get("rport")
    if rport:
        port = int(rport)
    else:
        port = via.port or 5060
    return Peer("udp", host, port)


class Endpoint:
    def __init__(self, host: str, port: int, transport: str = "udp", user_agent: str = "Doorline",
                 random: "Callable" = os.urandom, max_transactions: int = 256) -> None:
        self.host = host
        self.port = port  # our sent-by port (the Contact's): where requests leave from
        self.first_port = port  # the configured listen port, always open
        self.former_ports: tuple[int, ...] = ()  # see move_to
        self.transport = transport
        self.user_agent = user_agent
        self.random = random
        self.table = txn.TransactionTable(max_transactions=max_transactions)
        self._out: list[tuple[bytes, Peer]] = []
        self._events: list[RequestReceived | ResponseReceived | RequestFailed
                           | MessageRejected] = []
        self._destinations: dict[txn._Transaction, Peer] = {}  # transaction → Peer it talks to
        self._contexts: dict[txn._Transaction, Any] = {}  # client transaction → caller's context
        # (request, source, now) -> None, "drop" or a status (admission)
        self.screen: Callable[[Request, Peer, float], str | int | None] | None = None

    # -- outputs ---------------------------------------------------------------------------
    def datagrams_to_send(self) -> "list[tuple[bytes, Peer]]":
        out, self._out = self._out, []
        return out

    def next_event(
            self
    ) -> "RequestReceived | ResponseReceived | RequestFailed | MessageRejected | None":
        return self._events.pop(0) if self._events else None

    def has_events(self) -> bool:
        """Is an event waiting for `next_event` (e.g. the failure of a request that found no
        room in the transaction table, queued while sending it)?"""
        return bool(self._events)

    def get_timer(self) -> float | None:
        return self.table.get_timer()

    def awaiting_final_responses(self) -> bool:
        """Is a client transaction still waiting for its final response?"""
        return any(isinstance(tx, txn.ClientTransaction) and
                   tx.state in (txn.CALLING, txn.TRYING, txn.PROCEEDING) for tx in self.table)

    # -- inputs ----------------------------------------------------------------------------
    def receive(self, data: bytes, source: "Peer", now: float) -> None:
        """`data` is a datagram (bytes) or a message already framed by a stream reader."""
        if isinstance(data, (bytes, bytearray)):
            if not data.strip(b"\r\n"):
                return  # a keep-alive on UDP (RFC 5626 §4.4.1 uses STUN there; CRLF is common)
            try:
                message = parse(bytes(data))
            except ParseError as exc:
                self._reject(data, source, exc.reason)
                return
        else:
            message = data
        problem = check_message(message)
        if problem is not None:
            self._events.append(MessageRejected(source, problem))
            if isinstance(message, Request) and message.method != "ACK":
                status = 505 if problem == "Version Not Supported" else 400
                answer = message.make_response(status, _reason_phrase(problem) if status == 400
                                               else problem)
                # A broken request's Via is not to be trusted: answer where it came from, so
                # the station cannot be used to reflect traffic at a third party.
                self._out.append((answer.to_bytes(), source))
            return
        if isinstance(message, Request):
            self._receive_request(message, source, now)
            if message.method == "INVITE":
                return  # its turn ends with the answer: no dropping in it (see `_make_room`)
        else:
            self._receive_response(message, source, now)
        self._make_room()

    def handle_timer(self, now: float) -> None:
        events = self.table.handle_timer(now)
        for tx, message in self.table.messages_to_send():
            dest = self._destinations.get(tx)
            if dest is not None:
                self._out.append((message.to_bytes(), dest))
        for tx, event in events:
            self._on_transaction_event(tx, event)
        for tx in [t for t in self._destinations if t.terminated]:
            self._forget(tx)
        self._make_room()

    def flow_failed(self, peer: "Peer", now: float) -> None:
        """A stream connection closed or never opened: its transactions fail (§17.1.4)."""
        for tx, dest in list(self._destinations.items()):
            if dest.transport == peer.transport and (
                    (peer.flow is not None and dest.flow == peer.flow)
                    or (dest.host, dest.port) == (peer.host, peer.port)):
                tx.transport_error(now)
                self._pump(tx)

    # -- actions ---------------------------------------------------------------------------
    def new_tag(self) -> str:
        return self.random(8).hex()

    def new_call_id(self) -> str:
        return "%s@%s" % (self.random(12).hex(), self.host)

    def via_for(self, dest: "Peer", branch: str) -> str:
        transport = dest.transport.upper()
        return "SIP/2.0/%s %s:%d;branch=%s;rport" % (transport, self.sent_by_host(), self.port,
                                                     branch)

    def sent_by_host(self) -> str:
        return "[%s]" % self.host if ":" in self.host else self.host

    def send_request(self, request: "Request", dest: "Peer", now: float,
                     context: "Any" = None,
                     branch: str | None = None) -> "ClientTransaction | None":
        """Send `request` in a new client transaction towards `dest`; returns the transaction.
        CANCEL passes the INVITE's `branch` (§9.1)."""
        self._stamp(request, dest, branch or txn.new_branch())
        tx = txn.ClientTransaction(request, dest.reliable, now)
        added = self.table.add(tx)
        self._forget_evicted()
        if not added:
            self._events.append(RequestFailed(None, context, "overload"))
            return None
        self._destinations[tx] = dest
        self._contexts[tx] = context
        self._pump(tx)
        return tx

    def move_to(self, port: int) -> None:
        """Our requests leave from `port` from now on (the runtime opened it: a NAT mapping
        changed, firmware/sip/keepalive.py); responses to requests sent from the port we
        started on or the one before still count (bounded: those two)."""
        if port == self.port:
            return
        kept = [p for p in (self.first_port, self.port) if p != port]
        self.former_ports = tuple(dict.fromkeys(kept))
        self.port = port

    def send_keepalive(self, dest: "Peer") -> None:
        """An RFC 5626 §4.4.1 double-CRLF keep-alive (over UDP it keeps a NAT mapping open)."""
        self._out.append((b"\r\n\r\n", dest))

    def send_stateless(self, message: "Request | Response", dest: "Peer") -> None:
        """An ACK for a 2xx (§13.2.2.4) or a response outside any transaction."""
        if isinstance(message, Request):
            self._stamp(message, dest, txn.new_branch())
        self._out.append((message.to_bytes(), dest))

    def send_response(self, transaction: "ServerTransaction", response: "Response",
                      now: float) -> None:
        if self.user_agent and "Server" not in response.headers:
            response.headers.add("Server", self.user_agent)  # absent: nothing to replace
        transaction.send_response(response, now)
        self._pump(transaction)

    def find_cancelled(self, cancel: "Request") -> "ServerTransaction | None":
        """The INVITE server transaction a CANCEL refers to (§9.2), or None."""
        return self.table.find_invite_for_cancel(cancel)

    # -- internals -------------------------------------------------------------------------
    def _stamp(self, request: "Request", dest: "Peer", branch: str) -> None:
        request.headers.insert("Via", self.via_for(dest, branch))
        if "Max-Forwards" not in request.headers:
            request.headers.set("Max-Forwards", "70")
        if self.user_agent and "User-Agent" not in request.headers:
            request.headers.set("User-Agent", self.user_agent)

    def _receive_request(self, request: "Request", source: "Peer", now: float) -> None:
        try:
            via = request.top_via()
        except (ParseError, TypeError):
            self._events.append(MessageRejected(source, "request without a usable Via"))
            return
        # RFC 3581 §4 / RFC 3261 §18.2.1: record where it really came from. A `received` the
        # sender wrote itself is always overwritten: responses go to `received`, and a forged
        # one would make the station answer (reflect traffic) to a third address (issue 12).
        if via.host.strip("[]") != source.host or "received" in via.params or \
                "rport" in via.params:
            via.params["received"] = source.host
            if "rport" in via.params:
                via.params["rport"] = str(source.port)
            request.set_top_via(via)  # written back only when changed (issue 14)

        tx = self.table.match_request(request)
        if tx is not None:
            tx.receive(request, now)
            self._pump(tx)
            return
        # Admission control (firmware/sip/admission.py) before any state is allocated.
        verdict: Any = self.screen(request, source, now) if self.screen is not None else None
        if verdict is not None:
            if verdict != "drop" and request.method != "ACK":
                refusal = request.make_response(verdict, to_tag=self.new_tag())
                self._out.append((refusal.to_bytes(), response_destination(request, source)))
                self._events.append(MessageRejected(source, "refused %s: %d" % (
                    request.method, verdict), request))
            return
        if request.method == "ACK":
            self.table.ack_for_2xx(request)  # its INVITE's transaction may now make room
            self._events.append(RequestReceived(request, source, None))
            return
        tx = txn.ServerTransaction(request, source.reliable, now)
        added = self.table.add(tx)
        self._forget_evicted()
        if not added:
            # Too many transactions: a cheap stateless refusal, nothing kept.
            busy = request.make_response(503, "Service Unavailable")
            busy.headers.set("Retry-After", "5")
            self._out.append((busy.to_bytes(), response_destination(request, source)))
            return
        self._destinations[tx] = response_destination(request, source)
        self._events.append(RequestReceived(request, source, tx))
        self._pump(tx)  # an INVITE's 100 (Trying) leaves now, not with the first TU response

    def _receive_response(self, response: "Response", source: "Peer", now: float) -> None:
        try:
            via = response.top_via()
        except (ParseError, TypeError):
            self._events.append(MessageRejected(source, "response without a usable Via"))
            return
        if via.host.strip("[]") != self.host.strip("[]") or \
                (via.port or 5060) not in (self.port,) + self.former_ports:
            self._events.append(MessageRejected(source, "response for another sent-by"))
            return
        tx = self.table.match_response(response)
        if tx is None:
            if 200 <= response.status < 300 and response.cseq().method == "INVITE":
                self._events.append(ResponseReceived(response, None, None))
            return
        tx.receive(response, now)
        self._pump(tx)

    def _pump(self, tx: "txn._Transaction") -> None:
        dest = self._destinations.get(tx)
        for message in tx.messages_to_send():
            if dest is not None:
                self._out.append((message.to_bytes(), dest))
        while True:
            event = tx.next_event()
            if event is None:
                break
            self._on_transaction_event(tx, event)
        if tx.terminated:
            self._forget(tx)

    def _on_transaction_event(self, tx: "Any", event: object) -> None:
        context = self._contexts.get(tx)
        client = isinstance(tx, txn.ClientTransaction)
        if isinstance(event, txn.ResponseReceived):
            self._events.append(ResponseReceived(event.response, tx, context))
        elif isinstance(event, txn.TransactionTimeout) and client:
            self._events.append(RequestFailed(tx, context, "timeout"))
        elif isinstance(event, txn.TransportError) and client:
            self._events.append(RequestFailed(tx, context, "transport"))
        elif isinstance(event, txn.AckReceived):
            # RFC 6026 §8.7: an ACK matching our 2xx's transaction belongs to the dialog.
            source = self._destinations.get(tx)  # always known for a server transaction
            self._events.append(RequestReceived(event.ack, source, None))  # type: ignore[arg-type]

    def _make_room(self) -> None:
        """A full table drops in any turn but an INVITE's (a timer, an ACK, a BYE, a response)
        what the next INVITE and its BYE would otherwise drop while the INVITE is answered
        (issue 14: ~20 µs of that answer, the dropped transaction's objects freed in it)."""
        self.table.make_room(ROOM_AHEAD)
        self._forget_evicted()

    def _forget_evicted(self) -> None:
        """What we keep about transactions the full table dropped for new ones goes too (they
        stayed referenced here for ever: ~130 objects per call at 20 calls a second)."""
        for tx in self.table.evicted_transactions():
            self._destinations.pop(tx, None)
            self._contexts.pop(tx, None)

    def _forget(self, tx: "txn._Transaction") -> None:
        self._destinations.pop(tx, None)
        self._contexts.pop(tx, None)
        self.table.remove(tx)

    def _reject(self, data: bytes, source: "Peer", reason: str) -> None:
        self._events.append(MessageRejected(source, reason))
        response = salvage_bad_request(data, reason)
        if response is not None:
            self._out.append((response.to_bytes(), Peer(source.transport, source.host, source.port,
                                                    source.flow)))


def salvage_bad_request(data: bytes, reason: str) -> "Response | None":
    """A 400 for a request that failed to parse, if its first line is a request line and the
    headers a response needs (§8.2.6) can be found; else None (responses are never answered)."""
    try:
        text = bytes(data[:8192]).decode("utf-8", "replace")
        head = text.split("\r\n\r\n", 1)[0].replace("\r\n ", " ").replace("\r\n\t", " ")
        lines = head.split("\r\n")
        first = lines[0].split()  # liberal about spacing, as RFC 4475 §3.1.2.9 asks
        if len(first) < 3 or first[-1] != "SIP/2.0" or not first[0].isalpha():
            return None
        found: dict[str, list[str]] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            canonical = SALVAGE_HEADERS.get(name.strip().lower())
            if sep and canonical:
                found.setdefault(canonical, []).append(value.strip())
        if any(h not in found for h in ("Via", "From", "To", "Call-ID", "CSeq")):
            return None
        if first[0] == "ACK":
            return None
        response = Response(400, _reason_phrase(reason))
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in found[name]:
                if any(c in value for c in "\r\n\x00"):
                    return None
                response.headers.add(name, value)
        response.to_bytes()
        return response
    except Exception:  # salvage is best effort: any surprise means "no answer"
        return None


def _reason_phrase(reason: str) -> str:
    cleaned = "".join(c if 32 <= ord(c) < 127 else " " for c in reason)[:60].strip()
    return "Bad Request - " + cleaned if cleaned else "Bad Request"
