"""What the door-station controller asks the runtime to do.

Each action is a small value object (`__slots__`, readable `__repr__`, equality by fields so tests
can compare them). The runtime drains them with `Controller.next_action()` and carries them out in
order:

    PlaceCall(targets, sequential, target_timeout_s, role, call_id)
        start one outgoing call ringing `targets` (a list of SIP URI strings) in parallel, or one
        after the other with `target_timeout_s` each when `sequential`, under `call_id` (issued
        by the controller: the call's one id in every layer); then report
        `call_started(call_id, role, now)` or `call_failed_to_start(call_id, reason, now)`.
    Hangup(call_id)          CANCEL or BYE, whatever the call's state needs.
    Answer(call_id)          200 OK to a ringing incoming call.
    Ring(call_id)            180 Ringing to an incoming call.
    Reject(call_id, status)  a final error response (403, 480, 486) to an incoming call.
    PulseRelay(role, ms)     drive the relay `role` for `ms` milliseconds.
    SetLed(role, pattern)    pattern from hal.base.LED_PATTERNS.
    PlayCue(name, call_id)   a cue from firmware.codecs.tones.CUES on the local speaker; with a
                             call_id the cue belongs to that call (the runtime may also send it to
                             the caller). One cue plays at a time: a new cue replaces the last.
    StopCue(name)            stop `name` if it is still the cue playing (repeating cues such as
                             ringback and busy play until stopped).
    LogEvent(type, fields)   an entry for the event log (GET /api/events); `fields` is a dict.
    Transfer(call_id, new_call_id, target), RefuseTransfer(call_id, status)
                             carry out / refuse the REFER parked on a call (issue 20).
    SendMessage(to, text), AnswerMessage(message_id, status)
                             SIP MESSAGE out (RFC 3428), and the answer to one that came in.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from typing import Any


class Action:
    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value: unhashable

    def __repr__(self) -> str:
        return "%s(%s)" % (type(self).__name__, ", ".join(
            "%s=%r" % (name, getattr(self, name)) for name in self.__slots__))


class PlaceCall(Action):
    __slots__ = ("targets", "sequential", "target_timeout_s", "role", "call_id")

    def __init__(self, targets: list[str], sequential: bool, target_timeout_s: int,
                 role: str, call_id: str) -> None:
        self.targets = list(targets)
        self.sequential = sequential
        self.target_timeout_s = target_timeout_s
        self.role = role
        self.call_id = call_id


class Hangup(Action):
    __slots__ = ("call_id",)

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id


class Answer(Action):
    __slots__ = ("call_id",)

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id


class Ring(Action):
    __slots__ = ("call_id",)

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id


class Reject(Action):
    __slots__ = ("call_id", "status")

    def __init__(self, call_id: str, status: int) -> None:
        self.call_id = call_id
        self.status = status


class PulseRelay(Action):
    __slots__ = ("role", "ms")

    def __init__(self, role: str, ms: int) -> None:
        self.role = role
        self.ms = ms


class SetLed(Action):
    __slots__ = ("role", "pattern")

    def __init__(self, role: str, pattern: str) -> None:
        self.role = role
        self.pattern = pattern


class PlayCue(Action):
    __slots__ = ("name", "call_id")

    def __init__(self, name: str, call_id: str | None = None) -> None:
        self.name = name
        self.call_id = call_id


class StopCue(Action):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class LogEvent(Action):
    __slots__ = ("type", "fields")

    def __init__(self, type: str, fields: "dict[str, Any]") -> None:
        self.type = type
        self.fields = fields


# -- transfer and messages (issue 20) ---------------------------------------------------------
class Transfer(Action):
    """Accept the REFER parked on `call_id` and place `new_call_id` to `target` (a configured
    entry); then report `call_started(new_call_id, "transfer")` or `call_failed_to_start`."""

    __slots__ = ("call_id", "new_call_id", "target", "join")

    def __init__(self, call_id: str, new_call_id: str, target: str, join: bool = False) -> None:
        self.call_id = call_id
        self.new_call_id = new_call_id
        self.target = target
        self.join = join  # a conference: the first call stays up


class RefuseTransfer(Action):
    """Answer the REFER parked on `call_id` with `status` (403): nothing is dialled."""

    __slots__ = ("call_id", "status")

    def __init__(self, call_id: str, status: int) -> None:
        self.call_id = call_id
        self.status = status


class SendMessage(Action):
    """A SIP MESSAGE (text/plain, RFC 3428) with `text` to each URI of `to`."""

    __slots__ = ("to", "text")

    def __init__(self, to: "list[str]", text: str) -> None:
        self.to = list(to)
        self.text = text


class AnswerMessage(Action):
    """Answer the incoming MESSAGE `message_id` with `status` (200 or 403)."""

    __slots__ = ("message_id", "status")

    def __init__(self, message_id: str, status: int) -> None:
        self.message_id = message_id
        self.status = status
