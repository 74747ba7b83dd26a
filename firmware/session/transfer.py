"""Being transferred, replaced calls and SIP MESSAGE: the session layer's part (sans-I/O).

`Transfers(manager)` is owned by `SessionManager` (firmware/session/session.py), which passes
the commands below on. The SIP layer (firmware/sip/refer.py,
firmware/sip/messaging.py) screens a REFER (from the call's peer, on an active call, a SIP target
with no header but Replaces) and parks it; the controller decides with the target allow list;
here the decision is carried out:
- `transfer(call_id, new_call_id, routed, address, port, now)`: 202 and NOTIFY "100 Trying" on
  the first call (RFC 3515 §2.4.2, §2.4.4), a new outgoing call to the target carrying
  `Referred-By` (RFC 3892) and the `Replaces` of an attended transfer (RFC 3891); its progress
  goes back as NOTIFY message/sipfrag (RFC 3515 §2.4.5); once it is answered the first call is
  hung up (BYE). When it fails the final NOTIFY says why and the first call stays up.
- `refuse_transfer(call_id, status, now)`.
- An incoming INVITE with Replaces (the PBX's attended transfer towards the door) is offered to
  the controller like any call (`CallOffered.replaces`); once it is established the call it
  replaces is hung up (RFC 3891 §3).
- `send_message(message_id, to, dest, text, now)`, `answer_message(message_id, status, now)`.
"""

from firmware.session import events as ev
from firmware.sip import call as sipcall
from firmware.sip.refer import REFER_PENDING, Transferee

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.session.session import Session, SessionManager
    from firmware.sip.callbase import CallBase
    from firmware.sip.callevents import CallEventHandler
    from firmware.sip.endpoint import Peer

TRANSFER_ROLE = "transfer"


def source_of(peer: "Peer") -> str:
    return "%s:%s:%s" % (peer.transport, peer.host, peer.port)


def transferee(call: "CallBase") -> "Transferee":
    """Every call of the call layer is a `Call`, which takes REFER (firmware/sip/refer.py)."""
    assert isinstance(call, Transferee)
    return call


class Transfers:
    """The transfer and message part of a `SessionManager`."""

    def __init__(self, manager: "SessionManager") -> None:
        self.manager = manager

    def get(self, call_id: "str | None") -> "Session | None":
        return self.manager.get(call_id)

    def _emit(self, event: "ev.SessionEvent") -> None:
        self.manager.emit(event)

    def handlers(self) -> "dict[type, CallEventHandler]":
        return {sipcall.ReferReceived: self._refer_received,
                sipcall.ReferRefused: self._refer_refused,
                sipcall.MessageReceived: self._message_received,
                sipcall.MessageDelivered: self._message_delivered,
                sipcall.MessageFailed: self._message_failed}

    # -- the controller's commands ---------------------------------------------------------
    def transfer(self, call_id: str, new_call_id: str,
                 routed: "list[tuple[str, Peer]]", address: str, port: "int | None",
                 now: float, no_media: object = None, join: bool = False) -> "Session | None":
        """Accept the REFER parked on `call_id` and place `new_call_id` to its target; `join`
        (a conference): the first call stays up once the new one is answered."""
        session = self.get(call_id)
        call = transferee(session.call) if session is not None else None
        if session is None or call is None or call.refer_state != REFER_PENDING or \
                session.pending_refer is None:
            self._emit(ev.CallNotStarted(new_call_id, TRANSFER_ROLE, "no transfer pending"))
            return None
        target, replaces, referred_by = session.pending_refer
        session.pending_refer = None
        call.accept_refer(now)
        headers = [("Referred-By", referred_by)]
        if replaces:
            headers.append(("Replaces", replaces))
        new = self.manager.place_call(TRANSFER_ROLE, routed, address, port, now, no_media=no_media,
                              call_id=new_call_id, headers=headers, extra_calls=1)
        if new is None:
            call.notify_refer(503, now)
            return None
        new.transferred_from = call_id
        new.joins = join
        return new

    def refuse_transfer(self, call_id: str, status: int, now: float) -> None:
        session = self.get(call_id)
        if session is not None and session.pending_refer is not None:
            session.pending_refer = None
            transferee(session.call).reject_refer(status, now)

    def send_message(self, message_id: str, to: str, dest: "Peer",
                     text: str, now: float) -> None:
        self.manager.calls.messages.send(message_id, to, dest, text, now)

    def answer_message(self, message_id: str, status: int,
                       now: float) -> None:
        self.manager.calls.messages.answer(message_id, status, now)

    # -- hooks of the call events (session.py) ----------------------------------------------
    def progress(self, session: "Session", status: int,
                           now: float) -> None:
        """The new call of a transfer rang (180), was answered (200) or failed: NOTIFY the
        first call; answered, the first call ends."""
        if session.transferred_from is None:
            return
        first = self.get(session.transferred_from)
        if first is None or first.state == sipcall.ENDED:
            return
        transferee(first.call).notify_refer(status, now)
        if status == 200:
            session.transferred_from = None
            if not session.joins:  # a transfer hands the call over; a join keeps it
                first.call.hangup(now)
        elif status >= 300:
            session.transferred_from = None

    def replacement_established(self, session: "Session",
                                 now: float) -> None:
        """RFC 3891 §3: the replacing call is up; the replaced one ends with BYE."""
        replaced = session.call.replaces
        if replaced is None:
            return
        old = self.get(replaced)
        if old is not None and old.state not in (sipcall.ENDED,):
            old.call.hangup(now)

    # -- the SIP layer's events ------------------------------------------------------------
    def _refer_received(self, event: "sipcall.ReferReceived",
                        now: float) -> None:
        session = self.get(event.call.id)
        if session is None:
            transferee(event.call).reject_refer(403, now)
            return
        session.pending_refer = (event.target, event.replaces, event.referred_by)
        self._emit(ev.TransferRequested(session.id, event.target, event.replaces,
                                        event.referred_by, event.source, event.join))

    def _refer_refused(self, event: "sipcall.ReferRefused",
                       now: float) -> None:
        self._emit(ev.TransferRefused(event.call.id if event.call is not None else None,
                                      event.refer_to, event.status, event.reason,
                                      event.source))

    def _message_received(self, event: "sipcall.MessageReceived",
                          now: float) -> None:
        self._emit(ev.MessageArrived(event.message_id, event.sender, source_of(event.source),
                                     event.source.host, event.trusted, event.text))

    def _message_delivered(self, event: "sipcall.MessageDelivered",
                           now: float) -> None:
        self._emit(ev.MessageOutcome(event.message_id, event.to, event.status, "delivered"))

    def _message_failed(self, event: "sipcall.MessageFailed",
                        now: float) -> None:
        self._emit(ev.MessageOutcome(event.message_id, event.to, event.status, event.reason))
