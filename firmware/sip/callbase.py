"""What both directions of a call share (RFC 3261 §12-15, RFC 4028): `CallBase`.

`Call` (firmware/sip/call.py) is `UacCall` (uac.py, outgoing) + `UasCall` (uas.py, incoming and
received offers) over this base: the call's state and tables (`_feed`, `_feed_offer`), the
application's commands, the actions both tables share (BYE, re-INVITE, INFO, the end), requests
within the dialog, session timers and the timer cascade.
"""

from firmware.sip import auth
from firmware.sip import callstate as cs
from firmware.sip.branch import MIN_SE, OfferToAnswer
from firmware.sip.callevents import SDP, AnswerReceived, CallEnded, InfoReceived, body_sdp
from firmware.sip.reply import Reply
from firmware.sip.useragent import ALLOW

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from typing import Any

    from firmware.sip.branch import Branch
    from firmware.sip.call import CallManager
    from firmware.sip.dialog import Dialog
    from firmware.sip.endpoint import Peer, RequestReceived
    from firmware.sip.message import Request, Response
    from firmware.sip.prack import ReliableSender
    from firmware.sip.transaction import ServerTransaction
    from firmware.sip.uas import Accepted2xx
    from firmware.sip.uri import URI
    from firmware.sip.useragent import UserAgent

# How a call that ends with our BYE reports it (CallEnded reason, status), by the input
END_WITH_BYE = {
    cs.HANGUP: ("local hangup", None),
    cs.ACK: ("local hangup", None),  # hung up while answering: the ACK came
    cs.MAX_DURATION: ("max duration", None),
    cs.SESSION_EXPIRED: ("session expired", 408),
    cs.ACK_TIMEOUT: ("timeout", 408),
    cs.REINVITE_TIMEOUT: ("failed", 408),
}


