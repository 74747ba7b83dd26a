"""The outgoing side of a call: ringing its targets (RFC 3261 §13.2, §9.1, §13.2.2.4).

`UacCall` is mixed into `Call`: the branches report here (`branch_ringing`, `branch_answered`,
`branch_failed`, `branch_redirect_refused`), which feeds the call's table (`callstate.UAC_CALL`);
the `_<action>` methods below are that table's actions for an outgoing call. Branches are given
the call's user agent (`self.ua`) to send with.
"""

from firmware.sip import callstate as cs
from firmware.sip.branch import Branch, OfferToAnswer
from firmware.sip.callbase import CallBase
from firmware.sip.callevents import CallEstablished, CallRinging, body_sdp, reason_for
from firmware.sip.dialog import Dialog
from firmware.sip.errors import ParseError
from firmware.sip.uri import URI

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sip.callevents import RedirectRefused
    from firmware.sip.endpoint import Peer
    from firmware.sip.message import Request, Response


class UacCall(CallBase):
    """Outgoing-call methods of `Call` (see firmware/sip/call.py)."""

    def configured_target(self, uri: "URI | str | None") -> "tuple[str, Peer] | None":
        """(text, Peer) of the configured target equal to `uri` (RFC 3261 §19.1.4), or None."""
        if uri is None:
            return None
        if not isinstance(uri, URI):
            try:
                uri = URI.parse(str(uri))
            except ParseError:
                return None
        for text, parsed, peer in self.targets:
            if parsed is not None and parsed == uri:
                return text, peer
        return None

    # -- what the branches report ------------------------------------------------------------
    def branch_ringing(self, branch: "Branch", sdp: "bytes | None", now: float,
                       offer: "OfferToAnswer | None" = None) -> None:
        self._feed(cs.PROVISIONAL, now, sdp, offer)
        if offer is not None and self.state not in (cs.CALLING, cs.RINGING):
            offer.branch.give_answer(offer.tag, None, now)  # no table row reported it

    def branch_answered(self, branch: "Branch", request: "Request", response: "Response",
                        now: float, given_up: bool = False) -> None:
        """A 2xx to a branch's INVITE: always ACKed (§13.2.2.4); the first one wins; any other
        (another fork, a lost CANCEL race, a given-up branch) is ended with BYE."""
        to_tag = response.to_address().tag or ""  # a 2xx without one still gets its ACK
        dialog = branch.dialogs.get(to_tag)
        if dialog is None:
            dialog = branch.dialogs[to_tag] = Dialog.as_uac(request, response)
        dialog.confirm(response)
        offer = branch.acknowledge(dialog, response, now)  # with a delayed offer: may wait
        if self.dialog is dialog:
            return  # a retransmitted 2xx: the ACK above answers it
        if self.state in (cs.ACTIVE, cs.ENDED) or given_up:
            if offer is not None:  # nobody will answer this fork's offer: ACK without one
                branch.give_answer(offer.tag, None, now)
            self._send_bye_request(now, dialog, branch.dest)
            return
        self._feed(cs.SUCCESS, now, branch, dialog, response, offer)

    def branch_failed(self, branch: "Branch", status: int, now: float) -> None:
        if self.sequential and self.pending_targets:
            self._feed(cs.NEXT_TARGET, now)
        elif all(b.done for b in self.branches) and not self.pending_targets:
            self._feed(cs.ALL_FAILED, now, status)

    def branch_redirect_refused(self, branch: "Branch", event: "RedirectRefused",
                                now: float) -> None:
        """A 3xx the branch did not follow: the application hears why, the branch failed."""
        self.manager.emit(event)
        self.branch_failed(branch, event.status, now)

    def _start_next(self, now: float) -> None:
        target, dest = self.pending_targets.pop(0)
        branch = Branch(self, self.ua, target, dest)
        self.branches.append(branch)
        if self.sequential and self.target_timeout:
            branch.deadline = now + self.target_timeout
        branch.send_invite(now)

    def _cancel_all(self, now: float) -> None:
        self.pending_targets = []
        for branch in self.branches:
            branch.cancel(now)

    # -- actions (callstate.UAC_CALL) --------------------------------------------------------
    def _report_ringing(self, name: str, now: float, sdp: "bytes | None",
                        offer: "OfferToAnswer | None") -> None:
        self.manager.emit(CallRinging(self, sdp, offer))

    def _establish(self, name: str, now: float, branch: "Branch", dialog: "Dialog",
                   response: "Response", offer: "OfferToAnswer | None") -> None:
        self.dialog = dialog
        self.dest = branch.dest
        self.peer = branch.target
        self.manager.register_dialog(self, dialog)
        self.answered_at = now
        self.ring_deadline = None
        self.pending_targets = []
        for other in self.branches:
            if other is not branch:
                other.cancel(now)
        # §13.2.1: a 2xx without SDP leaves the description of its early dialog's 18x
        self.remote_sdp = body_sdp(response) or branch.early_sdp.get(dialog.remote_tag or "")
        self._read_session_expires(response, we_are_uac=True)
        self._arm_session_timer(now)
        self.max_end = now + self.manager.max_duration_for(self)
        self.manager.emit(CallEstablished(self, self.remote_sdp, offer))

    def _ring_next(self, name: str, now: float) -> None:
        self._start_next(now)

    def _end_failed(self, name: str, now: float, status: int) -> None:
        self._ended(reason_for(status), now, status)

    def _cancel_branches(self, name: str, now: float) -> None:
        self._cancel_all(now)
        self._ended("local hangup", now)

    def _give_up_ringing(self, name: str, now: float) -> None:
        self._cancel_all(now)
        self._ended("no answer", now, 408)

    def _end_no_answer(self, name: str, now: float) -> None:
        self._ended("no answer", now, 408)
