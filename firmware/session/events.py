"""What the session layer emits (`SessionManager.next_event`). Every event carries the one call
id every layer uses (`call_id`: the session id, which is the SIP call layer's `Call.id`; the SIP
Call-ID header is per branch and not used above sip/).

Towards the runtime (executors): `OpenMedia`, `StartMedia`, `UpdateMedia`, `StopMedia`.
Towards the controller (firmware/app): `CallOffered`, `CallStarted`, `CallNotStarted`,
`CallRinging`, `CallEstablished`, `DigitReceived`, `CallEnded`.
For the event log and the journal: `CallRefused`, `RedirectRefused`.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sdp.offer_answer import NegotiatedMedia


class SessionEvent:
    __slots__ = ("call_id",)

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id

    def _fields(self) -> "list[tuple[str, object]]":
        return [(name, getattr(self, name)) for name in self.__slots__]

    def __repr__(self) -> str:
        extra = " ".join("%s=%r" % pair for pair in self._fields())
        return "<%s %s%s>" % (type(self).__name__, self.call_id, " " + extra if extra else "")

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.call_id == other.call_id and \
            self._fields() == other._fields()

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # compared by value, so never hashed


# -- to the runtime ---------------------------------------------------------------------------
class OpenMedia(SessionEvent):
    """An incoming call needs an RTP/RTCP port pair: the runtime answers with
    `media_opened(call_id, address, port, now)` or `media_unavailable(call_id, reason, now)`."""

    __slots__ = ()


class StartMedia(SessionEvent):
    """Play `negotiated` (sdp.NegotiatedMedia) on the call's port pair."""

    __slots__ = ("negotiated",)

    def __init__(self, call_id: str, negotiated: "NegotiatedMedia") -> None:
        SessionEvent.__init__(self, call_id)
        self.negotiated = negotiated


class UpdateMedia(SessionEvent):
    """A new negotiation while media plays (re-INVITE: hold, resume, moved peer, new keys)."""

    __slots__ = ("negotiated",)

    def __init__(self, call_id: str, negotiated: "NegotiatedMedia") -> None:
        SessionEvent.__init__(self, call_id)
        self.negotiated = negotiated


class StopMedia(SessionEvent):
    """The call is over: stop the stream (if it played) and close its port pair."""

    __slots__ = ()


# -- to the controller ------------------------------------------------------------------------
class CallOffered(SessionEvent):
    """An incoming call whose offer we can answer: the answer is parked until `answer()`."""

    __slots__ = ("caller", "source", "trusted", "answer_mode", "source_ip", "replaces")

    def __init__(self, call_id: str, caller: "str | None", source: str, trusted: bool,
                 answer_mode: "str | None", source_ip: str,
                 replaces: "str | None" = None) -> None:
        SessionEvent.__init__(self, call_id)
        self.replaces = replaces  # INVITE with Replaces (RFC 3891): the call it replaces
        self.caller = caller
        self.source = source  # "transport:host:port"
        self.trusted = trusted
        self.answer_mode = answer_mode
        self.source_ip = source_ip


class CallStarted(SessionEvent):
    """An outgoing call was placed (INVITEs sent) for the button `role`."""

    __slots__ = ("role",)

    def __init__(self, call_id: str, role: str) -> None:
        SessionEvent.__init__(self, call_id)
        self.role = role


class CallNotStarted(SessionEvent):
    """An outgoing call could not be placed: busy, no media, key policy."""

    __slots__ = ("role", "reason")

    def __init__(self, call_id: str, role: str, reason: str) -> None:
        SessionEvent.__init__(self, call_id)
        self.role = role
        self.reason = reason


class CallRinging(SessionEvent):
    """An outgoing call rings; `early` when the 18x carried an SDP answer (early media)."""

    __slots__ = ("early",)

    def __init__(self, call_id: str, early: bool = False) -> None:
        SessionEvent.__init__(self, call_id)
        self.early = early


