"""One outgoing INVITE of a call: a target of a ring group (RFC 3261 §13.2, §9.1, §8.1.3.4, §22.2).

A `Branch` has its own INVITE, Call-ID and early dialogs (§13.2.2.4: a forking proxy can give one
INVITE several). Its state follows `callstate.BRANCH`; it reports to its call with
`branch_ringing`, `branch_answered`, `branch_failed` and `branch_redirect_refused`, and sends
through the user agent it was given (`ua`, the call layer's port: firmware/sip/useragent.py) to
the next hop it was given: the session layer's `next_hop` (firmware/session/routing.py) is the
one function that decides it (the registrar when one is configured), so a branch routes nothing.
The call gives a branch up with `cancel(now)`: CANCEL is sent once a provisional response has
come (§9.1); a 2xx that still comes is ACKed and ended with BYE by the call.
"""

from firmware.sip import auth
from firmware.sip import callstate as cs
from firmware.sip.callevents import SDP, RedirectRefused, body_sdp
from firmware.sip.dialog import Dialog
from firmware.sip.errors import ParseError
from firmware.sip.message import NameAddress, Request
from firmware.sip.reply import Reply
from firmware.sip.useragent import ALLOW

MAX_REDIRECTS = 3
MAX_AUTH_TRIES = 2  # per INVITE: one answer, and one more only for stale=true (§22.2)
SESSION_EXPIRES = 1800  # RFC 4028 §4: recommended default
MIN_SE = 90  # RFC 4028 §5: the minimum Session-Expires


