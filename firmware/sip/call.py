"""INVITE sessions for the door station, sans-I/O (RFC 3261 §13-15, RFC 4028, RFC 5373).

A `Call` is one conversation at the door. Outgoing, it may ring several targets (a ring group):
each target is a `Branch` (firmware/sip/branch.py) with its own INVITE, Call-ID and dialogs
(§13.2.2.4: a forking proxy can give one INVITE several early dialogs). The first 2xx wins; other
branches get CANCEL (§9.1), and a late 2xx is ACKed and ended with BYE (§13.2.2.4). Sequential
ringing starts one branch at a time with a per-target timeout.

Incoming, the call layer answers 100 at once; the application then rings, answers or rejects.
A 2xx we send is retransmitted with T1 doubling to T2 until the ACK comes (§13.3.1.4) and the call
is ended with BYE if it never does.

Also: CANCEL both ways including the race with 200 (§9.1, §15); BYE both ways (§15); re-INVITE
offers received (hold/resume, RFC 6337) and sent; 3xx redirects (§8.1.3.4) refused by default and,
with `follow_redirects`, followed only to a Contact that is one of the call's own configured targets
(no toll fraud: a 3xx cannot make the station call, and pay for, a number nobody configured; each
refusal is a `RedirectRefused` event); 401/407 answered once per nonce for INVITE and BYE (§22.2),
and only for a Request-URI that is one of the call's configured targets, by the UA's one digest
answerer (firmware/sip/auth.py); session timers (RFC 4028 §9-10) with refresh by re-INVITE and BYE
when the peer stops refreshing; a ring timeout (CANCEL) and a maximum duration (BYE);
Answer-Mode / Priv-Answer-Mode (RFC 5373) read on incoming INVITEs and sent on outgoing ones;
delayed offer both ways (RFC 3261 §13.2.1, RFC 3262 §5): an INVITE without SDP gets our offer in
the 200 (or, requiring 100rel, in the reliable 180), and ours may go without one
(`place_call(sdp=None)`, table `callstate.DELAYED_OFFER`, answered with `Call.send_answer`).

The call's state machine is `callstate.UAC_CALL` (outgoing) or `callstate.UAS_CALL` (incoming),
with `callstate.OFFER` for re-INVITEs received; every input goes through `Call._feed`. The
application's commands (`ring`, `answer`, `reject`, `hangup`, `reinvite`, `send_info`,
`accept_offer`, `reject_offer`) raise `CallStateError` in a state that has no row for them.
The module is split by role: uac.py (outgoing), uas.py (incoming and received offers), branch.py,
auth.py (digest answers), callstate.py (states and tables), callevents.py (events); the names
below are re-exported so that `from firmware.sip import call` reaches all of them.
"""

from firmware.sip.branch import MIN_SE, SESSION_EXPIRES, Branch  # noqa: F401
from firmware.sip.callevents import (  # noqa: F401
    SDP,
    AnswerReceived,
    CallEnded,
    CallEstablished,
    CallEvent,
    CallRinging,
    IncomingCall,
    InfoReceived,
    OfferReceived,
    RedirectRefused,
    body_sdp,
)
from firmware.sip.callstate import (  # noqa: F401
    ACTIVE,
    ANSWERING,
    CALLING,
    CLOSING,
    ENDED,
    RINGING,
    CallStateError,
)
from firmware.sip.dialog import Dialog, dialog_key
from firmware.sip.errors import ParseError
from firmware.sip.messaging import (  # noqa: F401 (events re-exported)
    MessageDelivered,
    MessageFailed,
    MessageReceived,
    Messages,
)
from firmware.sip.refer import (  # noqa: F401 (events re-exported)
    ReferReceived,
    ReferRefused,
    Transferee,
    parse_replaces,
    source_text,
)
from firmware.sip.reply import Reply  # noqa: F401 (re-exported)
from firmware.sip.uac import UacCall
from firmware.sip.uas import (  # noqa: F401
    IDENTITY_ASSERTED,
    IDENTITY_FROM,
    TIMER_2XX_GIVE_UP,
    UasCall,
    answer_mode,
    asserted_identity,
)
from firmware.sip.uri import URI
from firmware.sip.useragent import ALLOW

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sip.callbase import CallBase
    from firmware.sip.endpoint import Peer, RequestReceived
    from firmware.sip.message import Request, Response
    from firmware.sip.useragent import UserAgent

