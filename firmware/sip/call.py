"""INVITE sessions for the door station, sans-I/O (RFC 3261 §13-15, RFC 4028, RFC 5373).

A `Call` is one conversation at the door. Outgoing, it may ring several targets (a ring group):
each target is a `Branch` with its own INVITE, Call-ID and dialogs (§13.2.2.4: a forking proxy can
give one INVITE several early dialogs). The first 2xx wins; other branches get CANCEL (§9.1), and
a late 2xx is ACKed and ended with BYE (§13.2.2.4). Sequential ringing starts one branch at a time
with a per-target timeout.

Incoming, the call layer answers 100 at once; the application then rings, answers or rejects.
A 2xx we send is retransmitted with T1 doubling to T2 until the ACK comes (§13.3.1.4) and the call
is ended with BYE if it never does.

Also: CANCEL both ways including the race with 200 (§9.1, §15); BYE both ways (§15); re-INVITE
offers received (hold/resume, RFC 6337) and sent; 3xx redirects (§8.1.3.4) refused by default and,
with `follow_redirects`, followed only to a Contact that is one of the call's own configured targets
(no toll fraud: a 3xx cannot make the station call, and pay for, a number nobody configured; each
refusal is a `RedirectRefused` event); 401/407 answered once per nonce for INVITE and BYE (§22.2),
and only for a Request-URI that is one of the call's configured targets; session timers
(RFC 4028 §9-10) with refresh by re-INVITE and BYE when the peer stops refreshing; a ring
timeout (CANCEL) and a maximum duration (BYE); Answer-Mode / Priv-Answer-Mode (RFC 5373) read
on incoming INVITEs and sent on outgoing ones when asked.
"""

import os

from firmware.sip import digest
from firmware.sip.dialog import CONFIRMED, Dialog, dialog_key
from firmware.sip.endpoint import response_destination
from firmware.sip.errors import ParseError
from firmware.sip.message import CSeq, NameAddress, Request
from firmware.sip.transaction import T1, T2
from firmware.sip.uri import URI

# Call states
CALLING = "calling"  # outgoing, no answer yet
RINGING = "ringing"  # outgoing with a 18x, or incoming waiting for the application
ANSWERING = "answering"  # incoming, 2xx sent, waiting for the ACK
ACTIVE = "active"
ENDED = "ended"

TIMER_2XX_GIVE_UP = 64 * T1  # §13.3.1.4: no ACK after this long ends the call
MAX_REDIRECTS = 3
RECENTLY_ENDED = 8  # outgoing calls remembered to re-ACK a retransmitted 2xx (§13.2.2.4)
SESSION_EXPIRES = 1800  # RFC 4028 §4: recommended default
MIN_SE = 90  # RFC 4028 §5: the minimum Session-Expires

SDP = "application/sdp"


# -- events --------------------------------------------------------------------------------
class CallEvent:
    __slots__ = ("call",)

    def __init__(self, call):
        self.call = call

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.call.id)


class IncomingCall(CallEvent):
    """A new INVITE: the application calls `ring`, `answer` or `reject` on `call`."""

    __slots__ = ()


class CallRinging(CallEvent):
    """Outgoing call: a target rings (`sdp` is early media, or None)."""

    __slots__ = ("sdp",)

    def __init__(self, call, sdp):
        CallEvent.__init__(self, call)
        self.sdp = sdp


class CallEstablished(CallEvent):
    """Media can flow: `sdp` is the remote description of the session."""

    __slots__ = ("sdp",)

    def __init__(self, call, sdp):
        CallEvent.__init__(self, call)
        self.sdp = sdp


class OfferReceived(CallEvent):
    """A re-INVITE with an offer: the application calls `accept_offer(answer)` or
    `reject_offer(status)`."""

    __slots__ = ("sdp",)

    def __init__(self, call, sdp):
        CallEvent.__init__(self, call)
        self.sdp = sdp


class AnswerReceived(CallEvent):
    """The answer to a re-INVITE we sent."""

    __slots__ = ("sdp",)

    def __init__(self, call, sdp):
        CallEvent.__init__(self, call)
        self.sdp = sdp