class CallBase:
    """The state and the shared behaviour of one call (see the module docstring)."""

    def __init__(self, manager: "CallManager", ua: "UserAgent", direction: str, now: float,
                 follow_redirects: bool = False, call_id: "str | None" = None) -> None:
        self.manager = manager  # the call layer: dialogs registered, events emitted
        self.ua = ua  # the user agent: what the call sends (firmware/sip/useragent.py)
        self.direction = direction
        self.id = call_id or ua.new_id()  # outgoing: issued by the controller
        self.follow_redirects = follow_redirects  # 3xx only ever to a configured target
        self.state = cs.CALLING if direction == "outgoing" else cs.RINGING
        self._table = cs.UAC_CALL if direction == "outgoing" else cs.UAS_CALL
        self.offer_state = cs.NO_OFFER
        self.created = now
        self.answered_at: float | None = None
        self.dialog: Dialog | None = None
        self.dest: Peer | None = None  # next hop of in-dialog requests
        self.local_sdp: bytes | None = None
        # outgoing with a delayed offer: our INVITEs carry no SDP (callstate.DELAYED_OFFER)
        self.delayed_offer = False
        self.remote_sdp: bytes | None = None
        self.answer_mode: str | None = None
        self.peer: str | None = None  # display URI of the other side
        # outgoing
        self.branches: list[Branch] = []
        # headers every INVITE of the call carries (a transfer's Referred-By and Replaces)
        self.extra_headers: list[tuple[str, str]] = []
        self.pending_targets: list[tuple[str, Peer]] = []
        # [(uri text, URI or None, Peer)]: what the call may ring
        self.targets: list[tuple[str, URI | None, Peer]] = []
        self.sequential = False
        self.target_timeout: float | None = None
        self.ring_deadline: float | None = None
        # incoming
        self.invite: Request | None = None
        self.replaces: str | None = None  # the id of the call an INVITE/Replaces replaces
        self.transaction: ServerTransaction | None = None
        self.source: Peer | None = None
        self.trusted = False
        # the registrar's P-Asserted-Identity, when it counts
        self.asserted_identity: str | None = None
        self.requested_answer_mode: str | None = None
        # our 18x go reliably (RFC 3262) when the INVITE requires 100rel
        self.reliable: ReliableSender | None = None
        # a 2xx we retransmit until its ACK (§13.3.1.4)
        self._2xx: Accepted2xx | None = None
        # that 2xx carries our offer (an INVITE or re-INVITE without one): the answer comes in
        # its ACK (RFC 3261 §13.2.1, RFC 3264 §4)
        self._offer_in_2xx = False
        # our reliable 18x carries our offer (an INVITE without one, 100rel): the answer
        # comes in its PRACK (RFC 3261 §13.2.1: "the first reliable non-failure message",
        # RFC 3262 §5)
        self._offer_in_18x = False
        # the re-INVITE waiting for our answer
        self._reoffer: RequestReceived | None = None
        # both
        self.max_end: float | None = None
        self.session_expires: int | None = None
        self.refresher_is_us = False
        self.refresh_at: float | None = None
        self.expire_at: float | None = None

    def __repr__(self) -> str:
        return "<Call %s %s %s>" % (self.id, self.direction, self.state)

    @property
    def ended(self) -> bool:
        return self.state == cs.ENDED

    def _feed(self, name: str, now: float, *args: "Any") -> None:
        """One input through the call's table: the state changes, then the action runs."""
        row = cs.step(self._table, self.state, name, "call %s" % self.id, cs.CALL_COMMANDS)
        if row is None:
            return
        self.state, action = row
        if action is not None:
            getattr(self, "_" + action)(name, now, *args)

    def _feed_offer(self, name: str, now: float, *args: "Any") -> None:
        row = cs.step(cs.OFFER, self.offer_state, name, "call %s" % self.id,
                      cs.OFFER_COMMANDS)
        if row is None:
            return
        self.offer_state, action = row
        if action is not None:  # every OFFER row has one
            getattr(self, "_" + action)(name, now, *args)

    # -- application commands -----------------------------------------------------------------
    def ring(self, now: float, offer: "bytes | None" = None) -> None:
        """Incoming: send 180 Ringing. `offer`: our offer, for an INVITE without one; it goes
        in the 180 when that is reliable (RFC 3262 §5), the answer then in its PRACK."""
        self._feed(cs.RING, now, offer)

    def answer(self, sdp: bytes, now: float) -> None:
        """Incoming: accept with our SDP answer (bytes)."""
        self._feed(cs.ANSWER, now, sdp)

    def reject(self, status: int, now: float, reason: "str | None" = None) -> None:
        """Incoming: refuse before answering (e.g. 403, 486, 603)."""
        self._feed(cs.REJECT, now, status, reason)

    def hangup(self, now: float) -> None:
        """Local hang-up: CANCEL before an answer, BYE after (once the ACK to our 2xx came),
        480 to an incoming call still ringing."""
        self._feed(cs.HANGUP, now)

    def accept_offer(self, sdp: bytes, now: float) -> None:
        """Answer a re-INVITE offer (OfferReceived) with our SDP."""
        self._feed_offer(cs.ACCEPT_OFFER, now, sdp)

    def reject_offer(self, status: int, now: float) -> None:
        self._feed_offer(cs.REJECT_OFFER, now, status)

    def reinvite(self, sdp: bytes, now: float) -> None:
        """Send a new offer within the dialog (hold, resume, refresh, rekey)."""
        self._feed(cs.REINVITE, now, sdp)

    def send_info(self, content_type: str, body: bytes, now: float) -> None:
        self._feed(cs.SEND_INFO, now, content_type, body)

    def send_answer(self, offer: object, sdp: "bytes | None", now: float) -> None:
        """Outgoing with a delayed offer: our answer (None: none could be written) to the
        `offer` a CallRinging or CallEstablished carried; it goes in the PRACK or ACK that
        waited for it (callstate.DELAYED_OFFER; CallStateError when it was answered already).
        Then it is our description of the session."""
        assert isinstance(offer, OfferToAnswer), offer
        offer.branch.give_answer(offer.tag, sdp, now)
        if sdp is not None:
            self.local_sdp = sdp

    # -- actions common to both directions (callstate.UAC_CALL and UAS_CALL) -----------------
    def _send_bye(self, name: str, now: float) -> None:
        self._send_bye_request(now)
        reason, status = END_WITH_BYE[name]
        self._ended(reason, now, status)

    def _end_remote_hangup(self, name: str, now: float) -> None:
        self._ended("remote hangup", now)

    def _end_dialog_gone(self, name: str, now: float, status: int) -> None:
        self._ended("failed", now, status)

    def _refresh_session(self, name: str, now: float) -> None:
        assert self.local_sdp is not None  # ACTIVE: our description went with the INVITE or 2xx
        self._send_reinvite(name, now, self.local_sdp)

    def _send_reinvite(self, name: str, now: float, sdp: bytes) -> None:
        self.local_sdp = sdp
        dialog, dest = self._confirmed()
        request = dialog.create_request("INVITE")
        request.headers.set("Contact", "<%s>" % self.ua.contact_uri())
        request.headers.set("Content-Type", SDP)
        if self.session_expires:
            request.headers.set("Session-Expires", "%d;refresher=%s" % (
                self.session_expires, "uac"))
            request.headers.set("Supported", "timer")
        request.body = sdp
        self.ua.send_request(request, dest, now, Reply(
            request, self._on_reinvite_response, self._on_reinvite_failure))

    def _send_info_request(self, name: str, now: float, content_type: str,
                           body: bytes) -> None:
        dialog, dest = self._confirmed()
        request = dialog.create_request("INFO")
        request.headers.set("Content-Type", content_type)
        request.body = body
        self.ua.send_request(request, dest, now, Reply(request))  # the answer is not needed

    def _answer_in_ack(self, ack: "Request") -> None:
        """Delayed offer (RFC 3261 §13.2.1, RFC 3264 §4): our 2xx carried the offer, the ACK
        carries the answer. Initially, it becomes the call's remote description (reported with
        CallEstablished); to a re-INVITE without SDP, it is an AnswerReceived."""
        if not self._offer_in_2xx:
            return
        self._offer_in_2xx = False
        sdp = body_sdp(ack)
        if sdp is None:
            return
        self.remote_sdp = sdp
        if self.state == cs.ACTIVE:
            self.manager.emit(AnswerReceived(self, sdp))

    def _confirmed(self) -> "tuple[Dialog, Peer]":
        """The dialog and its first hop for a request within it: the tables only send one once
        both are known (an incoming call has them from its INVITE, an outgoing one from its
        2xx)."""
        assert self.dialog is not None and self.dest is not None  # invariant of the tables
        return self.dialog, self.dest

    def _ended(self, reason: str, now: float, status: "int | None" = None) -> None:
        """The state is ENDED: forget the timers, tell the manager and the application."""
        self.ring_deadline = self.max_end = self.refresh_at = self.expire_at = None
        self.manager.call_ended(self)
        self.manager.emit(CallEnded(self, reason, status))

    def _response(self, request: "Request", status: int,
                  reason: "str | None" = None) -> "Response":
        """`request`'s response with our tag in the copied To once there is a dialog
        (§8.2.6.2, §12.1.1: `make_response` adds it only to a To without one, never on a 100)."""
        dialog = self.dialog
        return request.make_response(status, reason,
                                     dialog.local_tag if dialog is not None else None)

    def _reply(self, event: "RequestReceived", status: int, now: float,
               session_expires: bool = False) -> None:
        response = self._response(event.request, status)
        if status == 405:
            response.headers.set("Allow", ALLOW)
        if session_expires:
            self._add_session_expires(response)
        assert event.transaction is not None  # only an ACK has none, and it gets no response
        self.ua.send_response(event.transaction, response, now)

    # -- in-dialog requests and responses --------------------------------------------------
    def _send_bye_request(self, now: float, dialog: "Dialog | None" = None,
                          dest: "Peer | None" = None,
                          authorization: "tuple[str, str] | None" = None,
                          tries: int = 0) -> None:
        dialog = dialog or self.dialog
        if dialog is None:
            return
        dest = dest or self.dest
        assert dest is not None  # a dialog always comes with its first hop
        request = dialog.create_request("BYE")
        if authorization:
            request.headers.set(authorization[0], authorization[1])
        self.ua.send_request(request, dest, now,
                             Reply(request, self._on_bye_response, None, dialog, dest, tries))

    def _on_bye_response(self, reply: "Reply", response: "Response", now: float) -> None:
        """§22.2: a challenged BYE is answered to the same dialog and hop, as
        `auth.retry_in_dialog` says (once; again only for stale=true)."""
        found = auth.retry_in_dialog(response, reply.tries)
        if found is None:
            return
        header, challenge = found
        value = self.ua.answer_challenge(challenge, "BYE", reply.request.uri)
        self._send_bye_request(now, reply.dialog, reply.dest, authorization=(header, value),
                               tries=reply.tries + 1)

    def _on_reinvite_response(self, reply: "Reply", response: "Response", now: float) -> None:
        if 200 <= response.status < 300:
            cseq = response.cseq().seq
            dialog, dest = self._confirmed()
            ack = dialog.create_request("ACK", cseq=cseq)
            self.ua.send_stateless(ack, dest)
            self._read_session_expires(response, we_are_uac=True)
            self._arm_session_timer(now)
            sdp = body_sdp(response)
            if sdp:
                self.remote_sdp = sdp
                self.manager.emit(AnswerReceived(self, sdp))
        elif response.status in (408, 481):
            self._feed(cs.DIALOG_GONE, now, response.status)

    def _on_reinvite_failure(self, reply: "Reply", reason: str, now: float) -> None:
        self._feed(cs.REINVITE_TIMEOUT, now)

    def handle_in_dialog(self, event: "RequestReceived", now: float) -> None:
        """A request within our dialog (or a CANCEL/ACK for our INVITE)."""
        request = event.request
        method = request.method
        if method == "ACK":
            if self._2xx is not None and self._2xx.acknowledged_by(request):
                self._2xx = None
                self._answer_in_ack(request)
            self._feed(cs.ACK, now)
            return
        if method == "CANCEL":
            self._reply(event, 200, now)  # §9.2: the To tag of our INVITE responses
            self._feed(cs.CANCEL_RECEIVED, now)
            return
        if self.dialog is not None and not self.dialog.accepts(request):
            assert event.transaction is not None  # not an ACK (handled above)
            self.ua.send_response(event.transaction, request.make_response(500), now)
            return
        if method == "BYE":
            self._reply(event, 200, now)
            self._feed(cs.BYE_RECEIVED, now)
        elif method == "PRACK":
            # RFC 3262 §3: 200 for our outstanding reliable 18x, 481 for anything else
            reliable = self.reliable
            status = reliable.on_prack(request, now) if reliable else 481
            self._reply(event, status, now)
            self._flush_reliable(now)
            sdp = body_sdp(request)
            if status == 200 and self._offer_in_18x and sdp is not None:
                # RFC 3262 §5: the PRACK answers the offer in our reliable 18x
                self._offer_in_18x = False
                self.remote_sdp = sdp
                self.manager.emit(AnswerReceived(self, sdp))
        elif method == "INVITE":
            self._feed_offer(cs.REOFFER, now, event)
        elif method == "UPDATE" and body_sdp(request) is not None:
            self._feed_offer(cs.UPDATE_OFFER, now, event)
        elif method == "UPDATE":
            self._read_session_expires(request, we_are_uac=False)
            self._arm_session_timer(now)
            self._reply(event, 200, now, session_expires=True)
        elif method == "INFO":
            self._reply(event, 200, now)
            ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            self.manager.emit(InfoReceived(self, ctype, request.body))
        elif method == "REFER":
            self.on_refer(event, now)  # firmware/sip/refer.py (RFC 3515)
        else:
            self._reply(event, 405, now)

    def on_refer(self, event: "RequestReceived", now: float) -> None:
        """REFER within the call: `Transferee` (firmware/sip/refer.py) takes it."""
        self._reply(event, 405, now)

    # -- session timers (RFC 4028) --------------------------------------------------------
    def _add_session_expires(self, response: "Response") -> None:
        """RFC 4028 §9: a 2xx says who refreshes; without it the peer drops its timer."""
        if self.session_expires:
            response.headers.set("Session-Expires", "%d;refresher=%s" % (
                self.session_expires, "uas" if self.refresher_is_us else "uac"))
            response.headers.set("Require", "timer")

    def _read_session_expires(self, message: "Request | Response", we_are_uac: bool) -> None:
        value = message.headers.get("Session-Expires")
        if not value:
            return
        number, _, params = value.partition(";")
        try:
            seconds = int(number.strip())
        except ValueError:
            return
        self.session_expires = max(seconds, MIN_SE)
        refresher = ""
        for param in params.split(";"):
            name, _, val = param.strip().partition("=")
            if name.lower() == "refresher":
                refresher = val.strip().lower()
        if not refresher:
            # RFC 4028 §9: the UAS chooses; the UAC only when it said Supported: timer.
            supported = ",".join(message.headers.get_all("Supported")).lower()
            refresher = "uac" if we_are_uac or "timer" in supported else "uas"
        self.refresher_is_us = (refresher == "uac") == we_are_uac

    def _arm_session_timer(self, now: float) -> None:
        if not self.session_expires:
            return
        if self.refresher_is_us:
            self.refresh_at = now + self.session_expires / 2.0
            self.expire_at = None
        else:
            self.refresh_at = None
            # RFC 4028 §10: BYE at expiry minus the lesser of 32 s and a third of it.
            self.expire_at = now + self.session_expires - min(32, self.session_expires / 3.0)

    def _flush_reliable(self, now: float) -> None:
        """Our reliable 18x (new or retransmitted) go through the INVITE's transaction."""
        if self.reliable is not None and self.transaction is not None:
            for response in self.reliable.to_send():
                self.ua.send_response(self.transaction, response, now)

    # -- timers -----------------------------------------------------------------------------
    def get_timer(self) -> "float | None":
        times = [self.ring_deadline, self.max_end, self.refresh_at, self.expire_at]
        if self.reliable is not None:
            times.append(self.reliable.get_timer())
        if self._2xx is not None:
            times += [self._2xx.next_at, self._2xx.give_up_at]
        times += [b.deadline for b in self.branches if not b.done]
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def handle_timer(self, now: float) -> None:
        """Each due timer becomes one input of the table, in this order; a call that ends
        stops here."""
        if self.ended:
            return
        if self._2xx is not None and now >= self._2xx.give_up_at:
            self._2xx = None
            self._feed(cs.ACK_TIMEOUT, now)
            return
        if self._2xx is not None and now >= self._2xx.next_at:
            self._2xx.retransmit(self.ua, now)
        if self.reliable is not None and self.reliable.get_timer() is not None:
            self.reliable.handle_timer(now)
            self._flush_reliable(now)
            if self.reliable.gave_up:
                self._feed(cs.PRACK_TIMEOUT, now)
                return
        if self.ring_deadline is not None and now >= self.ring_deadline:
            self.ring_deadline = None
            self._feed(cs.RING_TIMEOUT, now)
            return
        for branch in self.branches:
            if branch.deadline is not None and now >= branch.deadline and not branch.done:
                branch.deadline = None
                branch.cancel(now)
                if self.pending_targets:
                    self._feed(cs.NEXT_TARGET, now)
                elif all(b.done for b in self.branches):
                    self._feed(cs.TARGET_TIMEOUT, now)
                    return
        if self.max_end is not None and now >= self.max_end:
            self.max_end = None
            self._feed(cs.MAX_DURATION, now)
            return
        if self.expire_at is not None and now >= self.expire_at:
            self.expire_at = None
            self._feed(cs.SESSION_EXPIRED, now)
            return
        if self.refresh_at is not None and now >= self.refresh_at:
            self.refresh_at = None
            self._feed(cs.REFRESH_DUE, now)