class CallEstablished(SessionEvent):
    __slots__ = ("direction", "peer")

    def __init__(self, call_id: str, direction: str, peer: "str | None") -> None:
        SessionEvent.__init__(self, call_id)
        self.direction = direction
        self.peer = peer


class DigitReceived(SessionEvent):
    """A DTMF key, from RTP (RFC 4733 or in-band, reported by the media executor) or INFO."""

    __slots__ = ("digit", "via")

    def __init__(self, call_id: str, digit: str, via: str) -> None:
        SessionEvent.__init__(self, call_id)
        self.digit = digit
        self.via = via  # "rtp" or "info"


class CallEnded(SessionEvent):
    """`reason` and `status` as firmware.sip.call.CallEnded."""

    __slots__ = ("reason", "status")

    def __init__(self, call_id: str, reason: str, status: "int | None") -> None:
        SessionEvent.__init__(self, call_id)
        self.reason = reason
        self.status = status


# -- for the logs -----------------------------------------------------------------------------
class CallRefused(SessionEvent):
    """An incoming call refused by the session layer itself (488 no acceptable media, 503 no
    media port) before the controller heard of it; `status` is what was sent."""

    __slots__ = ("peer", "status", "reason")

    def __init__(self, call_id: str, peer: "str | None", status: "int | None",
                 reason: str) -> None:
        SessionEvent.__init__(self, call_id)
        self.peer = peer
        self.status = status
        self.reason = reason


class RedirectRefused(SessionEvent):
    """firmware.sip.call.RedirectRefused, with the call id."""

    __slots__ = ("target", "uri", "reason", "status")

    def __init__(self, call_id: str, target: str, uri: str, reason: str,
                 status: int) -> None:
        SessionEvent.__init__(self, call_id)
        self.target = target
        self.uri = uri
        self.reason = reason
        self.status = status


# -- transfer (RFC 3515) and messages (RFC 3428), issue 20 -------------------------------------
class TransferRequested(SessionEvent):
    """A REFER within the call from its peer, well-formed: the controller decides
    (`transfer` or `refuse_transfer`). `replaces`: the Replaces of an attended transfer."""

    __slots__ = ("target", "replaces", "referred_by", "source", "join")

    def __init__(self, call_id: str, target: str, replaces: "str | None", referred_by: str,
                 source: str, join: bool = False) -> None:
        SessionEvent.__init__(self, call_id)
        self.join = join  # Refer-To named method=INVITE: bring the target into a conference
        self.target = target
        self.replaces = replaces
        self.referred_by = referred_by
        self.source = source


class TransferRefused(SessionEvent):
    """A REFER refused below the controller (`status` sent): malformed, not a SIP URI,
    injected headers, not from the call's peer, outside a dialog (`call_id` None)."""

    __slots__ = ("refer_to", "status", "reason", "source")

    def __init__(self, call_id: "str | None", refer_to: str, status: int, reason: str,
                 source: str) -> None:
        SessionEvent.__init__(self, call_id)  # type: ignore[arg-type]  # None: no dialog
        self.refer_to = refer_to
        self.status = status
        self.reason = reason
        self.source = source


class MessageArrived(SessionEvent):
    """An incoming SIP MESSAGE (`call_id`: the message's id, answered with
    `answer_message(id, status)`): shown as an event, never acted upon."""

    __slots__ = ("sender", "source", "source_ip", "trusted", "text")

    def __init__(self, message_id: str, sender: "str | None", source: str, source_ip: str,
                 trusted: bool, text: str) -> None:
        SessionEvent.__init__(self, message_id)
        self.sender = sender
        self.source = source
        self.source_ip = source_ip
        self.trusted = trusted
        self.text = text


class MessageOutcome(SessionEvent):
    """What became of a MESSAGE we sent (`call_id`: its id): `status` (None: no answer)."""

    __slots__ = ("to", "status", "reason")

    def __init__(self, message_id: str, to: str, status: "int | None", reason: str) -> None:
        SessionEvent.__init__(self, message_id)
        self.to = to
        self.status = status
        self.reason = reason
