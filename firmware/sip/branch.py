"""One outgoing INVITE of a call: a target of a ring group (RFC 3261 §13.2, §9.1, §8.1.3.4, §22.2).

A `Branch` has its own INVITE, Call-ID and early dialogs (§13.2.2.4: a forking proxy can give one
INVITE several). Its state follows `callstate.BRANCH`; it reports to its call with
`branch_ringing`, `branch_answered`, `branch_failed` and `branch_redirect_refused`, and sends
through the user agent it was given (`ua`, the call layer's port: firmware/sip/useragent.py) to
the next hop it was given: the session layer's `next_hop` (firmware/session/routing.py) is the
one function that decides it (the registrar when one is configured), so a branch routes nothing.
The call gives a branch up with `cancel(now)`: CANCEL is sent once a provisional response has
come (§9.1); a 2xx that still comes is ACKed and ended with BYE by the call.

PRACKs (RFC 3262 §7.2: a request within the early dialog) are answered with credentials when
challenged, as a BYE is (`auth.retry_in_dialog`). With a delayed offer (the call's INVITE
without SDP, `[calls] delayed_offer`) each early dialog follows `callstate.DELAYED_OFFER`: the
PRACK or ACK that must carry our answer waits for it (`give_answer`), the event that reports
the offer carrying an `OfferToAnswer`.
"""

from firmware.sip import auth
from firmware.sip import callstate as cs
from firmware.sip.callevents import SDP, RedirectRefused, body_sdp
from firmware.sip.dialog import Dialog
from firmware.sip.errors import ParseError
from firmware.sip.message import NameAddress, Request
from firmware.sip.reply import Reply
from firmware.sip.useragent import ALLOW

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sip.endpoint import Peer
    from firmware.sip.message import Response
    from firmware.sip.transaction import ClientTransaction
    from firmware.sip.uac import UacCall
    from firmware.sip.uri import URI
    from firmware.sip.useragent import UserAgent

MAX_REDIRECTS = 3
MAX_AUTH_TRIES = auth.MAX_TRIES  # per INVITE: one answer, and one more only for stale=true
SESSION_EXPIRES = 1800  # RFC 4028 §4: recommended default
MIN_SE = 90  # RFC 4028 §5: the minimum Session-Expires


class OfferToAnswer:
    """An offer waiting for the application's answer (delayed offer): which branch and early
    dialog (To tag) it came on. Carried by CallRinging / CallEstablished, handed back with
    `Call.send_answer`."""

    __slots__ = ("branch", "tag")

    def __init__(self, branch: "Branch", tag: str) -> None:
        self.branch = branch
        self.tag = tag

    def __repr__(self) -> str:
        return "<OfferToAnswer %s %s>" % (self.branch.target, self.tag)


