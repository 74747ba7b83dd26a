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
Answer-Mode / Priv-Answer-Mode (RFC 5373) read on incoming INVITEs and sent on outgoing ones.

The call's state machine is `callstate.UAC_CALL` (outgoing) or `callstate.UAS_CALL` (incoming),
with `callstate.OFFER` for re-INVITEs received; every input goes through `Call._feed`. The
application's commands (`ring`, `answer`, `reject`, `hangup`, `reinvite`, `send_info`,
`accept_offer`, `reject_offer`) raise `CallStateError` in a state that has no row for them.
The module is split by role: uac.py (outgoing), uas.py (incoming and received offers), branch.py,
auth.py (digest answers), callstate.py (states and tables), callevents.py (events); the names
below are re-exported so that `from firmware.sip import call` reaches all of them.
"""

from firmware.sip import auth
from firmware.sip import callstate as cs
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

RECENTLY_ENDED = 8  # outgoing calls remembered to re-ACK a retransmitted 2xx (§13.2.2.4)

# How a call that ends with our BYE reports it (CallEnded reason, status), by the input
END_WITH_BYE = {
    cs.HANGUP: ("local hangup", None),
    cs.ACK: ("local hangup", None),  # hung up while answering: the ACK came
    cs.MAX_DURATION: ("max duration", None),
    cs.SESSION_EXPIRED: ("session expired", 408),
    cs.ACK_TIMEOUT: ("timeout", 408),
    cs.REINVITE_TIMEOUT: ("failed", 408),
}


class Call(UacCall, UasCall):
    """One conversation. Build with `CallManager.place_call` or receive as `IncomingCall`."""

    def __init__(self, manager, ua, direction, now, follow_redirects=False, call_id=None):
        self.manager = manager  # the call layer: dialogs registered, events emitted
        self.ua = ua  # the user agent: what the call sends (firmware/sip/useragent.py)
        self.direction = direction
        self.id = call_id or ua.new_id()  # outgoing: issued by the controller
        self.follow_redirects = follow_redirects  # 3xx only ever to a configured target
        self.state = cs.CALLING if direction == "outgoing" else cs.RINGING
        self._table = cs.UAC_CALL if direction == "outgoing" else cs.UAS_CALL
        self.offer_state = cs.NO_OFFER
        self.created = now
        self.answered_at = None
        self.dialog = None
        self.dest = None  # next hop of in-dialog requests
        self.local_sdp = None
        self.remote_sdp = None
        self.answer_mode = None
        self.peer = None  # display URI of the other side
        # outgoing
        self.branches = []
        self.pending_targets = []
        self.targets = []  # [(uri text, URI or None, Peer)]: what the call may ring
        self.sequential = False
        self.target_timeout = None
        self.ring_deadline = None
        # incoming
        self.invite = None
        self.transaction = None
        self.source = None
        self.trusted = False
        self.asserted_identity = None  # the registrar's P-Asserted-Identity, when it counts
        self.requested_answer_mode = None
        self._2xx = None  # uas.Accepted2xx: a 2xx we retransmit until its ACK (§13.3.1.4)
        self._reoffer = None  # the re-INVITE (a RequestReceived) waiting for our answer
        # both
        self.max_end = None
        self.session_expires = None
        self.refresher_is_us = False
        self.refresh_at = None
        self.expire_at = None

    def __repr__(self):
        return "<Call %s %s %s>" % (self.id, self.direction, self.state)

    @property
    def ended(self):
        return self.state == cs.ENDED

    def _feed(self, name, now, *args):
        """One input through the call's table: the state changes, then the action runs."""
        row = cs.step(self._table, self.state, name, "call %s" % self.id, cs.CALL_COMMANDS)
        if row is None:
            return
        self.state, action = row
        if action is not None:
            getattr(self, "_" + action)(name, now, *args)

    def _feed_offer(self, name, now, *args):
        row = cs.step(cs.OFFER, self.offer_state, name, "call %s" % self.id,
                      cs.OFFER_COMMANDS)
        if row is None:
            return
        self.offer_state, action = row
        getattr(self, "_" + action)(name, now, *args)

    # -- application commands -----------------------------------------------------------------
    def ring(self, now):
        """Incoming: send 180 Ringing."""
        self._feed(cs.RING, now)

    def answer(self, sdp, now):
        """Incoming: accept with our SDP answer (bytes)."""
        self._feed(cs.ANSWER, now, sdp)

    def reject(self, status, now, reason=None):
        """Incoming: refuse before answering (e.g. 403, 486, 603)."""
        self._feed(cs.REJECT, now, status, reason)

    def hangup(self, now):
        """Local hang-up: CANCEL before an answer, BYE after (once the ACK to our 2xx came),
        480 to an incoming call still ringing."""
        self._feed(cs.HANGUP, now)

    def accept_offer(self, sdp, now):
        """Answer a re-INVITE offer (OfferReceived) with our SDP."""
        self._feed_offer(cs.ACCEPT_OFFER, now, sdp)

    def reject_offer(self, status, now):
        self._feed_offer(cs.REJECT_OFFER, now, status)

    def reinvite(self, sdp, now):
        """Send a new offer within the dialog (hold, resume, refresh, rekey)."""
        self._feed(cs.REINVITE, now, sdp)

    def send_info(self, content_type, body, now):
        self._feed(cs.SEND_INFO, now, content_type, body)

    # -- actions common to both directions (callstate.UAC_CALL and UAS_CALL) -----------------
    def _send_bye(self, name, now):
        self._send_bye_request(now)
        reason, status = END_WITH_BYE[name]
        self._ended(reason, now, status)

    def _end_remote_hangup(self, name, now):
        self._ended("remote hangup", now)

    def _end_dialog_gone(self, name, now, status):
        self._ended("failed", now, status)

    def _refresh_session(self, name, now):
        self._send_reinvite(name, now, self.local_sdp)

    def _send_reinvite(self, name, now, sdp):
        self.local_sdp = sdp
        request = self.dialog.create_request("INVITE")
        request.headers.set("Contact", "<%s>" % self.ua.contact_uri())
        request.headers.set("Content-Type", SDP)
        if self.session_expires:
            request.headers.set("Session-Expires", "%d;refresher=%s" % (
                self.session_expires, "uac"))
            request.headers.set("Supported", "timer")
        request.body = sdp
        self.ua.send_request(request, self.dest, now, Reply(
            request, self._on_reinvite_response, self._on_reinvite_failure))

    def _send_info_request(self, name, now, content_type, body):
        request = self.dialog.create_request("INFO")
        request.headers.set("Content-Type", content_type)
        request.body = body
        self.ua.send_request(request, self.dest, now, Reply(request))  # the answer is not needed

    def _ended(self, reason, now, status=None):
        """The state is ENDED: forget the timers, tell the manager and the application."""
        self.ring_deadline = self.max_end = self.refresh_at = self.expire_at = None
        self.manager.call_ended(self)
        self.manager.emit(CallEnded(self, reason, status))

    # -- in-dialog requests and responses --------------------------------------------------
    def _send_bye_request(self, now, dialog=None, dest=None, authorization=None):
        dialog = dialog or self.dialog
        if dialog is None:
            return
        dest = dest or self.dest
        request = dialog.create_request("BYE")
        if authorization:
            request.headers.set(authorization[0], authorization[1])
        self.ua.send_request(request, dest, now,
                             Reply(request, self._on_bye_response, None, dialog, dest))

    def _on_bye_response(self, reply, response, now):
        """§22.2: a challenged BYE is answered once, to the same dialog and hop."""
        if response.status not in (401, 407) or "Authorization" in reply.request.headers or \
                "Proxy-Authorization" in reply.request.headers:
            return
        found = auth.challenge_in(response)
        if found is None:
            return
        header, challenge = found
        value = self.ua.answer_challenge(challenge, "BYE", reply.request.uri)
        self._send_bye_request(now, reply.dialog, reply.dest, authorization=(header, value))

    def _on_reinvite_response(self, reply, response, now):
        if 200 <= response.status < 300:
            cseq = response.cseq().seq
            ack = self.dialog.create_request("ACK", cseq=cseq)
            self.ua.send_stateless(ack, self.dest)
            self._read_session_expires(response, we_are_uac=True)
            self._arm_session_timer(now)
            sdp = body_sdp(response)
            if sdp:
                self.remote_sdp = sdp
                self.manager.emit(AnswerReceived(self, sdp))
        elif response.status in (408, 481):
            self._feed(cs.DIALOG_GONE, now, response.status)

    def _on_reinvite_failure(self, reply, reason, now):
        self._feed(cs.REINVITE_TIMEOUT, now)

    def handle_in_dialog(self, event, now):
        """A request within our dialog (or a CANCEL/ACK for our INVITE)."""
        request = event.request
        method = request.method
        if method == "ACK":
            if self._2xx is not None and self._2xx.acknowledged_by(request):
                self._2xx = None
            self._feed(cs.ACK, now)
            return
        if method == "CANCEL":
            self._reply(event, 200, now)  # §9.2: the To tag of our INVITE responses
            self._feed(cs.CANCEL_RECEIVED, now)
            return
        if self.dialog is not None and not self.dialog.accepts(request):
            self.ua.send_response(event.transaction, request.make_response(500), now)
            return
        if method == "BYE":
            self._reply(event, 200, now)
            self._feed(cs.BYE_RECEIVED, now)
        elif method == "INVITE":
            self._feed_offer(cs.REOFFER, now, event)
        elif method == "UPDATE":
            self._read_session_expires(request, we_are_uac=False)
            self._arm_session_timer(now)
            self._reply(event, 200, now, session_expires=True)
        elif method == "INFO":
            self._reply(event, 200, now)
            ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            self.manager.emit(InfoReceived(self, ctype, request.body))
        else:
            self._reply(event, 405, now)

    # -- session timers (RFC 4028) --------------------------------------------------------
    def _add_session_expires(self, response):
        """RFC 4028 §9: a 2xx says who refreshes; without it the peer drops its timer."""
        if self.session_expires:
            response.headers.set("Session-Expires", "%d;refresher=%s" % (
                self.session_expires, "uas" if self.refresher_is_us else "uac"))
            response.headers.set("Require", "timer")

    def _read_session_expires(self, message, we_are_uac):
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

    def _arm_session_timer(self, now):
        if not self.session_expires:
            return
        if self.refresher_is_us:
            self.refresh_at = now + self.session_expires / 2.0
            self.expire_at = None
        else:
            self.refresh_at = None
            # RFC 4028 §10: BYE at expiry minus the lesser of 32 s and a third of it.
            self.expire_at = now + self.session_expires - min(32, self.session_expires / 3.0)

    # -- timers -----------------------------------------------------------------------------
    def get_timer(self):
        times = [self.ring_deadline, self.max_end, self.refresh_at, self.expire_at]
        if self._2xx is not None:
            times += [self._2xx.next_at, self._2xx.give_up_at]
        times += [b.deadline for b in self.branches if not b.done]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def handle_timer(self, now):
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