class InfoReceived(CallEvent):
    """An INFO within the call (DTMF relay): content type and body."""

    __slots__ = ("content_type", "body")

    def __init__(self, call, content_type, body):
        CallEvent.__init__(self, call)
        self.content_type = content_type
        self.body = body


# Whose identity an incoming call has while registered ([answer] identity): the From header,
# or the P-Asserted-Identity the registrar adds (RFC 3325).
IDENTITY_FROM = "from"
IDENTITY_ASSERTED = "asserted"
MAX_LOGGED_URI = 120  # a refused Contact is attacker-controlled text: logged truncated


class RedirectRefused(CallEvent):
    """A 3xx to our INVITE was not followed. `target`: the configured target that answered
    3xx; `uri`: the Contact it pointed to (printable, at most MAX_LOGGED_URI characters);
    `reason`: why ("redirects are not followed", "not a configured target", "too many
    redirects"); `status`: the 3xx code."""

    __slots__ = ("target", "uri", "reason", "status")

    def __init__(self, call, target, uri, reason, status):
        CallEvent.__init__(self, call)
        self.target = target
        self.uri = _printable(uri, MAX_LOGGED_URI)
        self.reason = reason
        self.status = status

    def __repr__(self):
        return "<RedirectRefused %s %s -> %s: %s>" % (self.call.id, self.target, self.uri,
                                                      self.reason)


class CallEnded(CallEvent):
    """`reason`: answered elsewhere, cancelled, remote hangup, local hangup, no answer,
    rejected, busy, timeout, max duration, session expired, failed; `status` the SIP code."""

    __slots__ = ("reason", "status")

    def __init__(self, call, reason, status=None):
        CallEvent.__init__(self, call)
        self.reason = reason
        self.status = status

    def __repr__(self):
        return "<CallEnded %s %s %s>" % (self.call.id, self.reason, self.status or "")


def _body_sdp(message):
    ctype = (message.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if message.body and ctype == SDP:
        return message.body
    return None


def _printable(text, limit):
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in str(text))
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _reason_for(status):
    if status in (486, 600):
        return "busy"
    if status in (480, 408):
        return "no answer"
    if status in (603, 403):
        return "rejected"
    return "failed"


# -- context objects the endpoint hands responses back to ---------------------------------
class _Reply:
    """Routes the responses of one request we sent back to its owner method; `dialog` and
    `dest` say where a BYE went, so an authorized retry goes to the same dialog."""

    __slots__ = ("owner", "kind", "request", "dialog", "dest")

    def __init__(self, owner, kind, request, dialog=None, dest=None):
        self.owner = owner
        self.kind = kind
        self.request = request
        self.dialog = dialog
        self.dest = dest

    def on_response(self, response, now):
        self.owner.on_response(self, response, now)

    def on_failure(self, reason, now):
        self.owner.on_failure(self, reason, now)