RECENTLY_ENDED = 8  # outgoing calls remembered to re-ACK a retransmitted 2xx (§13.2.2.4)


class Call(UacCall, UasCall, Transferee):
    """One conversation. Build with `CallManager.place_call` or receive as `IncomingCall`.
    What both directions share is `CallBase` (firmware/sip/callbase.py); the outgoing side
    is `UacCall`, the incoming side and received offers `UasCall`, REFER `Transferee`."""

    # MicroPython looks methods up depth first (no C3 order): CallBase's 405 stub would be
    # found through UacCall before Transferee's, so the override is named here.
    on_refer = Transferee.on_refer


class CallManager:
    """The call layer: the UA's request handler. `max_calls` bounds simultaneous calls; extra
    INVITEs get 486 Busy Here. It owns every request the UA hands it: one that belongs to no
    call goes back to `ua.answer_unmatched` (481 / 501)."""

    allow = ALLOW

    def __init__(self, ua: "UserAgent", max_calls: int = 1, ring_timeout: float = 30.0,
                 max_duration: float = 300.0, max_auto_duration: "float | None" = None,
                 follow_redirects: bool = False, identity: str = IDENTITY_FROM) -> None:
        self.ua = ua
        self.follow_redirects = follow_redirects  # 3xx only ever to a configured target
        # [answer] identity: who an incoming caller is, while registered (see _incoming)
        self.identity = identity
        self.max_calls = max_calls
        self.ring_timeout = ring_timeout
        self.max_duration = max_duration
        self.max_auto_duration = max_auto_duration
        self.calls: list[CallBase] = []
        # (call-id, local tag, remote tag) → Call
        self._by_dialog: dict[tuple[str, str | None, str | None], CallBase] = {}
        # call-id of an incoming INVITE → Call (CANCEL, ACK, BYE early)
        self._by_invite: dict[str, CallBase] = {}
        # outgoing calls whose 2xx may still be retransmitted
        self._recently_ended: list[CallBase] = []
        # call events, ReferRefused outside a dialog, and the MESSAGE events (messaging.py)
        self._events: list[object] = []
        self.messages = Messages(ua, self.emit)  # SIP MESSAGE both ways (RFC 3428)
        ua.request_handler = self

    def emit(self, event: object) -> None:
        self._events.append(event)

    def next_event(self) -> object:
        return self._events.pop(0) if self._events else None

    def max_duration_for(self, call: "CallBase") -> float:
        if call.direction == "incoming" and call.answer_mode == "auto" and \
                self.max_auto_duration:
            return min(self.max_duration, self.max_auto_duration)
        return self.max_duration

    # -- outgoing ---------------------------------------------------------------------------
    def place_call(self, targets: "list[tuple[str, Peer]]", sdp: "bytes | None", now: float,
                   sequential: bool = False, target_timeout: "float | None" = None,
                   answer_mode: "str | None" = None, call_id: "str | None" = None,
                   headers: "list[tuple[str, str]] | None" = None,
                   extra_calls: int = 0) -> "Call | None":
        """Ring `targets` ([(uri, next-hop Peer)], routed by firmware/session/routing.py: the
        call layer sends each INVITE to its Peer as given) in parallel (or one by one). Returns
        the Call (its `id` is `call_id` when the application issued one), or None when
        `max_calls` (+ `extra_calls`: a transfer's new call beside the one it replaces) are
        already up. `headers`: added to each INVITE (Referred-By, Replaces: RFC 3892, 3891).
        `sdp` None: a delayed offer (INVITE without SDP; the offer comes in a reliable 18x or
        the 2xx and is answered with `Call.send_answer`, callstate.DELAYED_OFFER)."""
        if len(self.calls) >= self.max_calls + extra_calls or not targets:
            return None
        call = Call(self, self.ua, "outgoing", now, self.follow_redirects, call_id)
        call.extra_headers = list(headers or ())
        call.local_sdp = sdp
        call.delayed_offer = sdp is None
        call.answer_mode = answer_mode
        call.sequential = sequential
        call.target_timeout = target_timeout
        call.peer = targets[0][0]
        call.ring_deadline = now + self.ring_timeout
        self.calls.append(call)
        call.pending_targets = list(targets)
        for text, peer in targets:
            try:
                parsed = URI.parse(text)
            except ParseError:
                parsed = None
            call.targets.append((text, parsed, peer))
        if sequential:
            call._start_next(now)
        else:
            while call.pending_targets:
                call._start_next(now)
        return call

    # -- the UA's request handler ----------------------------------------------------------
    def handle_request(self, event: "RequestReceived", now: float) -> None:
        """A request the UA does not answer itself: to its call, a new INVITE to `_incoming`,
        anything else back to the UA's answer for the unmatched (481 / 501; ACK absorbed)."""
        request = event.request
        try:
            to_tag = request.to_address().tag
        except (ParseError, TypeError):
            self.ua.answer_unmatched(event, now)
            return
        call = self._owner(request, to_tag)
        if call is not None:
            call.handle_in_dialog(event, now)
        elif request.method == "INVITE" and not to_tag:
            self._incoming(event, now)
        elif request.method == "MESSAGE" and not to_tag:
            self.messages.receive(event, self.ua.from_registrar(event.source) or
                                  event.source.transport == "tls", now)
        elif request.method == "REFER":
            # RFC 3515 §2.4.7 allows REFER outside a dialog; a door station never dials for it
            status, reason = (481, "REFER for no call of ours") if to_tag else \
                (403, "REFER outside a dialog")
            response = request.make_response(status)
            if not to_tag:
                response.headers.set("To", "%s;tag=%s" % (response.headers.get("To"),
                                                         self.ua.new_tag()))
            assert event.transaction is not None  # a REFER has its server transaction
            self.ua.send_response(event.transaction, response, now)
            shown = (request.headers.get("Refer-To") or "")[:512]
            self.emit(ReferRefused(None, shown, status, reason, source_text(event)))
        else:
            self.ua.answer_unmatched(event, now)

    def knows_dialog(self, request: "Request") -> bool:
        """Does `request` belong to one of our live dialogs (§12.2.2: its Call-ID, To tag and
        From tag)? The admission screen's budget for in-dialog requests asks."""
        try:
            key = dialog_key(request, local_is_from=False)
        except (ParseError, TypeError):
            return False
        return key[1] is not None and key in self._by_dialog

    def _owner(self, request: "Request", to_tag: "str | None") -> "CallBase | None":
        """The call a request belongs to, or None: by its dialog (§12.2.2); a CANCEL by its
        INVITE's server transaction, not just its Call-ID (§9.2); an ACK to our final response
        to the INVITE."""
        if to_tag:
            return self._by_dialog.get(dialog_key(request, local_is_from=False))
        call = self._by_invite.get(request.headers.get("Call-ID"))
        if call is None:
            return None
        if request.method == "CANCEL":
            invite = self.ua.find_cancelled(request)
            return call if invite is not None and invite is call.transaction else None
        return call if request.method == "ACK" else None

    def handle_stray_response(self, response: "Response", now: float) -> None:
        """A 2xx retransmission after the INVITE transaction ended: ACK it again (§13.2.2.4),
        also for a call that has just ended (its ACK was lost; a late fork gets ACK + BYE)."""
        for call in self.calls + self._recently_ended:
            for branch in call.branches:
                if branch.call_id == response.headers.get("Call-ID") and \
                        branch.invite is not None:
                    branch.on_stray_2xx(response, now)
                    return

    def _incoming(self, event: "RequestReceived", now: float) -> None:
        request = event.request
        ua = self.ua
        replaced = None
        replacing = "Replaces" in request.headers
        if replacing:
            replaced = self._replaced(request)
            if replaced is None:  # RFC 3891 §3: no matching dialog (or not ours to replace)
                response = request.make_response(481)
                response.headers.set("To", "%s;tag=%s" % (response.headers.get("To"),
                                                         ua.new_tag()))
                assert event.transaction is not None  # an INVITE has its server transaction
                ua.send_response(event.transaction, response, now)
                return
        extra = 1 if replacing else 0  # replaces a call: one more, briefly
        if len(self.calls) >= self.max_calls + extra:
            response = request.make_response(486, "Busy Here")
            response.headers.set("To", "%s;tag=%s" % (response.headers.get("To"), ua.new_tag()))
            assert event.transaction is not None  # an INVITE has its server transaction
            ua.send_response(event.transaction, response, now)
            return
        call = Call(self, ua, "incoming", now)
        call.replaces = replaced.id if replaced is not None else None
        call.invite = request
        call.transaction = event.transaction
        call.source = event.source
        call.dest = event.source
        call.trusted = ua.from_registrar(event.source) or event.source.transport == "tls"
        call.peer = str(request.from_address().uri)
        if self.identity == IDENTITY_ASSERTED and ua.registrar is not None:
            # RFC 3325: the From is whatever the caller wrote (a PSTN caller ID can be spoofed);
            # the P-Asserted-Identity is what the registrar (our trust domain) vouches for.
            # Only the registrar's own PAI counts; without one the call is not trusted.
            asserted = asserted_identity(request) if ua.from_registrar(event.source) else None
            call.asserted_identity = asserted
            if asserted is None:
                call.trusted = False
            else:
                call.peer = asserted
        call.remote_sdp = body_sdp(request)
        call.requested_answer_mode = answer_mode(request)
        if "Require" in request.headers:  # (none: no 100rel, issue 14, the answer path)
            # loaded with the first incoming call that requires something, not at start-up
            from firmware.sip import prack

            if prack.requires(request):  # RFC 3262 §3: our 18x go reliably (Supported: not)
                call.reliable = prack.ReliableSender(
                    1 + int.from_bytes(ua.random(3), "big"))
        call.dialog = Dialog.as_uas(request, ua.new_tag())
        call._read_session_expires(request, we_are_uac=False)
        call.ring_deadline = now + self.ring_timeout
        self.calls.append(call)
        self._by_invite[request.headers.get("Call-ID")] = call
        self.register_dialog(call, call.dialog)  # the transaction has sent 100 (§17.2.1)
        self.emit(IncomingCall(call))

    def _replaced(self, request: "Request") -> "CallBase | None":
        """RFC 3891 §3: the call whose dialog the Replaces header names (its to-tag is our
        tag), when it is up; None otherwise (a malformed header too)."""
        try:
            call_id, to_tag, from_tag, early_only = parse_replaces(
                request.headers.get("Replaces") or "")
        except ParseError:
            return None
        call = self._by_dialog.get((call_id, to_tag, from_tag))
        if call is None:
            for candidate in self.calls:  # an outgoing call's dialog is keyed by its branch
                dialog = candidate.dialog
                if dialog is not None and dialog.id == (call_id, to_tag, from_tag):
                    call = candidate
        if call is None or call.state not in (ACTIVE, ANSWERING) or early_only:
            return None
        return call

    def register_dialog(self, call: "CallBase", dialog: "Dialog") -> None:
        self._by_dialog[dialog.id] = call

    def call_ended(self, call: "CallBase") -> None:
        if call in self.calls:
            self.calls.remove(call)
        if call.direction == "outgoing":
            self._recently_ended = (self._recently_ended + [call])[-RECENTLY_ENDED:]
        for key in [k for k, c in self._by_dialog.items() if c is call]:
            del self._by_dialog[key]
        for call_id in [k for k, c in self._by_invite.items() if c is call]:
            del self._by_invite[call_id]

    def get_timer(self) -> "float | None":
        times = [c.get_timer() for c in self.calls]
        due = [t for t in times if t is not None]
        return min(due) if due else None

    def handle_timer(self, now: float) -> None:
        for call in list(self.calls):
            call.handle_timer(now)

    def hangup_all(self, now: float) -> None:
        for call in list(self.calls):
            if call.state != ENDED:  # an earlier hang-up may have ended it already
                call.hangup(now)