class Branch:
    """One outgoing INVITE of a call (one target)."""

    def __init__(self, call, ua, target, dest):
        self.call = call
        self.ua = ua
        self.target = target
        self.dest = dest  # the next hop, decided above (firmware/session/routing.py)
        self.call_id = ua.new_call_id()
        self.local_tag = ua.new_tag()
        self.state = cs.INVITING
        self.cseq = 1
        self.invite = None
        self.transaction = None
        self.dialogs = {}  # remote tag → early Dialog
        self.redirects = 0
        self.auth_tries = 0
        self.deadline = None  # sequential ringing: per-target timeout
        self._redirect_to = None  # (chosen target, reason) decided for the 3xx being handled

    def __repr__(self):
        return "<Branch %s %s>" % (self.target, self.state)

    @property
    def done(self):
        """The call expects nothing more from this branch."""
        return self.state not in cs.BRANCH_LIVE

    # -- inputs ------------------------------------------------------------------------------
    def send_invite(self, now, uri=None, authorization=None):
        ua = self.ua
        target = uri or self.target
        request = Request("INVITE", target)
        request.headers.set("From", ua.from_header(self.local_tag))
        request.headers.set("To", "<%s>" % target)
        request.headers.set("Call-ID", self.call_id)
        request.headers.set("CSeq", "%d INVITE" % self.cseq)
        request.headers.set("Contact", "<%s>" % ua.contact_uri())
        request.headers.set("Allow", ALLOW)
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
        self.transaction = ua.send_request(request, self.dest, now, Reply(
            request, self._on_invite_response, self._on_invite_failure))
        # None (no room for a transaction): the endpoint reports it through on_failure

    def cancel(self, now):
        """Give this branch up: CANCEL now, or at its first provisional response (§9.1)."""
        self._feed(cs.CANCEL, None, None, now)

    def _on_invite_response(self, reply, response, now):
        status = response.status
        if status == 100:
            return
        if status < 200:
            to_tag = response.to_address().tag
            if to_tag and to_tag not in self.dialogs:
                self.dialogs[to_tag] = Dialog.as_uac(reply.request, response)
            self._feed(cs.PROVISIONAL, reply.request, response, now)
        elif status < 300:
            self._feed(cs.SUCCESS, reply.request, response, now)
        elif self.done:
            self._feed(cs.FAILURE, reply.request, response, now)  # given up: no retry
        elif status in (401, 407):
            self._feed(self._classify_challenge(reply.request, response), reply.request,
                       response, now)
        elif status < 400:
            self._feed(self._classify_redirect(response), reply.request, response, now)
        else:
            self._feed(cs.FAILURE, reply.request, response, now)

    def on_stray_2xx(self, response, now):
        """A 2xx retransmitted after the INVITE transaction ended (§13.2.2.4)."""
        if self.invite is not None:
            self._feed(cs.SUCCESS, self.invite, response, now)

    def _on_invite_failure(self, reply, reason, now):
        self._feed(cs.TIMEOUT, reply.request, None, now)

    def _feed(self, name, request, response, now):
        row = cs.step(cs.BRANCH, self.state, name, "branch", ())
        if row is None:
            return
        self.state, action = row
        if action is not None:
            getattr(self, "_" + action)(request, response, now)

    # -- deciding what a response is ---------------------------------------------------------
    def _classify_challenge(self, request, response):
        """§22.2: answer once (again only when stale), and only for a Request-URI we were
        configured to call: never for one a 3xx put there (toll fraud, issue 12)."""
        if self.auth_tries >= MAX_AUTH_TRIES:
            return cs.FAILURE
        found = auth.challenge_in(response)
        if found is None or (self.auth_tries and not found[1].stale) or \
                self.call.configured_target(request.uri) is None:
            return cs.FAILURE
        return cs.CHALLENGE

    def _classify_redirect(self, response):
        """§8.1.3.4, restricted: only to a Contact that is one of this call's configured
        targets, and only with `follow_redirects`."""
        contacts = []
        for value in response.headers.get_all("Contact"):
            try:
                contacts.append((value, NameAddress.parse(value).uri))
            except (ParseError, TypeError):
                contacts.append((value, None))
        if not contacts:
            return cs.FAILURE
        chosen = None
        for _, uri in contacts:
            chosen = self.call.configured_target(uri)
            if chosen is not None:
                break
        if not self.call.follow_redirects:
            reason = "redirects are not followed"
        elif chosen is None:
            reason = "not a configured target"
        elif self.redirects >= MAX_REDIRECTS:
            reason = "too many redirects"
        else:
            reason = None
        if reason is not None:
            first = contacts[0][1] if contacts[0][1] is not None else contacts[0][0]
            chosen = chosen[0] if chosen is not None else str(first)
        self._redirect_to = (chosen, reason)
        return cs.REDIRECT if reason is None else cs.REDIRECT_REFUSED

    # -- actions (callstate.BRANCH) ----------------------------------------------------------
    def _report_ringing(self, request, response, now):
        self.call.branch_ringing(self, body_sdp(response), now)

    def _report_answer(self, request, response, now):
        self.call.branch_answered(self, request, response, now,
                                  given_up=self.state in (cs.LATE, cs.FAILED))

    def _report_failure(self, request, response, now):
        self.call.branch_failed(self, response.status, now)

    def _report_timeout(self, request, response, now):
        self.call.branch_failed(self, 408, now)

    def _answer_challenge(self, request, response, now):
        header, challenge = auth.challenge_in(response)
        self.auth_tries += 1
        self.cseq += 1
        value = self.ua.answer_challenge(challenge, "INVITE", request.uri)
        self.send_invite(now, uri=str(request.uri), authorization=(header, value))

    def _follow_redirect(self, request, response, now):
        chosen = self._redirect_to[0]
        self.redirects += 1
        self.cseq += 1
        self.target = chosen[0]
        self.dest = chosen[1]  # that target's next hop, as the call was given it
        self.auth_tries = 0
        self.send_invite(now)

    def _refuse_redirect(self, request, response, now):
        shown, reason = self._redirect_to
        self.call.branch_redirect_refused(self, RedirectRefused(
            self.call, self.target, shown, reason, response.status), now)

    def _send_cancel(self, request, response, now):
        cancel = Request("CANCEL", self.invite.uri)
        for name in ("From", "To", "Call-ID", "Route"):
            for value in self.invite.headers.get_all(name):
                cancel.headers.add(name, value)
        cancel.headers.set("CSeq", "%d CANCEL" % self.cseq)
        via = self.invite.headers.get("Via")
        branch = via.split("branch=")[1].split(";")[0]
        # the CANCEL's own response tells nothing: the INVITE's 487 (or 2xx) does (§9.1)
        self.ua.send_request(cancel, self.dest, now, Reply(cancel), branch=branch)