class Branch:
    """One outgoing INVITE of a call (one target)."""

    def __init__(self, call, target, dest):
        self.call = call
        self.target = target
        self.dest = call.manager.ua.route_for(dest)  # the registrar is the outbound proxy
        self.call_id = call.manager.ua.endpoint.new_call_id()
        self.local_tag = call.manager.ua.endpoint.new_tag()
        self.cseq = 1
        self.invite = None
        self.transaction = None
        self.provisional = False  # a 1xx came: CANCEL may be sent (§9.1)
        self.cancel_pending = False
        self.done = False  # the call expects nothing more from this branch
        self.final = False  # a final response came: nothing left to CANCEL
        self.abandoned = False  # given up (sequential timeout): a late 2xx gets ACK + BYE
        self.dialogs = {}  # remote tag → early Dialog
        self.redirects = 0
        self.auth_tries = 0
        self.deadline = None  # sequential ringing: per-target timeout

    def send_invite(self, now, uri=None, authorization=None):
        manager = self.call.manager
        ua = manager.ua
        target = uri or self.target
        request = Request("INVITE", target)
        request.headers.set("From", ua.from_header(self.local_tag))
        request.headers.set("To", "<%s>" % target)
        request.headers.set("Call-ID", self.call_id)
        request.headers.set("CSeq", "%d INVITE" % self.cseq)
        request.headers.set("Contact", "<%s>" % ua.contact_uri())
        request.headers.set("Allow", manager.allow)
        request.headers.set("Supported", "timer")
        request.headers.set("Session-Expires", str(SESSION_EXPIRES))
        request.headers.set("Min-SE", str(MIN_SE))
        if self.call.answer_mode:
            request.headers.set("Answer-Mode", self.call.answer_mode)
        if authorization:
            request.headers.set(authorization[0], authorization[1])
        request.headers.set("Content-Type", SDP)
        request.body = self.call.local_sdp
        self.invite = request
        self.provisional = False
        self.transaction = ua.send_request(request, self.dest, now, _Reply(self, "invite",
                                                                           request))
        if self.transaction is None:
            self.done = True

    def cancel(self, now):
        """§9.1: only after a provisional response; otherwise as soon as one comes."""
        if self.final:
            return
        if not self.provisional:
            self.cancel_pending = True
            return
        self.cancel_pending = False
        request = Request("CANCEL", self.invite.uri)
        for name in ("From", "To", "Call-ID", "Route"):
            for value in self.invite.headers.get_all(name):
                request.headers.add(name, value)
        request.headers.set("CSeq", "%d CANCEL" % self.cseq)
        via = self.invite.headers.get("Via")
        branch = via.split("branch=")[1].split(";")[0]
        self.call.manager.ua.endpoint.send_request(
            request, self.dest, now, context=_Reply(self, "cancel", request), branch=branch)

    def on_response(self, reply, response, now):
        if reply.kind == "cancel":
            return
        status = response.status
        call = self.call
        if status < 200:
            if status == 100:
                return
            self.provisional = True
            to_tag = NameAddress.parse(response.headers.get("To")).tag
            if to_tag and to_tag not in self.dialogs:
                self.dialogs[to_tag] = Dialog.as_uac(reply.request, response)
            if self.cancel_pending or call.state in (ACTIVE, ENDED):
                self.cancel(now)
                return
            call.branch_ringing(self, _body_sdp(response), now)
        elif status < 300:
            self.provisional = True
            call.branch_answered(self, reply.request, response, now)
        elif status in (401, 407) and self.auth_tries < 2 and call.state != ENDED:
            self._retry_with_credentials(reply.request, response, now)
        elif 300 <= status < 400 and call.state != ENDED:
            self._redirect(response, now)
        else:
            self.finish(status, now)

    def _redirect(self, response, now):
        """§8.1.3.4, restricted: only to a Contact that is one of this call's configured
        targets, and only with `follow_redirects`; anything else ends the branch."""
        call = self.call
        manager = call.manager
        contacts = []
        for value in response.headers.get_all("Contact"):
            try:
                contacts.append((value, NameAddress.parse(value).uri))
            except (ParseError, TypeError):
                contacts.append((value, None))
        if not contacts:
            self.finish(response.status, now)
            return
        chosen = None
        for _, uri in contacts:
            chosen = call.configured_target(uri)
            if chosen is not None:
                break
        if not manager.follow_redirects:
            reason = "redirects are not followed"
        elif chosen is None:
            reason = "not a configured target"
        elif self.redirects >= MAX_REDIRECTS:
            reason = "too many redirects"
        else:
            reason = None
        if reason is not None:
            first = contacts[0][1] if contacts[0][1] is not None else contacts[0][0]
            shown = chosen[0] if chosen is not None else str(first)
            manager.emit(RedirectRefused(call, self.target, shown, reason, response.status))
            self.finish(response.status, now)
            return
        self.redirects += 1
        self.cseq += 1
        self.target = chosen[0]
        self.dest = manager.ua.route_for(chosen[1])
        self.auth_tries = 0
        self.send_invite(now)

    def _retry_with_credentials(self, request, response, now):
        header = "Authorization" if response.status == 401 else "Proxy-Authorization"
        challenge_header = "WWW-Authenticate" if response.status == 401 \
            else "Proxy-Authenticate"
        challenge = digest.choose_challenge(
            digest.parse_challenges(response.headers.get_all(challenge_header)))
        settings = self.call.manager.ua.settings
        if challenge is None or (self.auth_tries and not challenge.stale) or \
                self.call.configured_target(request.uri) is None:
            # Our credentials answer only for a Request-URI we were configured to call: never
            # for one a 3xx (or anything else) put there (toll fraud, issue 12).
            self.finish(response.status, now)
            return
        self.auth_tries += 1
        self.cseq += 1
        value = digest.authorization_header(
            challenge, "INVITE", str(request.uri), settings.get("username") or "door",
            settings.get("password") or "", os.urandom(8).hex(), 1)
        self.send_invite(now, uri=str(request.uri), authorization=(header, value))

    def on_failure(self, reply, reason, now):
        if reply.kind == "invite":
            self.finish(408, now)

    def abandon(self, now):
        """Stop ringing this target: CANCEL it (now or after its first 1xx)."""
        self.abandoned = True
        self.done = True
        self.cancel(now)

    def finish(self, status, now):
        self.final = True
        if not self.done:
            self.done = True
            self.call.branch_failed(self, status, now)


