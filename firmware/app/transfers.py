"""The station's policy for being transferred and for SIP MESSAGE (issue 20), sans-I/O.

Toll fraud is the threat: a REFER makes the station place a call, which its account pays for.
So a transfer happens only when
- the call is answered and trusted (an incoming call the controller answered from a trusted
  source, or a call the station placed), the REFER came from that call's peer (the SIP layer
  checked, firmware/sip/refer.py), and
- the target is one of `Config.transfer_targets()` (`[transfer] allow`; by default every button
  target and every `[answer] allow` entry), compared by user, host (any case) and port.
The station then dials the configured entry, not the REFER's text: parameters such as `maddr`
or `transport` in a Refer-To never steer where the call goes.

Public API
    allowed_target(target, allowed) -> the matching entry of `allowed`, or None
    worth_a_message(event_type, fields, events) -> bool   does this event send a MESSAGE
    message_text(event_type, fields) -> str   the text of a SIP MESSAGE for an event
    MessageLimiter(per_minute)                 `allow(now)`: bounds MESSAGEs sent per minute
"""

from firmware.sip.errors import ParseError
from firmware.sip.uri import URI

MESSAGES_PER_MINUTE = 10


def _key(text: str) -> "tuple[str, str, int | None] | None":
    try:
        uri = URI.parse(text.strip())
    except ParseError:
        return None
    if uri.scheme not in ("sip", "sips") or not uri.host or uri.user is None:
        return None
    return uri.user, uri.host.lower(), uri.port


def allowed_target(target: str, allowed: "list[str]") -> "str | None":
    """The entry of `allowed` the REFER's `target` names (user, host, port), or None."""
    key = _key(target)
    if key is None:
        return None
    for entry in allowed:
        if _key(entry) == key:
            return entry
    return None


def worth_a_message(event_type: str, fields: "dict[str, object]",
                    events: "list[str]") -> bool:
    """Is this event one of `[messages] events`? A button's release or a stuck contact is
    nobody ringing."""
    if event_type not in events:
        return False
    return not (event_type == "button" and fields.get("outcome") in ("released", "stuck"))


def message_text(event_type: str, fields: "dict[str, object]") -> str:
    """A short text for a phone's display: 'Door: button call pressed'."""
    if event_type == "button":
        return "Door: someone rang (button %s)" % fields.get("role")
    if event_type == "door_open":
        return "Door: opened (by %s)" % fields.get("by")
    if event_type == "transferred":
        return "Door: call transferred to %s" % fields.get("to")
    parts = ["%s=%s" % (k, v) for k, v in sorted(fields.items())
             if k in ("outcome", "reason", "caller", "peer", "to") and v is not None]
    return ("Door: %s %s" % (event_type, " ".join(parts))).strip()


class MessageLimiter:
    """At most `per_minute` MESSAGEs in any minute (a flood of events sends no flood)."""

    def __init__(self, per_minute: int = MESSAGES_PER_MINUTE) -> None:
        self.per_minute = per_minute
        self._sent: list[float] = []

    def allow(self, now: float) -> bool:
        self._sent = [t for t in self._sent if now - t < 60.0]
        if len(self._sent) >= self.per_minute:
            return False
        self._sent.append(now)
        return True
