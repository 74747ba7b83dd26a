"""The answering side of a call: an incoming INVITE and the re-INVITEs we receive (RFC 3261
§13.3, §9.2, §14.2, RFC 6026, RFC 3325, RFC 5373).

`UasCall` is mixed into `Call`; its `_<action>` methods are the actions of `callstate.UAS_CALL`
(incoming calls) and of `callstate.OFFER` (re-INVITE offers, in either direction). A 2xx to an
INVITE is ours to retransmit, T1 doubling to T2, until its ACK (§13.3.1.4, RFC 6026 §8.7):
`Accepted2xx`.
"""

from firmware.sip.callbase import CallBase
from firmware.sip.callevents import SDP, CallEstablished, OfferReceived, body_sdp, reason_for
from firmware.sip.dialog import CONFIRMED
from firmware.sip.endpoint import response_destination
from firmware.sip.errors import ParseError
from firmware.sip.message import NameAddress
from firmware.sip.transaction import T1, T2
from firmware.sip.useragent import ALLOW

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sip.endpoint import Peer, RequestReceived
    from firmware.sip.message import Request, Response
    from firmware.sip.transaction import ServerTransaction
    from firmware.sip.useragent import UserAgent

TIMER_2XX_GIVE_UP = 64 * T1  # §13.3.1.4: no ACK after this long ends the call

# Whose identity an incoming call has while registered ([answer] identity): the From header,
# or the P-Asserted-Identity the registrar adds (RFC 3325).
IDENTITY_FROM = "from"
IDENTITY_ASSERTED = "asserted"


class Accepted2xx:
    """A 2xx we sent to an INVITE (or re-INVITE), retransmitted until the ACK with its CSeq."""

    __slots__ = ("response", "cseq", "dest", "interval", "next_at", "give_up_at")

    def __init__(self, response: "Response", request: "Request", source: "Peer",
                 now: float) -> None:
        self.response = response
        self.cseq = request.cseq().seq
        self.dest = response_destination(request, source)
        self.interval = T1
        self.next_at = now + T1
        self.give_up_at = now + TIMER_2XX_GIVE_UP

    def acknowledged_by(self, ack: "Request") -> bool:
        return ack.cseq().seq == self.cseq

    def retransmit(self, ua: "UserAgent", now: float) -> None:
        ua.send_stateless(self.response, self.dest)
        self.interval = min(self.interval * 2, T2)
        self.next_at = now + self.interval