class Call:
    """One conversation. Build with `CallManager.place_call` or receive as `IncomingCall`."""

    def __init__(self, manager, direction, now):
        self.manager = manager
        self.direction = direction
        self.id = manager.ua.endpoint.random(6).hex()
        self.state = CALLING if direction == "outgoing" else RINGING
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
        self._2xx = None  # a 2xx to an INVITE we retransmit until its ACK (§13.3.1.4)
        self._2xx_cseq = None
        self._2xx_dest = None
        self._2xx_next = None
        self._2xx_interval = T1
        self._2xx_give_up = None
        self._bye_on_ack = False
        self._reoffer_tx = None
        self._reoffer_request = None
        self._reoffer_source = None
        # both
        self.max_end = None
        self.session_expires = None
        self.refresher_is_us = False
        self.refresh_at = None
        self.expire_at = None
        self.ended = False

    def __repr__(self):
        return "<Call %s %s %s>" % (self.id, self.direction, self.state)

    def configured_target(self, uri):
        """(text, Peer) of the configured target equal to `uri` (RFC 3261 §19.1.4), or None."""
        if uri is None:
            return None
        if not hasattr(uri, "scheme"):
            try:
                uri = URI.parse(str(uri))
            except ParseError:
                return None
        for text, parsed, peer in self.targets:
            if parsed is not None and parsed == uri:
                return text, peer
        return None

    # -- application actions ----------------------------------------------------------------
    def ring(self, now):
        """Incoming: send 180 Ringing."""
        if self.state == RINGING and self.transaction is not None:
            self._respond(180, now)

    def answer(self, sdp, now):
        """Incoming: accept with our SDP answer (bytes)."""
        if self.state != RINGING or self.direction != "incoming":
            return
        self.local_sdp = sdp
        response = self._make_response(200)
        response.headers.set("Contact", "<%s>" % self.manager.ua.contact_uri())
        response.headers.set("Allow", self.manager.allow)
        response.headers.set("Supported", "timer")
        self._add_session_expires(response)
        response.headers.set("Content-Type", SDP)
        response.body = sdp
        self.dialog.state = CONFIRMED
        self.state = ANSWERING
        self.answered_at = now
        self.ring_deadline = None
        self._send_2xx(self.transaction, self.invite, self.source, response, now)
        self._arm_session_timer(now)
        self.max_end = now + self.manager.max_duration_for(self)

    def reject(self, status, now, reason=None):
        """Incoming: refuse before answering (e.g. 403, 486, 603)."""
        if self.state == RINGING and self.direction == "incoming":
            self._respond(status, now, reason)
            self._end(_reason_for(status) if status != 487 else "cancelled", now, status)

    def hangup(self, now):
        """Local hang-up in any state: CANCEL before an answer, BYE after, reject incoming."""
        if self.ended:
            return
        if self.direction == "incoming" and self.state == RINGING:
            self.reject(480, now, "Temporarily Unavailable")
            return
        if self.state == CALLING or self.state == RINGING:
            self.pending_targets = []
            for branch in self.branches:
                branch.cancel(now)
            self._end("local hangup", now)
            return
        if self.state == ANSWERING:
            self._bye_on_ack = True  # §15: no BYE before the ACK to our 2xx (or its give-up)
            return
        self._send_bye(now)
        self._end("local hangup", now)

    def accept_offer(self, sdp, now):
        """Answer a re-INVITE offer (OfferReceived) with our SDP."""
        if self._reoffer_tx is None:
            return
        self.local_sdp = sdp
        response = self._reoffer_request.make_response(200)
        self._add_local_tag(response)
        response.headers.set("Contact", "<%s>" % self.manager.ua.contact_uri())
        self._add_session_expires(response)
        response.headers.set("Content-Type", SDP)
        response.body = sdp
        self._send_2xx(self._reoffer_tx, self._reoffer_request, self._reoffer_source, response,
                       now)
        self._reoffer_tx = None
        self._arm_session_timer(now)

    def reject_offer(self, status, now):
        if self._reoffer_tx is None:
            return
        response = self._reoffer_request.make_response(status)
        self._add_local_tag(response)
        self.manager.ua.endpoint.send_response(self._reoffer_tx, response, now)
        self._reoffer_tx = None

    def reinvite(self, sdp, now):
        """Send a new offer within the dialog (hold, resume, refresh, rekey)."""
        if self.state != ACTIVE or self.dialog is None:
            return
        self.local_sdp = sdp
        request = self.dialog.create_request("INVITE")
        request.headers.set("Contact", "<%s>" % self.manager.ua.contact_uri())
        request.headers.set("Content-Type", SDP)
        if self.session_expires:
            request.headers.set("Session-Expires", "%d;refresher=%s" % (
                self.session_expires, "uac"))
            request.headers.set("Supported", "timer")
        request.body = sdp
        self.manager.ua.send_request(request, self.dest, now, _Reply(self, "reinvite", request))

    def send_info(self, content_type, body, now):
        if self.state != ACTIVE:
            return
        request = self.dialog.create_request("INFO")
        request.headers.set("Content-Type", content_type)
        request.body = body
        self.manager.ua.send_request(request, self.dest, now, _Reply(self, "info", request))

    # -- outgoing branches ----------------------------------------------------------------
    def branch_ringing(self, branch, sdp, now):
        if self.state == CALLING:
            self.state = RINGING
        self.manager.emit(CallRinging(self, sdp))

    def branch_answered(self, branch, request, response, now):
        to_tag = NameAddress.parse(response.headers.get("To")).tag
        dialog = branch.dialogs.get(to_tag)
        if dialog is None:
            dialog = branch.dialogs[to_tag] = Dialog.as_uac(request, response)
        dialog.confirm(response)
        branch.final = True
        self._send_ack(dialog, branch, response, now)
        if self.dialog is dialog:
            return  # a retransmitted 2xx: the ACK above answers it
        if self.state in (ACTIVE, ENDED) or branch.abandoned:
            # §13.2.2.4: a second 2xx (another fork or a lost race): ACK it, then BYE.
            self._send_bye(now, dialog, branch.dest)
            return
        self.dialog = dialog
        self.dest = branch.dest
        self.peer = branch.target
        self.manager.register_dialog(self, dialog)
        branch.done = True
        self.state = ACTIVE
        self.answered_at = now
        self.ring_deadline = None
        self.pending_targets = []
        for other in self.branches:
            if other is not branch:
                other.cancel(now)
        self.remote_sdp = _body_sdp(response)
        self._read_session_expires(response, we_are_uac=True)
        self._arm_session_timer(now)
        self.max_end = now + self.manager.max_duration_for(self)
        self.manager.emit(CallEstablished(self, self.remote_sdp))

    def branch_failed(self, branch, status, now):
        if self.state in (ACTIVE, ENDED):
            return
        if self.sequential and self.pending_targets:
            self._start_next(now)
            return
        if all(b.done for b in self.branches) and not self.pending_targets:
            self.last_status = status
            self._end(_reason_for(status), now, status)

    def _start_next(self, now):
        target, dest = self.pending_targets.pop(0)
        branch = Branch(self, target, dest)
        self.branches.append(branch)
        if self.sequential and self.target_timeout:
            branch.deadline = now + self.target_timeout
        branch.send_invite(now)

    def _send_ack(self, dialog, branch, response, now):
        cseq = CSeq.parse(response.headers.get("CSeq")).seq
        ack = dialog.create_request("ACK", cseq=cseq)
        for name in ("Authorization", "Proxy-Authorization"):
            if branch.invite is not None and name in branch.invite.headers:
                ack.headers.set(name, branch.invite.headers.get(name))
        self.manager.ua.endpoint.send_stateless(ack, branch.dest)

    # -- in-dialog requests and responses --------------------------------------------------
    def _send_bye(self, now, dialog=None, dest=None, authorization=None):
        dialog = dialog or self.dialog
        if dialog is None:
            return
        dest = dest or self.dest
        request = dialog.create_request("BYE")
        if authorization:
            request.headers.set(authorization[0], authorization[1])
        self.manager.ua.send_request(request, dest, now,
                                     _Reply(self, "bye", request, dialog, dest))

    def on_response(self, reply, response, now):
        if reply.kind == "bye" and response.status in (401, 407) and \
                "Authorization" not in reply.request.headers and \
                "Proxy-Authorization" not in reply.request.headers:
            self._authorize_bye(reply, response, now)
        elif reply.kind == "reinvite":
            if 200 <= response.status < 300:
                cseq = CSeq.parse(response.headers.get("CSeq")).seq
                ack = self.dialog.create_request("ACK", cseq=cseq)
                self.manager.ua.endpoint.send_stateless(ack, self.dest)
                self._read_session_expires(response, we_are_uac=True)
                self._arm_session_timer(now)
                sdp = _body_sdp(response)
                if sdp:
                    self.remote_sdp = sdp
                    self.manager.emit(AnswerReceived(self, sdp))
            elif response.status in (408, 481):
                self._end("failed", now, response.status)  # §12.2.1.2: the dialog is gone

    def _authorize_bye(self, reply, response, now):
        header = "Authorization" if response.status == 401 else "Proxy-Authorization"
        values = response.headers.get_all(
            "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate")
        challenge = digest.choose_challenge(digest.parse_challenges(values))
        if challenge is None:
            return
        settings = self.manager.ua.settings
        value = digest.authorization_header(
            challenge, "BYE", str(reply.request.uri), settings.get("username") or "door",
            settings.get("password") or "", os.urandom(8).hex(), 1)
        self._send_bye(now, reply.dialog, reply.dest, authorization=(header, value))

    def on_failure(self, reply, reason, now):
        if reply.kind == "reinvite":
            self._send_bye(now)
            self._end("failed", now, 408)

    def handle_in_dialog(self, event, now):
        """A request within our dialog (or a CANCEL/ACK for our INVITE)."""
        request = event.request
        method = request.method
        ua = self.manager.ua
        if method == "ACK":
            if self._2xx is not None and \
                    CSeq.parse(request.headers.get("CSeq")).seq == self._2xx_cseq:
                self._2xx = None
            if self.state == ANSWERING:
                self.state = ACTIVE
                if self._bye_on_ack:
                    self._send_bye(now)
                    self._end("local hangup", now)
                    return
                self.manager.emit(CallEstablished(self, self.remote_sdp))
            return
        if method == "CANCEL":
            self._reply(event, 200, now)  # §9.2: the To tag of our INVITE responses
            if self.state == RINGING and self.direction == "incoming":
                self._respond(487, now, "Request Terminated")
                self._end("cancelled", now, 487)
            return
        if self.dialog is not None and not self.dialog.accepts(request):
            ua.endpoint.send_response(event.transaction, request.make_response(500), now)
            return
        if method == "BYE":
            self._reply(event, 200, now)
            if self.state == RINGING and self.transaction is not None:
                self._respond(487, now)
            self._end("remote hangup", now)
        elif method == "INVITE":
            if self._reoffer_tx is not None:
                self._reply(event, 491, now)  # RFC 3261 §14.2: one offer at a time
                return
            self._read_session_expires(request, we_are_uac=False)
            self._reoffer_tx = event.transaction
            self._reoffer_request = request
            self._reoffer_source = event.source
            sdp = _body_sdp(request)
            if sdp is None:
                # An offerless re-INVITE (session refresh): answer with our current SDP.
                self.accept_offer(self.local_sdp, now)
                return
            self.remote_sdp = sdp
            self.manager.emit(OfferReceived(self, sdp))
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

    def _reply(self, event, status, now, session_expires=False):
        response = event.request.make_response(status)
        self._add_local_tag(response)
        if status == 405:
            response.headers.set("Allow", self.manager.allow)
        if session_expires:
            self._add_session_expires(response)
        self.manager.ua.endpoint.send_response(event.transaction, response, now)

    def _send_2xx(self, transaction, request, source, response, now):
        """Send a 2xx to an INVITE; we retransmit it until the ACK (§13.3.1.4, RFC 6026)."""
        self._2xx = response
        self._2xx_cseq = CSeq.parse(request.headers.get("CSeq")).seq
        self._2xx_dest = response_destination(request, source)
        self._2xx_interval = T1
        self._2xx_next = now + T1
        self._2xx_give_up = now + TIMER_2XX_GIVE_UP
        self.manager.ua.endpoint.send_response(transaction, response, now)

    def _add_local_tag(self, response):
        to = response.headers.get("To") or ""
        if self.dialog is not None and "tag=" not in to:
            response.headers.set("To", "%s;tag=%s" % (to, self.dialog.local_tag))

    # -- incoming INVITE ------------------------------------------------------------------
    def _make_response(self, status, reason=None):
        response = self.invite.make_response(status, reason)
        if status > 100:
            self._add_local_tag(response)
        if 100 < status < 300:
            # §12.1.1: a dialog-creating response carries the request's Record-Route, so the
            # caller's ACK and BYE take the same proxies.
            for value in self.invite.headers.get_all("Record-Route"):
                response.headers.add("Record-Route", value)
        return response

    def _respond(self, status, now, reason=None):
        response = self._make_response(status, reason)
        if status < 200 and status > 100:
            response.headers.set("Contact", "<%s>" % self.manager.ua.contact_uri())
        self.manager.ua.endpoint.send_response(self.transaction, response, now)

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
        times = [self.ring_deadline, self.max_end, self.refresh_at, self.expire_at,
                 self._2xx_next if self._2xx is not None else None,
                 self._2xx_give_up if self._2xx is not None else None]
        times += [b.deadline for b in self.branches if not b.done]
        times = [t for t in times if t is not None]
        return min(times) if times else None

    def handle_timer(self, now):
        if self.ended:
            return
        if self._2xx is not None and now >= self._2xx_give_up:
            self._2xx = None
            self._send_bye(now)
            self._end("timeout", now, 408)
            return
        if self._2xx is not None and now >= self._2xx_next:
            self.manager.ua.endpoint.send_stateless(self._2xx, self._2xx_dest)
            self._2xx_interval = min(self._2xx_interval * 2, T2)
            self._2xx_next = now + self._2xx_interval
        if self.ring_deadline is not None and now >= self.ring_deadline and \
                self.state in (CALLING, RINGING):
            self.ring_deadline = None
            if self.direction == "incoming":
                self.reject(480, now, "No Answer")
            else:
                self.pending_targets = []
                for branch in self.branches:
                    branch.cancel(now)
                self._end("no answer", now, 408)
            return
        for branch in self.branches:
            if branch.deadline is not None and now >= branch.deadline and not branch.done:
                branch.deadline = None
                branch.abandon(now)
                if self.pending_targets:
                    self._start_next(now)
                elif all(b.done for b in self.branches):
                    self._end("no answer", now, 408)
                    return
        if self.max_end is not None and now >= self.max_end and self.state in (ACTIVE,
                                                                              ANSWERING):
            self._send_bye(now)
            self._end("max duration", now)
            return
        if self.expire_at is not None and now >= self.expire_at:
            self._send_bye(now)
            self._end("session expired", now, 408)
            return
        if self.refresh_at is not None and now >= self.refresh_at:
            self.refresh_at = None
            self.reinvite(self.local_sdp, now)

    def _end(self, reason, now, status=None):
        if self.ended:
            return
        self.ended = True
        self.state = ENDED
        self.ring_deadline = self.max_end = self.refresh_at = self.expire_at = None
        self.manager.call_ended(self)
        self.manager.emit(CallEnded(self, reason, status))