class Branch:
    """One outgoing INVITE of a call (one target)."""

    def __init__(self, call: "UacCall", ua: "UserAgent", target: str, dest: "Peer") -> None:
        self.call = call
        self.ua = ua
        self.target = target
        self.dest = dest  # the next hop, decided above (firmware/session/routing.py)
        self.call_id = ua.new_call_id()
        self.local_tag = ua.new_tag()
        self.state = cs.INVITING
        self.cseq = 1
        self.invite: Request | None = None
        self.transaction: ClientTransaction | None = None  # None: no room (a failure follows)
        self.dialogs: dict[str, Dialog] = {}  # remote tag → early Dialog
        self.redirects = 0
        self.auth_tries = 0
        self.deadline: float | None = None  # sequential ringing: per-target timeout
        # decided for the 3xx being handled: (text, Peer) of the configured target to follow,
        # or (the target or Contact as shown, why not) of a refusal
        self._redirect_to: tuple[str, Peer] | None = None
        self._redirect_refused: tuple[str, str] | None = None
        # RFC 3262: our PRACKs to reliable 18x (loaded with the first call, not at start-up)
        from firmware.sip.prack import ReliableReceiver

        self.reliable = ReliableReceiver()
        # delayed offer (callstate.DELAYED_OFFER), per early dialog (To tag): its state, the
        # PRACK and the 2xx (dialog, response) waiting for our answer, the answer our ACK
        # carried (again in the ACK to a retransmitted 2xx)
        self.offers: dict[str, str] = {}
        self._held_prack: dict[str, Request] = {}
        self._held_ack: dict[str, tuple[Dialog, Response]] = {}
        self._ack_answers: dict[str, bytes] = {}
        self._offer: OfferToAnswer | None = None  # the offer the next report carries
        # the last SDP of each early dialog's 18x: the session's description when its 2xx
        # brings none (RFC 3261 §13.2.1: the early answer, or offer, stands)
        self.early_sdp: dict[str, bytes] = {}

    def __repr__(self) -> str:
        return "<Branch %s %s>" % (self.target, self.state)

    @property
    def done(self) -> bool:
        """The call expects nothing more from this branch."""
        return self.state not in cs.BRANCH_LIVE

    # -- inputs ------------------------------------------------------------------------------
    def send_invite(self, now: float, uri: "str | None" = None,
                    authorization: "tuple[str, str] | None" = None) -> None:
        ua = self.ua
        target = uri or self.target
        request = Request("INVITE", target)
        request.headers.set("From", ua.from_header(self.local_tag))
        request.headers.set("To", "<%s>" % target)
        request.headers.set("Call-ID", self.call_id)
        request.headers.set("CSeq", "%d INVITE" % self.cseq)
        for route in ua.preloaded_routes():  # RFC 3608 §6.1: the registrar's Service-Route
            request.headers.add("Route", route)
        request.headers.set("Contact", "<%s>" % ua.contact_uri())
        request.headers.set("Allow", ALLOW)
        request.headers.set("Supported", "timer, 100rel")  # RFC 4028, RFC 3262
        request.headers.set("Session-Expires", str(SESSION_EXPIRES))
        request.headers.set("Min-SE", str(MIN_SE))
        if self.call.answer_mode:
            request.headers.set("Answer-Mode", self.call.answer_mode)
        for name, value in self.call.extra_headers:
            request.headers.set(name, value)
        if authorization:
            request.headers.set(authorization[0], authorization[1])
        if not self.call.delayed_offer:  # else the offer comes in a reliable 18x or the 2xx
            request.headers.set("Content-Type", SDP)
            assert self.call.local_sdp is not None  # placed with our offer
            request.body = self.call.local_sdp
        self.invite = request
        self.transaction = ua.send_request(request, self.dest, now, Reply(
            request, self._on_invite_response, self._on_invite_failure))
        # None (no room for a transaction): the endpoint reports it through on_failure

    def cancel(self, now: float) -> None:
        """Give this branch up: CANCEL now, or at its first provisional response (§9.1)."""
        self._feed(cs.CANCEL, None, None, now)

    def _on_invite_response(self, reply: "Reply", response: "Response", now: float) -> None:
        status = response.status
        if status == 100:
            return
        if status < 200:
            to_tag = response.to_address().tag
            if to_tag and to_tag not in self.dialogs:
                self.dialogs[to_tag] = Dialog.as_uac(reply.request, response)
            sdp = body_sdp(response)
            if to_tag and sdp is not None:
                self.early_sdp[to_tag] = sdp
                if len(self.early_sdp) > 16:  # bounded, as the early dialogs' RSeqs
                    self.early_sdp.pop(next(iter(self.early_sdp)))
            send_prack, report = self.reliable.receive(response)
            self._offer = None
            if send_prack and to_tag:
                # RFC 3262 §4: PRACK within the early dialog, whatever the branch's state (a
                # given-up branch PRACKs too: the UAS would retransmit the 18x for 32 s)
                request = self.reliable.prack(self.dialogs[to_tag], response)
                if self.call.delayed_offer:  # RFC 3262 §5: an offer's answer goes in it
                    self._feed_offer(to_tag, cs.RELIABLE_OFFER if body_sdp(response)
                                     else cs.RELIABLE_NO_OFFER, now, request)
                else:
                    self._send_prack(to_tag, now, request)
            if report:
                self._feed(cs.PROVISIONAL, reply.request, response, now)
            if self._offer is not None:  # no report carried the offer (a given-up branch)
                offer, self._offer = self._offer, None
                self.give_answer(offer.tag, None, now)
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

    def acknowledge(self, dialog: "Dialog", response: "Response",
                    now: float) -> "OfferToAnswer | None":
        """ACK a 2xx (§13.2.2.4), at once or, with a delayed offer, once our answer is written:
        the offer to answer when the 2xx carries it (None otherwise)."""
        if not self.call.delayed_offer:
            self._send_ack(dialog.remote_tag or "", now, dialog, response)
            return None
        tag = dialog.remote_tag or ""
        self._offer = None
        self._feed_offer(tag, cs.SUCCESS_OFFER if body_sdp(response) else cs.SUCCESS_NO_OFFER,
                         now, dialog, response)
        if self.offers.get(tag) == cs.FINAL_OFFER and self._offer is not None:
            return self._offer
        return None

    def give_answer(self, tag: str, sdp: "bytes | None", now: float) -> None:
        """The application's answer to the offer of early dialog `tag` (None: it could write
        none): the PRACK or ACK waiting for it goes now (callstate.DELAYED_OFFER)."""
        self._feed_offer(tag, cs.GIVE_ANSWER, now, sdp)

    def on_stray_2xx(self, response: "Response", now: float) -> None:
        """A 2xx retransmitted after the INVITE transaction ended (§13.2.2.4)."""
        if self.invite is not None:
            self._feed(cs.SUCCESS, self.invite, response, now)

    def _on_invite_failure(self, reply: "Reply", reason: str, now: float) -> None:
        self._feed(cs.TIMEOUT, reply.request, None, now)

    def _feed(self, name: str, request: "Request | None", response: "Response | None",
              now: float) -> None:
        row = cs.step(cs.BRANCH, self.state, name, "branch", ())
        if row is None:
            return
        self.state, action = row
        if action is not None:
            getattr(self, "_" + action)(request, response, now)

    def _feed_offer(self, tag: str, name: str, now: float, *args: object) -> None:
        """One input of a delayed offer's early dialog through callstate.DELAYED_OFFER; the
        application's answer without a row for it is a CallStateError."""
        state = self.offers.get(tag, cs.AWAITING_OFFER)
        row = cs.step(cs.DELAYED_OFFER, state, name, "branch %s offer" % self.target,
                      (cs.GIVE_ANSWER,))
        if row is None:
            return
        self.offers[tag], action = row
        if len(self.offers) > 16:  # bounded: a forking proxy gives few early dialogs
            self.offers.pop(next(iter(self.offers)))
        if action is not None:
            getattr(self, "_" + action)(tag, now, *args)

    # -- deciding what a response is ---------------------------------------------------------
    def _classify_challenge(self, request: "Request", response: "Response") -> str:
        """§22.2: answer once (again only when stale), and only for a Request-URI we were
        configured to call: never for one a 3xx put there (toll fraud, issue 12)."""
        if self.auth_tries >= MAX_AUTH_TRIES:
            return cs.FAILURE
        found = auth.challenge_in(response)
        if found is None or (self.auth_tries and not found[1].stale) or \
                self.call.configured_target(request.uri) is None:
            return cs.FAILURE
        return cs.CHALLENGE

    def _classify_redirect(self, response: "Response") -> str:
        """§8.1.3.4, restricted: only to a Contact that is one of this call's configured
        targets, and only with `follow_redirects`."""
        contacts: list[tuple[str, URI | None]] = []
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
        if self.call.follow_redirects and chosen is not None and \
                self.redirects < MAX_REDIRECTS:
            self._redirect_to = chosen
            return cs.REDIRECT
        if not self.call.follow_redirects:
            reason = "redirects are not followed"
        elif chosen is None:
            reason = "not a configured target"
        else:
            reason = "too many redirects"
        first = contacts[0][1] if contacts[0][1] is not None else contacts[0][0]
        self._redirect_refused = (chosen[0] if chosen is not None else str(first), reason)
        return cs.REDIRECT_REFUSED

    # -- actions (callstate.BRANCH) ----------------------------------------------------------
    def _report_ringing(self, request: "Request", response: "Response", now: float) -> None:
        offer, self._offer = self._offer, None
        self.call.branch_ringing(self, body_sdp(response), now, offer)

    def _report_answer(self, request: "Request", response: "Response", now: float) -> None:
        self.call.branch_answered(self, request, response, now,
                                  given_up=self.state in (cs.LATE, cs.FAILED))

    def _report_failure(self, request: "Request", response: "Response", now: float) -> None:
        self.call.branch_failed(self, response.status, now)

    def _report_timeout(self, request: "Request", response: None, now: float) -> None:
        self.call.branch_failed(self, 408, now)

    def _answer_challenge(self, request: "Request", response: "Response", now: float) -> None:
        found = auth.challenge_in(response)
        assert found is not None  # CHALLENGE: _classify_challenge found one
        header, challenge = found
        self.auth_tries += 1
        self.cseq += 1
        # qop=auth-int hashes the body (RFC 7616 §3.4.3): the INVITE's SDP goes again
        value = self.ua.answer_challenge(challenge, "INVITE", request.uri, request.body)
        self.send_invite(now, uri=str(request.uri), authorization=(header, value))

    def _follow_redirect(self, request: "Request", response: "Response", now: float) -> None:
        chosen = self._redirect_to
        assert chosen is not None  # REDIRECT: _classify_redirect chose it
        self.redirects += 1
        self.cseq += 1
        self.target = chosen[0]
        self.dest = chosen[1]  # that target's next hop, as the call was given it
        self.auth_tries = 0
        self.send_invite(now)

    def _refuse_redirect(self, request: "Request", response: "Response", now: float) -> None:
        assert self._redirect_refused is not None  # REDIRECT_REFUSED: _classify_redirect
        shown, reason = self._redirect_refused
        self.call.branch_redirect_refused(self, RedirectRefused(
            self.call, self.target, shown, reason, response.status), now)

    # -- PRACK and ACK (callstate.DELAYED_OFFER's actions; without it, at once) ---------------
    def _send_prack(self, tag: str, now: float, request: "Request",
                    sdp: "bytes | None" = None) -> None:
        if sdp is not None:
            request.headers.set("Content-Type", SDP)
            request.body = sdp
        dialog = self.dialogs.get(tag)
        self.ua.send_request(request, self.dest, now, Reply(
            request, self._on_prack_response, None, dialog, self.dest))

    def _on_prack_response(self, reply: "Reply", response: "Response", now: float) -> None:
        """RFC 3262 §7.2: the PRACK is a request within the early dialog; challenged (a PBX
        or SBC that authenticates every request), it goes again with credentials, a new CSeq
        and the same RAck and body (RFC 3261 §22.2, as `auth.retry_in_dialog` allows)."""
        found = auth.retry_in_dialog(response, reply.tries)
        if found is None or reply.dialog is None:
            return
        header, challenge = found
        first = reply.request
        request = reply.dialog.create_request("PRACK")
        request.headers.set("RAck", first.headers.get("RAck"))
        if first.body:
            request.headers.set("Content-Type", first.headers.get("Content-Type"))
            request.body = first.body
        request.headers.set(header, self.ua.answer_challenge(challenge, "PRACK", request.uri,
                                                             request.body))
        self.ua.send_request(request, self.dest, now, Reply(
            request, self._on_prack_response, None, reply.dialog, self.dest, reply.tries + 1))

    def _hold_prack(self, tag: str, now: float, request: "Request") -> None:
        self._held_prack[tag] = request
        self._offer = OfferToAnswer(self, tag)

    def _send_prack_answer(self, tag: str, now: float, sdp: "bytes | None") -> None:
        self._send_prack(tag, now, self._held_prack.pop(tag), sdp)

    def _hold_ack(self, tag: str, now: float, dialog: "Dialog", response: "Response") -> None:
        self._held_ack[tag] = (dialog, response)
        self._offer = OfferToAnswer(self, tag)

    def _send_ack_answer(self, tag: str, now: float, sdp: "bytes | None") -> None:
        dialog, response = self._held_ack.pop(tag)
        self._send_ack(tag, now, dialog, response, sdp)

    def _send_prack_answer_and_ack(self, tag: str, now: float, sdp: "bytes | None") -> None:
        self._send_prack_answer(tag, now, sdp)
        dialog, response = self._held_ack.pop(tag)
        self._send_ack(tag, now, dialog, response)

    def _send_ack(self, tag: str, now: float, dialog: "Dialog", response: "Response",
                  sdp: "bytes | None" = None) -> None:
        """§13.2.2.4: the ACK to a 2xx, within its dialog, with the INVITE's credentials (and
        our answer, when the 2xx carried the offer: a retransmitted 2xx gets it again)."""
        if sdp is not None:
            self._ack_answers[tag] = sdp
            if len(self._ack_answers) > 16:
                self._ack_answers.pop(next(iter(self._ack_answers)))
        sdp = self._ack_answers.get(tag)
        ack = dialog.create_request("ACK", cseq=response.cseq().seq)
        for name in ("Authorization", "Proxy-Authorization"):
            if self.invite is not None and name in self.invite.headers:
                ack.headers.set(name, self.invite.headers.get(name))
        if sdp is not None:
            ack.headers.set("Content-Type", SDP)
            ack.body = sdp
        self.ua.send_stateless(ack, self.dest)

    def _send_cancel(self, request: "Request | None", response: "Response | None",
                     now: float) -> None:
        assert self.invite is not None  # a branch is given up after its INVITE
        cancel = Request("CANCEL", self.invite.uri)
        for name in ("From", "To", "Call-ID", "Route"):
            for value in self.invite.headers.get_all(name):
                cancel.headers.add(name, value)
        cancel.headers.set("CSeq", "%d CANCEL" % self.cseq)
        via = self.invite.headers.get("Via")
        branch = via.split("branch=")[1].split(";")[0]
        # the CANCEL's own response tells nothing: the INVITE's 487 (or 2xx) does (§9.1)
        self.ua.send_request(cancel, self.dest, now, Reply(cancel), branch=branch)
