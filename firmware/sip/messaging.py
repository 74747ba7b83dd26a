"""SIP MESSAGE both ways (RFC 3428), sans-I/O.

RFC map
- RFC 3428 §4: a MESSAGE outside a dialog, `text/plain` body, sent like any request outside a
  dialog (to the registrar as outbound proxy while registered: the caller routes it).
- RFC 3428 §7: a 2xx is the only success; RFC 3261 §22.2: a 401/407 is answered once (a second
  challenge, or one on an answered request, is a failure). No retransmission above the
  transaction layer (Timer F ends it): a failure is reported, never retried.
- RFC 3428 §7: an incoming MESSAGE is answered by the application (200 or 403 here): the
  station shows it as an event and never acts on its content.

Public API
- `Messages(ua, emit)`: `send(message_id, to, dest, text, now)`, `receive(event, trusted, now)`
  (an incoming MESSAGE: emits `MessageReceived`), `answer(message_id, status, now)`.
- Events: `MessageReceived(message_id, sender, source Peer, trusted, text)`,
  `MessageDelivered(message_id, to, status)`, `MessageFailed(message_id, to, status, reason)`.

Choices
- Bounded: at most `MAX_PENDING` incoming messages wait for an answer (the oldest gets 403 when
  more come) and a body is cut at `MAX_TEXT` characters for the event.
"""

from firmware.sip import auth
from firmware.sip.reply import Reply
from firmware.sip.useragent import new_request

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable

    from firmware.sip.endpoint import Peer, RequestReceived
    from firmware.sip.message import Response
    from firmware.sip.useragent import UserAgent

MAX_PENDING = 8
MAX_TEXT = 500
TEXT_PLAIN = "text/plain;charset=UTF-8"


class MessageReceived:
    __slots__ = ("message_id", "sender", "source", "trusted", "text")

    def __init__(self, message_id: str, sender: "str | None", source: "Peer", trusted: bool,
                 text: str) -> None:
        self.message_id = message_id
        self.sender = sender
        self.source = source
        self.trusted = trusted
        self.text = text

    def __repr__(self) -> str:
        return "<MessageReceived %s from %s>" % (self.message_id, self.sender)


class MessageDelivered:
    __slots__ = ("message_id", "to", "status")

    def __init__(self, message_id: str, to: str, status: int) -> None:
        self.message_id = message_id
        self.to = to
        self.status = status

    def __repr__(self) -> str:
        return "<MessageDelivered %s %s %d>" % (self.message_id, self.to, self.status)


class MessageFailed:
    __slots__ = ("message_id", "to", "status", "reason")

    def __init__(self, message_id: str, to: str, status: "int | None", reason: str) -> None:
        self.message_id = message_id
        self.to = to
        self.status = status
        self.reason = reason

    def __repr__(self) -> str:
        return "<MessageFailed %s %s %s %s>" % (self.message_id, self.to, self.status,
                                                self.reason)


def decode_text(body: bytes) -> str:
    """The body as text for the event log (undecodable bytes as `?`), cut at MAX_TEXT."""
    try:
        text = body[:MAX_TEXT * 4].decode()
    except UnicodeError:
        text = "".join(chr(b) if 32 <= b < 127 else "?" for b in body[:MAX_TEXT])
    return "".join(c if c >= " " or c in "\t\n" else "?" for c in text)[:MAX_TEXT]


class Messages:
    """MESSAGE requests of the user agent `ua`; events go to `emit`."""

    def __init__(self, ua: "UserAgent", emit: "Callable[[object], None]") -> None:
        self.ua = ua
        self.emit = emit
        # (message id, RequestReceived) of incoming messages waiting for an answer, oldest first
        self._pending: list[tuple[str, RequestReceived]] = []

    # -- outgoing ---------------------------------------------------------------------------
    def send(self, message_id: str, to: str, dest: "Peer", text: str, now: float) -> None:
        """One MESSAGE with `text` to the URI `to` through the next hop `dest`."""
        _Outgoing(self, message_id, to, dest, text).send(now)

    # -- incoming ---------------------------------------------------------------------------
    # -- incoming ---------------------------------------------------------------------------
    def receive(self, event: "RequestReceived", trusted: bool, now: float) -> None:
        request = event.request
        message_id = self.ua.new_id()
        if len(self._pending) >= MAX_PENDING:
            self.answer(self._pending[0][0], 403, now)
        self._pending.append((message_id, event))
        try:
            sender: str | None = str(request.from_address().uri)
        except ValueError:
            sender = None
        self.emit(MessageReceived(message_id, sender, event.source, trusted,
                                  decode_text(request.body)))

    def answer(self, message_id: str, status: int, now: float) -> None:
        for i, (pending_id, event) in enumerate(self._pending):
            if pending_id == message_id:
                del self._pending[i]
                response = event.request.make_response(status)
                response.headers.set("To", "%s;tag=%s" % (response.headers.get("To"),
                                                         self.ua.new_tag()))
                assert event.transaction is not None  # a MESSAGE has its server transaction
                self.ua.send_response(event.transaction, response, now)
                return


class _Outgoing:
    """One MESSAGE we send, until its final answer (a challenge answered once)."""

    __slots__ = ("owner", "message_id", "to", "dest", "text", "call_id", "tag", "cseq")

    def __init__(self, owner: "Messages", message_id: str, to: str, dest: "Peer",
                 text: str) -> None:
        self.owner = owner
        self.message_id = message_id
        self.to = to
        self.dest = dest
        self.text = text
        self.call_id = owner.ua.new_call_id()
        self.tag = owner.ua.new_tag()  # the same From tag when retried with credentials
        self.cseq = 0

    def send(self, now: float, authorization: "tuple[str, str] | None" = None) -> None:
        ua = self.owner.ua
        self.cseq += 1
        request = new_request("MESSAGE", self.to, ua.from_header(self.tag),
                              "<%s>" % self.to, self.call_id, self.cseq)
        request.headers.set("Content-Type", TEXT_PLAIN)
        if authorization:
            request.headers.set(authorization[0], authorization[1])
        request.body = self.text.encode()
        ua.send_request(request, self.dest, now,
                        Reply(request, self.on_response, self.on_failure, None, self.dest))

    def on_response(self, reply: "Reply", response: "Response", now: float) -> None:
        status = response.status
        if status < 200:
            return
        request = reply.request
        answered = "Authorization" in request.headers or \
            "Proxy-Authorization" in request.headers
        if status in (401, 407) and not answered:
            found = auth.challenge_in(response)
            if found is not None:  # RFC 3261 §22.2: once, same Call-ID, CSeq + 1
                header, challenge = found
                self.send(now, (header, self.owner.ua.answer_challenge(challenge, "MESSAGE",
                                                                       request.uri)))
                return
        if 200 <= status < 300:
            self.owner.emit(MessageDelivered(self.message_id, self.to, status))
        else:
            self.owner.emit(MessageFailed(self.message_id, self.to, status,
                                          "%d %s" % (status, response.reason or "")))

    def on_failure(self, reply: "Reply", reason: str, now: float) -> None:
        self.owner.emit(MessageFailed(self.message_id, self.to, None, reason))