class CallManager:
    """The call layer: the UA's request handler. `max_calls` bounds simultaneous calls; extra
    INVITEs get 486 Busy Here."""

    allow = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"

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
                   answer_mode=None):
        """Ring `targets` ([(uri, Peer)]) in parallel (or one by one). Returns the Call, or
        None when `max_calls` are already up."""
        if len(self.calls) >= self.max_calls or not targets:
            return None
        call = Call(self, "outgoing", now)
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
        request = event.request
        try:
            to_tag = NameAddress.parse(request.headers.get("To")).tag
            call_id = request.headers.get("Call-ID")
        except (ParseError, TypeError):
            return False
        if to_tag:
            call = self._by_dialog.get(dialog_key(request, local_is_from=False))
            if call is None:
                if request.method == "ACK":
                    return True  # an ACK for a dialog we no longer know: nothing to do
                return False  # the UA answers 481
            call.handle_in_dialog(event, now)
            return True
        if request.method == "CANCEL":
            # §9.2: the CANCEL must match the INVITE's server transaction, not just its Call-ID.
            call = self._by_invite.get(call_id)
            invite = self.ua.endpoint.find_cancelled(request)
            if call is None or invite is None or call.transaction is not invite:
                return False  # the UA answers 481
            call.handle_in_dialog(event, now)
            return True
        if request.method == "ACK":
            call = self._by_invite.get(call_id)
            if call is not None:
                call.handle_in_dialog(event, now)
            return True
        if request.method == "INVITE":
            self._incoming(event, now)
            return True
        return False

    def handle_stray_response(self, response, now):
        """A 2xx retransmission after the INVITE transaction ended: ACK it again (§13.2.2.4),
        also for a call that has just ended (its ACK was lost; a late fork gets ACK + BYE)."""
        for call in self.calls + self._recently_ended:
            for branch in call.branches:
                if branch.call_id == response.headers.get("Call-ID") and \
                        branch.invite is not None:
                    call.branch_answered(branch, branch.invite, response, now)
                    return

    def _incoming(self, event, now):
        request = event.request
        ua = self.ua
        if len(self.calls) >= self.max_calls:
            response = request.make_response(486, "Busy Here")
            response.headers.set("To", "%s;tag=%s" % (response.headers.get("To"),
                                                      ua.endpoint.new_tag()))
            ua.endpoint.send_response(event.transaction, response, now)
            return
        call = Call(self, "incoming", now)
        call.invite = request
        call.transaction = event.transaction
        call.source = event.source
        call.dest = event.source
        call.trusted = ua.from_registrar(event.source) or event.source.transport == "tls"
        call.peer = str(NameAddress.parse(request.headers.get("From")).uri)
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
        call.remote_sdp = _body_sdp(request)
        call.requested_answer_mode = _answer_mode(request)
        call.dialog = Dialog.as_uas(request, ua.endpoint.new_tag())
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
            call.hangup(now)


def asserted_identity(request):
    """RFC 3325 §9.1: the first sip:/sips: URI of the P-Asserted-Identity header(s), as text,
    or None (a tel: URI alone names no SIP identity the allow list could hold)."""
    for value in request.headers.get_all("P-Asserted-Identity"):
        try:
            uri = NameAddress.parse(value).uri
        except (ParseError, TypeError):
            continue
        if uri.scheme in ("sip", "sips") and uri.host:
            return str(uri)
    return None


def _answer_mode(request):
    """RFC 5373: "auto" or "manual" as the caller asked (Priv-Answer-Mode wins), or None."""
    for name in ("Priv-Answer-Mode", "Answer-Mode"):
        value = request.headers.get(name)
        if value:
            mode = value.split(";")[0].strip().lower()
            if mode in ("auto", "manual"):
                return mode
    return None