class CallManager:
    """The call layer: the UA's request handler. `max_calls` bounds simultaneous calls; extra
    INVITEs get 486 Busy Here. It owns every request the UA hands it: one that belongs to no
    call goes back to `ua.answer_unmatched` (481 / 501)."""

    allow = ALLOW

    def __init__(self, ua, max_calls=1, ring_timeout=30.0, max_duration=300.0,
                 max_auto_duration=None, follow_redirects=False, identity=IDENTITY_FROM):
        self.ua = ua
        self.follow_redirects = follow_redirects  # 3xx only ever to a configured target
        # [answer] identity: who an incoming caller is, while registered (see _incoming)
        self.identity = identity
        self.max_calls = max_calls
        self.ring_timeout = ring_timeout
        self.max_duration = max_duration
        self.max_auto_duration = max_auto_duration
        self.calls = []
        self._by_dialog = {}  # (call-id, local tag, remote tag) → Call
        self._by_invite = {}  # call-id of an incoming INVITE → Call (CANCEL, ACK, BYE early)
        self._recently_ended = []  # outgoing calls whose 2xx may still be retransmitted
        self._events = []
        ua.request_handler = self

    def emit(self, event):
        self._events.append(event)

    def next_event(self):
        return self._events.pop(0) if self._events else None

    def max_duration_for(self, call):
        if call.direction == "incoming" and call.answer_mode == "auto" and \
                self.max_auto_duration:
            return min(self.max_duration, self.max_auto_duration)
        return self.max_duration

    # -- outgoing ---------------------------------------------------------------------------
    def place_call(self, targets, sdp, now, sequential=False, target_timeout=None,
                   answer_mode=None, call_id=None):
        """Ring `targets` ([(uri, next-hop Peer)], routed by firmware/session/routing.py: the
        call layer sends each INVITE to its Peer as given) in parallel (or one by one). Returns
        the Call (its `id` is `call_id` when the application issued one), or None when
        `max_calls` are already up."""
        if len(self.calls) >= self.max_calls or not targets:
            return None
        call = Call(self, self.ua, "outgoing", now, self.follow_redirects, call_id)
        call.local_sdp = sdp
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
    def handle_request(self, event, now):
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
        else:
            self.ua.answer_unmatched(event, now)

    def _owner(self, request, to_tag):
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

    def handle_stray_response(self, response, now):
        """A 2xx retransmission after the INVITE transaction ended: ACK it again (§13.2.2.4),
        also for a call that has just ended (its ACK was lost; a late fork gets ACK + BYE)."""
        for call in self.calls + self._recently_ended:
            for branch in call.branches:
                if branch.call_id == response.headers.get("Call-ID") and \
                        branch.invite is not None:
                    branch.on_stray_2xx(response, now)
                    return

    def _incoming(self, event, now):
        request = event.request
        ua = self.ua
        if len(self.calls) >= self.max_calls:
            response = request.make_response(486, "Busy Here")
            response.headers.set("To", "%s;tag=%s" % (response.headers.get("To"), ua.new_tag()))
            ua.send_response(event.transaction, response, now)
            return
        call = Call(self, ua, "incoming", now)
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
        call.dialog = Dialog.as_uas(request, ua.new_tag())
        call._read_session_expires(request, we_are_uac=False)
        call.ring_deadline = now + self.ring_timeout
        self.calls.append(call)
        self._by_invite[request.headers.get("Call-ID")] = call
        self.register_dialog(call, call.dialog)  # the transaction has sent 100 (§17.2.1)
        self.emit(IncomingCall(call))

    def register_dialog(self, call, dialog):
        self._by_dialog[dialog.id] = call

    def call_ended(self, call):
        if call in self.calls:
            self.calls.remove(call)
        if call.direction == "outgoing":
            self._recently_ended = (self._recently_ended + [call])[-RECENTLY_ENDED:]
        for key in [k for k, c in self._by_dialog.items() if c is call]:
            del self._by_dialog[key]
        for key in [k for k, c in self._by_invite.items() if c is call]:
            del self._by_invite[key]

    def get_timer(self):
        times = [c.get_timer() for c in self.calls]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def handle_timer(self, now):
        for call in list(self.calls):
            call.handle_timer(now)

    def hangup_all(self, now):
        for call in list(self.calls):
            if call.state != ENDED:  # an earlier hang-up may have ended it already
                call.hangup(now)