class UasCall(CallBase):
    """Incoming-call and received-offer methods of `Call` (see firmware/sip/call.py)."""

    def _send_2xx(self, transaction: "ServerTransaction | None", request: "Request",
                  source: "Peer", response: "Response", now: float) -> None:
        self._2xx = Accepted2xx(response, request, source, now)
        assert transaction is not None  # an INVITE's server transaction
        self.ua.send_response(transaction, response, now)

    def _incoming(self) -> "tuple[Request, ServerTransaction, Peer]":
        """The INVITE that made this incoming call, its transaction and where it came from."""
        invite, transaction, source = self.invite, self.transaction, self.source
        assert invite is not None and transaction is not None and source is not None, \
            "an incoming call's INVITE"
        return invite, transaction, source

    def _make_response(self, status: int, reason: "str | None" = None) -> "Response":
        invite = self._incoming()[0]
        response = self._response(invite, status, reason)
        if 100 < status < 300:
            # §12.1.1: a dialog-creating response carries the request's Record-Route, so the
            # caller's ACK and BYE take the same proxies.
            for value in invite.headers.get_all("Record-Route"):
                response.headers.add("Record-Route", value)
        return response

    def _respond(self, status: int, now: float, reason: "str | None" = None,
                 offer: "bytes | None" = None) -> None:
        response = self._make_response(status, reason)
        if status < 200 and status > 100:
            response.headers.set("Contact", "<%s>" % self.ua.contact_uri())
            if self.reliable is not None:
                if offer is not None and self.remote_sdp is None and not self._offer_in_18x:
                    # RFC 3261 §13.2.1, RFC 3262 §5: an INVITE without an offer gets ours in
                    # the first reliable non-failure response; its PRACK brings the answer
                    self._offer_in_18x = True
                    self.local_sdp = offer
                    response.headers.set("Content-Type", SDP)
                    response.body = offer
                self.reliable.send(response, now)  # RFC 3262 §3: RSeq, resent until PRACKed
                self._flush_reliable(now)
                return
        elif status >= 200 and self.reliable is not None:
            self.reliable.final_sent(now)
        self.ua.send_response(self._incoming()[1], response, now)

    # -- actions (callstate.UAS_CALL) --------------------------------------------------------
    def _send_ringing(self, name: str, now: float, offer: "bytes | None" = None) -> None:
        self._respond(180, now, offer=offer)

    def _send_answer(self, name: str, now: float, sdp: bytes) -> None:
        self.local_sdp = sdp
        response = self._make_response(200)
        # added, not set: a fresh response has only what make_response copied (Via, From, To,
        # Call-ID, CSeq) and Record-Route (issue 14: no scan and rebuild of the list for each)
        response.headers.add("Contact", "<%s>" % self.ua.contact_uri())
        response.headers.add("Allow", ALLOW)
        response.headers.add("Supported", "timer, 100rel")
        self._add_session_expires(response)
        response.headers.add("Content-Type", SDP)
        response.body = sdp
        dialog, _ = self._confirmed()
        dialog.state = CONFIRMED
        self.answered_at = now
        self.ring_deadline = None
        invite, transaction, source = self._incoming()
        self._offer_in_2xx = self.remote_sdp is None  # delayed offer: ours goes in the 200
        if self.reliable is not None:
            self.reliable.final_sent(now)
        self._send_2xx(transaction, invite, source, response, now)
        self._arm_session_timer(now)
        self.max_end = now + self.manager.max_duration_for(self)

    def _send_rejection(self, name: str, now: float, status: int,
                        reason: "str | None") -> None:
        self._respond(status, now, reason)
        self._ended(reason_for(status) if status != 487 else "cancelled", now, status)

    def _send_unavailable(self, name: str, now: float) -> None:
        self._send_rejection(name, now, 480, "Temporarily Unavailable")

    def _send_no_answer(self, name: str, now: float) -> None:
        self._send_rejection(name, now, 480, "No Answer")

    def _send_not_acknowledged(self, name: str, now: float) -> None:
        self._send_rejection(name, now, 504, "Provisional Response Not Acknowledged")

    def _send_terminated(self, name: str, now: float) -> None:
        self._respond(487, now, "Request Terminated")
        self._ended("cancelled", now, 487)

    def _end_bye_before_answer(self, name: str, now: float) -> None:
        self._respond(487, now)
        self._ended("remote hangup", now)

    def _report_established(self, name: str, now: float) -> None:
        self.manager.emit(CallEstablished(self, self.remote_sdp))

    # -- actions (callstate.OFFER) -----------------------------------------------------------
    def _take_offer(self, name: str, now: float, event: "RequestReceived") -> None:
        request = event.request
        self._read_session_expires(request, we_are_uac=False)
        self._reoffer = event
        sdp = body_sdp(request)
        if sdp is None:
            if self.local_sdp is None:
                # §14.2: the INVITE that made this call has no final response yet (we have not
                # described our session): 500 with Retry-After, the call goes on ringing
                self.reject_offer(500, now)
                return
            # An offerless re-INVITE (a session refresh, or a PBX moving the media): our
            # current description goes in the 2xx as an offer; the answer comes in the ACK.
            self._offer_in_2xx = True
            self.accept_offer(self.local_sdp, now)
            return
        self.remote_sdp = sdp
        self.manager.emit(OfferReceived(self, sdp))

    def _send_request_pending(self, name: str, now: float, event: "RequestReceived") -> None:
        self._reply(event, 491, now)

    def _taken_offer(self) -> "RequestReceived":
        """The re-INVITE an OFFER_RECEIVED state waits to answer (the OFFER table's invariant)."""
        event, self._reoffer = self._reoffer, None
        assert event is not None, "a re-INVITE offer"
        return event

    def _send_offer_answer(self, name: str, now: float, sdp: bytes) -> None:
        event = self._taken_offer()
        self.local_sdp = sdp
        response = self._response(event.request, 200)
        response.headers.set("Contact", "<%s>" % self.ua.contact_uri())
        self._add_session_expires(response)
        response.headers.set("Content-Type", SDP)
        response.body = sdp
        if event.request.method == "UPDATE":
            # RFC 3311 §5.2: a non-INVITE 2xx: its transaction retransmits it, no ACK comes
            assert event.transaction is not None
            self.ua.send_response(event.transaction, response, now)
        else:
            self._send_2xx(event.transaction, event.request, event.source, response, now)
        self._arm_session_timer(now)

    def _send_offer_rejection(self, name: str, now: float, status: int) -> None:
        event = self._taken_offer()
        response = self._response(event.request, status)
        if status == 500:  # §14.2: a random 0-10 s
            response.headers.set("Retry-After", str(self.ua.random(1)[0] % 11))
        assert event.transaction is not None  # an INVITE's server transaction
        self.ua.send_response(event.transaction, response, now)


def asserted_identity(request: "Request") -> "str | None":
    """RFC 3325 §9.1: the first sip:/sips: URI of the P-Asserted-Identity header(s), as text,
    or None (a tel: URI alone names no SIP identity the allow list could hold)."""
    for value in request.headers.get_all("P-Asserted-Identity"):
        try:
            uri = NameAddress.parse(value).uri
        except (ParseError, TypeError):
            continue
        if uri is not None and uri.scheme in ("sip", "sips") and uri.host:  # not `*`
            return str(uri)
    return None


def answer_mode(request: "Request") -> "str | None":
    """RFC 5373: "auto" or "manual" as the caller asked (Priv-Answer-Mode wins), or None."""
    for name in ("Priv-Answer-Mode", "Answer-Mode"):
        value = request.headers.get(name)
        if value:
            mode = value.split(";")[0].strip().lower()
            if mode in ("auto", "manual"):
                return mode
    return None
