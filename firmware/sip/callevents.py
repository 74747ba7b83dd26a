"""The events the call layer emits (CallManager.next_event), and what they carry.

Each event names its `call`; the application acts on that call (`ring`, `answer`, `reject`,
`hangup`, `accept_offer`, `reject_offer`, `reinvite`, `send_info`).
"""

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any

    from firmware.sip.callbase import CallBase
    from firmware.sip.message import Request, Response

    # handler(event, now) of one CallEvent subclass (Any: each takes its own subclass)
    CallEventHandler = Callable[[Any, float], None]

SDP = "application/sdp"


# -- events --------------------------------------------------------------------------------
class CallEvent:
    __slots__ = ("call",)

    def __init__(self, call: "CallBase") -> None:
        self.call = call

    def __repr__(self) -> str:
        return "<%s %s>" % (type(self).__name__, self.call.id)


class IncomingCall(CallEvent):
    """A new INVITE: the application calls `ring`, `answer` or `reject` on `call`."""

    __slots__ = ()


class CallRinging(CallEvent):
    """Outgoing call: a target rings (`sdp` is early media, or None). `offer` is not None
    when our INVITE had no SDP and this reliable 18x carries the offer (RFC 3262 §5): the
    application answers it with `call.send_answer(offer, sdp, now)` (the answer goes in the
    PRACK, which waits for it)."""

    __slots__ = ("sdp", "offer")

    def __init__(self, call: "CallBase", sdp: "bytes | None", offer: object = None) -> None:
        CallEvent.__init__(self, call)
        self.sdp = sdp
        self.offer = offer


class CallEstablished(CallEvent):
    """Media can flow: `sdp` is the remote description of the session. `offer` is not None
    when our INVITE had no SDP and the 2xx carries the offer (RFC 3261 §13.2.1): the
    application answers with `call.send_answer(offer, sdp, now)` (the ACK waits for it; with
    None, when no answer can be written, the ACK goes without one and the application hangs
    up)."""

    __slots__ = ("sdp", "offer")

    def __init__(self, call: "CallBase", sdp: "bytes | None", offer: object = None) -> None:
        CallEvent.__init__(self, call)
        self.sdp = sdp
        self.offer = offer


class OfferReceived(CallEvent):
    """A re-INVITE with an offer: the application calls `accept_offer(answer)` or
    `reject_offer(status)`."""

    __slots__ = ("sdp",)

    def __init__(self, call: "CallBase", sdp: bytes) -> None:
        CallEvent.__init__(self, call)
        self.sdp = sdp


class AnswerReceived(CallEvent):
    """The answer to a re-INVITE we sent."""

    __slots__ = ("sdp",)

    def __init__(self, call: "CallBase", sdp: bytes) -> None:
        CallEvent.__init__(self, call)
        self.sdp = sdp


class InfoReceived(CallEvent):
    """An INFO within the call (DTMF relay): content type and body."""

    __slots__ = ("content_type", "body")

    def __init__(self, call: "CallBase", content_type: str, body: bytes) -> None:
        CallEvent.__init__(self, call)
        self.content_type = content_type
        self.body = body


MAX_LOGGED_URI = 120  # a refused Contact is attacker-controlled text: logged truncated


class RedirectRefused(CallEvent):
    """A 3xx to our INVITE was not followed. `target`: the configured target that answered
    3xx; `uri`: the Contact it pointed to (printable, at most MAX_LOGGED_URI characters);
    `reason`: why ("redirects are not followed", "not a configured target", "too many
    redirects"); `status`: the 3xx code."""

    __slots__ = ("target", "uri", "reason", "status")

    def __init__(self, call: "CallBase", target: str, uri: object, reason: str,
                 status: int) -> None:
        CallEvent.__init__(self, call)
        self.target = target
        self.uri = printable(uri, MAX_LOGGED_URI)
        self.reason = reason
        self.status = status

    def __repr__(self) -> str:
        return "<RedirectRefused %s %s -> %s: %s>" % (self.call.id, self.target, self.uri,
                                                      self.reason)


class CallEnded(CallEvent):
    """`reason`: answered elsewhere, cancelled, remote hangup, local hangup, no answer,
    rejected, busy, timeout, max duration, session expired, failed; `status` the SIP code."""

    __slots__ = ("reason", "status")

    def __init__(self, call: "CallBase", reason: str, status: "int | None" = None) -> None:
        CallEvent.__init__(self, call)
        self.reason = reason
        self.status = status

    def __repr__(self) -> str:
        return "<CallEnded %s %s %s>" % (self.call.id, self.reason, self.status or "")


def body_sdp(message: "Request | Response") -> "bytes | None":
    """The SDP body of a request or response, or None."""
    ctype = (message.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if message.body and ctype == SDP:
        return message.body
    return None


def printable(text: object, limit: int) -> str:
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def reason_for(status: int) -> str:
    """CallEnded's reason for a final failure `status`."""
    if status in (486, 600):
        return "busy"
    if status in (480, 408):
        return "no answer"
    if status in (603, 403):
        return "rejected"
    return "failed"
