"""One door call's session: the SIP call, its offer/answer and its id; and the manager the
runtime feeds (sans-I/O, portable).

`SessionManager(calls, media_cfg, random)` wraps the SIP call layer (`sip.call.CallManager`).
Inputs, each with `now`:
- the SIP call layer's events: `on_sip_event(event, now)` (True when it was a call event);
- the controller's commands by call id: `place_call`, `ring`, `answer`, `reject`, `hangup`,
  `hangup_all`, `hold`, `resume`, `send_info`;
- the runtime's reports: `media_opened(call_id, address, port)` / `media_unavailable(call_id,
  reason)` after an `OpenMedia`, and `digit(call_id, key)` from a playing stream.
Outputs: `next_event()` (firmware/session/events.py), and `status()`.

What it decides (formerly in runtime/station.py): the SRTP mode for the signalling's security
and the keys (from the injected `random`); 503 for an incoming call without a media port, 488
for an offer it cannot answer (malformed, no common codec, keys that may not travel); our
answer parked until the controller says `answer`; a re-INVITE offer answered (or 488) and the
stream updated; the answer to our offer (200, or an 18x's early answer when the 200 has none)
checked, and a call whose answer is unusable hung up; INFO bodies read as digits.
The local RTP address and port are inputs: the runtime binds the sockets.
"""

import os

from firmware.rtp.dtmf import parse_info_body
from firmware.sdp import offer_answer as oa
from firmware.sdp.session import SessionDescription
from firmware.sdp.video import LocalVideo
from firmware.session import events as ev
from firmware.session.transfer import Transfers
from firmware.sip import call as sipcall

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.sdp.offer_answer import LocalMedia, NegotiatedMedia
    from firmware.settings import MediaConfig
    from firmware.sip.auth import Random
    from firmware.sip.call import CallManager
    from firmware.sip.callbase import CallBase
    from firmware.sip.callevents import CallEventHandler
    from firmware.sip.endpoint import Peer

CALL_ID_BYTES = 6  # call ids minted here: 12 hex digits, as the SIP call layer's own
SENDRECV = "sendrecv"
HOLD = "sendonly"


class Session:
    """One call. `id` is the SIP call layer's `Call.id`, the one id every layer uses."""

    def __init__(self, call: "CallBase") -> None:
        self.id = call.id
        self.call = call
        self.local: LocalMedia | None = None  # once a port is known
        self.version = 1  # our SDP session version (o= line), +1 per description we write
        # our last offer while it waits for an answer
        self.offer: SessionDescription | None = None
        # our last description (offer or answer) of the session
        self.described: SessionDescription | None = None
        self.negotiated: NegotiatedMedia | None = None  # in force
        self.answer: bytes | None = None  # incoming: our SDP answer, parked until `answer`
        self.early: NegotiatedMedia | None = None  # outgoing: from an 18x's SDP answer
        # outgoing: [(an 18x's SDP, its negotiation)], newest last (bounded): the 200 of a
        # forked call names its early dialog's SDP, which picks the negotiation to keep
        self.early_answers: list[tuple[bytes, NegotiatedMedia]] = []
        self.started = False  # StartMedia was emitted
        # a REFER waiting for the controller: (target, Replaces or None, Referred-By)
        self.pending_refer: tuple[str, str | None, str] | None = None
        # the call a transfer's new call came from (NOTIFYed, hung up once this one is up)
        self.transferred_from: str | None = None
        self.joins = False  # that call stays up: the new party joins a conference

    def __repr__(self) -> str:
        return "<Session %s %s %s>" % (self.id, self.call.direction, self.call.state)

    @property
    def direction(self) -> str:
        return self.call.direction

    @property
    def state(self) -> str:
        return self.call.state

    def _write_offer(self, direction: str) -> bytes:
        assert self.local is not None  # only re-offered with a port (SessionManager._reoffer)
        self.offer = self.described = oa.create_offer(self.local, self.version, direction,
                                                      previous=self.described)
        self.version += 1
        return self.offer.to_bytes()

    def _write_answer(self, sdp: bytes) -> "tuple[bytes, NegotiatedMedia]":
        """Our answer (bytes) and the negotiation to `sdp` (their offer, bytes); raises
        OfferAnswerError (488)."""
        try:
            offer = SessionDescription.parse(sdp)
        except ValueError as exc:  # SdpParseError: a malformed offer is not acceptable
            raise oa.OfferAnswerError("malformed SDP: %s" % exc) from None
        if self.local is None:  # no port yet: nothing to answer with
            raise oa.OfferAnswerError("no local media")
        answer, negotiated = oa.create_answer(offer, self.local, self.version, SENDRECV)
        self.described = answer
        self.version += 1
        return answer.to_bytes(), negotiated

    def _answer_delayed(
            self, sdp: "bytes | None") -> "tuple[bytes | None, NegotiatedMedia | None, str]":
        """Delayed offer: (our answer, its negotiation, problem) to the offer `sdp` of a
        reliable 18x or a 2xx. It must be answered (in the PRACK or ACK, RFC 3262 §5, RFC 3261
        §13.2.2.4): an offer we cannot accept gets an answer refusing every stream (negotiation
        None), one we cannot even parse none at all (answer None)."""
        try:
            answer, negotiated = self._write_answer(sdp or b"")
        except oa.OfferAnswerError as exc:
            problem = exc.reason
        else:
            return answer, negotiated, ""
        try:
            offer = SessionDescription.parse(sdp or b"")
        except ValueError:
            return None, None, problem
        assert self.local is not None  # placed with a port: the call has its local media
        refusal = oa.refusing_answer(offer, self.local, self.version)
        self.version += 1
        return refusal.to_bytes(), None, problem

    def _remember_early(self, sdp: bytes, negotiated: "NegotiatedMedia") -> None:
        self.early = negotiated
        self.early_answers = (self.early_answers + [(sdp, negotiated)])[-8:]

    def _early_for(self, sdp: "bytes | None") -> "NegotiatedMedia | None":
        """The negotiation an 18x with this SDP gave (None: no such 18x)."""
        for seen, negotiated in reversed(self.early_answers):
            if sdp is not None and seen == sdp:
                return negotiated
        return None

    def _read_answer(self, sdp: "bytes | None") -> "NegotiatedMedia":
        """The negotiation their answer (bytes) gives to our outstanding offer; raises
        OfferAnswerError or ValueError."""
        if sdp is None:
            raise oa.OfferAnswerError("no SDP answer")
        if self.offer is None or self.local is None:
            raise oa.OfferAnswerError("no offer of ours outstanding")
        return oa.process_answer(self.offer, SessionDescription.parse(sdp), self.local)


class SessionManager:
    """The sessions by call id, fed by the runtime. `media_cfg`: the `[media]` section, a
    `firmware.settings.MediaConfig` (`codecs`, `srtp`, `keys_need_tls()`)."""

    def __init__(self, calls: "CallManager", media_cfg: "MediaConfig",
                 random: "Random" = os.urandom, delayed_offer: bool = False) -> None:
        self.calls = calls
        self.media_cfg = media_cfg
        # [calls] delayed_offer: our INVITEs carry no SDP; the offer comes in a reliable 18x
        # or the 2xx and our answer goes in the PRACK or ACK (RFC 3261 §13.2.1, RFC 3262 §5)
        self.delayed_offer = delayed_offer
        self.random = random
        # H.264 beside the audio (issue 16) whenever the runtime gives a video port (the
        # station has a camera and [camera] video = "offer"): this payload type in our offers,
        # and the profile-level-id of the stream (sdp.video.profile_level_id of the camera's
        # settings; the runtime keeps it current)
        self.video_payload_type = 96
        self.video_profile_level_id = "42c01f"
        self._sessions: list[Session] = []  # in creation order (MicroPython's dict is unordered)
        self._events: list[ev.SessionEvent] = []
        self._on_sip: dict[type, CallEventHandler] = {
            sipcall.IncomingCall: self._incoming,
            sipcall.CallRinging: self._ringing,
            sipcall.CallEstablished: self._established,
            sipcall.OfferReceived: self._offer_received,
            sipcall.AnswerReceived: self._answer_received,
            sipcall.InfoReceived: self._info_received,
            sipcall.RedirectRefused: self._redirect_refused,
            sipcall.CallEnded: self._ended,
        }
        # transfers, replaced calls and messages: firmware/session/transfer.py
        self.transfers = Transfers(self)
        self._on_sip.update(self.transfers.handlers())

    # -- outputs ------------------------------------------------------------------------------
    def next_event(self) -> "ev.SessionEvent | None":
        return self._events.pop(0) if self._events else None

    def get(self, call_id: "str | None") -> "Session | None":
        for session in self._sessions:
            if session.id == call_id:
                return session
        return None

    def __len__(self) -> int:
        return len(self._sessions)

    def ids(self) -> "list[str]":
        return [s.id for s in self._sessions]

    def status(self) -> "list[dict]":
        return [{"id": s.id, "direction": s.direction, "state": s.state, "peer": s.call.peer,
                 "codec": s.negotiated.codec if s.negotiated else None,
                 "srtp": bool(s.negotiated and s.negotiated.srtp)}
                for s in self._sessions]

    def _emit(self, event: "ev.SessionEvent") -> None:
        self._events.append(event)

    emit = _emit

    # -- transfers and messages (firmware/session/transfer.py) ---------------------------------
    def transfer(self, call_id: str, new_call_id: str, routed: "list[tuple[str, Peer]]",
                 address: str, port: "int | None", now: float,
                 no_media: object = None, join: bool = False) -> "Session | None":
        return self.transfers.transfer(call_id, new_call_id, routed, address, port, now,
                                       no_media, join)

    def refuse_transfer(self, call_id: str, status: int, now: float) -> None:
        self.transfers.refuse_transfer(call_id, status, now)

    def send_message(self, message_id: str, to: str, dest: "Peer", text: str,
                     now: float) -> None:
        self.transfers.send_message(message_id, to, dest, text, now)

    def answer_message(self, message_id: str, status: int, now: float) -> None:
        self.transfers.answer_message(message_id, status, now)

    # -- the controller's commands --------------------------------------------------------------
    def place_call(self, role: str, routed: "list[tuple[str, Peer]]", address: str,
                   port: "int | None", now: float, sequential: bool = False,
                   target_timeout: "float | None" = None, answer_mode: "str | None" = None,
                   no_media: object = None, call_id: "str | None" = None,
                   headers: "list[tuple[str, str]] | None" = None,
                   extra_calls: int = 0,
                   video_port: "int | None" = None) -> "Session | None":
        """Ring `routed` ([(target, next-hop Peer)]) with our offer for RTP at address:port (the
        runtime's port pair; port None when it has none, `no_media` saying why), under
        `call_id` (the controller's; None: minted here); `video_port`: also offer H.264 video
        received there. Emits CallStarted or CallNotStarted; returns the Session or None."""
        if call_id is None:  # the one id of this call in every layer
            call_id = self.random(CALL_ID_BYTES).hex()
        if port is None:
            self._emit(ev.CallNotStarted(call_id, role, "no media: %s" % no_media))
            return None
        secure = all(peer.transport == "tls" for _, peer in routed)
        local, problem = self._local_media(address, port, secure, video_port)
        if problem is not None:
            self._emit(ev.CallNotStarted(call_id, role, problem))
            return None
        offer = None if self.delayed_offer else oa.create_offer(local, 1, SENDRECV)
        call = self.calls.place_call(routed, offer.to_bytes() if offer is not None else None,
                                     now, sequential=sequential,
                                     target_timeout=target_timeout, answer_mode=answer_mode,
                                     call_id=call_id, headers=headers,
                                     extra_calls=extra_calls)
        if call is None:
            self._emit(ev.CallNotStarted(call_id, role, "busy"))
            return None
        session = self._add(call)
        session.local, session.offer, session.described = local, offer, offer
        session.version = 1 if offer is None else 2
        self._emit(ev.CallStarted(call.id, role))
        return session

    def answer(self, call_id: str, now: float) -> bool:
        """Answer a ringing incoming call with the parked answer; False when it cannot be
        (ended meanwhile by CANCEL or ring timeout, or refused)."""
        session = self.get(call_id)
        if session is None or session.answer is None or session.state != sipcall.RINGING:
            return False
        answer, session.answer = session.answer, None
        session.call.answer_mode = "auto"
        session.call.answer(answer, now)
        if session.negotiated is not None:  # else a delayed offer: started by the ACK's answer
            self._start(session)
        return True

    def ring(self, call_id: str, now: float) -> None:
        """180 Ringing; to an INVITE without an offer that requires 100rel, the 180 carries
        our (parked) offer and the PRACK the answer (RFC 3262 §5), which negotiates the
        session before `answer` (AnswerReceived)."""
        session = self.get(call_id)
        if session is not None and session.state == sipcall.RINGING:
            offer = session.answer if session.offer is not None else None
            session.call.ring(now, offer)

    def reject(self, call_id: str, status: int, now: float) -> None:
        session = self.get(call_id)
        if session is not None and session.state == sipcall.RINGING:
            session.answer = None
            session.call.reject(status, now)

    def hangup(self, call_id: "str | None", now: float) -> None:
        """One call, or every call when `call_id` is None."""
        sessions = list(self._sessions) if call_id is None else [self.get(call_id)]
        for session in sessions:
            if session is not None and session.state != sipcall.ENDED:
                session.call.hangup(now)

    def hangup_all(self, now: float) -> None:
        """Shutdown: every call of the SIP layer, even one without a session yet."""
        self.calls.hangup_all(now)

    def hold(self, call_id: str, now: float) -> None:
        """Re-INVITE with a sendonly offer (RFC 6337 §5.3); the answer updates the stream."""
        self._reoffer(call_id, HOLD, now)

    def resume(self, call_id: str, now: float) -> None:
        self._reoffer(call_id, SENDRECV, now)

    def _reoffer(self, call_id: str, direction: str, now: float) -> bool:
        session = self.get(call_id)
        if session is None or session.state != sipcall.ACTIVE or session.local is None:
            return False
        session.call.reinvite(session._write_offer(direction), now)
        return True

    def send_info(self, call_id: str, content_type: str, body: bytes, now: float) -> None:
        session = self.get(call_id)
        if session is not None and session.state == sipcall.ACTIVE:
            session.call.send_info(content_type, body, now)

    # -- the runtime's reports ------------------------------------------------------------------
    def media_opened(self, call_id: str, address: str, port: int, now: float,
                     video_port: "int | None" = None) -> None:
        """The port pair an OpenMedia asked for (and one for video, when the station offers
        it): answer the offer (parked) or refuse with 488."""
        session = self.get(call_id)
        if session is None or session.state == sipcall.ENDED:
            return
        call = session.call
        source, offer = call.source, call.remote_sdp
        assert source is not None  # OpenMedia: an incoming call, which has its INVITE's source
        local, problem = self._local_media(address, port, source.transport == "tls", video_port)
        session.local = local
        if problem is None and offer is None:
            # delayed offer (RFC 3261 §13.2.1): our offer goes in the 200, the answer comes
            # in the ACK (CallEstablished); media starts then
            session.answer = session._write_offer(SENDRECV)
        elif problem is None and offer is not None:
            try:
                session.answer, session.negotiated = session._write_answer(offer)
            except oa.OfferAnswerError as exc:
                problem = "no acceptable media: %s" % exc
        if problem is not None:
            self._refuse(session, 488, "Not Acceptable Here", problem, now)
            return
        self._emit(ev.CallOffered(
            call.id, call.peer, "%s:%s:%s" % (source.transport, source.host, source.port),
            call.trusted, call.requested_answer_mode, source.host, call.replaces))

    def media_unavailable(self, call_id: str, reason: object, now: float) -> None:
        """No port pair or file descriptor for an incoming call: 503 (issue 12)."""
        session = self.get(call_id)
        if session is not None and session.state != sipcall.ENDED:
            self._refuse(session, 503, "Service Unavailable", "no media: %s" % reason, now)

    def digit(self, call_id: str, key: str, now: float) -> None:
        """A key the media executor detected (RFC 4733 or in-band)."""
        if self.get(call_id) is not None:
            self._emit(ev.DigitReceived(call_id, key, "rtp"))

    # -- the SIP call layer's events ------------------------------------------------------------
    def on_sip_event(self, event: object, now: float) -> bool:
        handler = self._on_sip.get(type(event))
        if handler is None:
            return False
        handler(event, now)
        return True

    def _incoming(self, event: "sipcall.IncomingCall", now: float) -> None:
        session = self._add(event.call)
        self._emit(ev.OpenMedia(session.id))

    def _ringing(self, event: "sipcall.CallRinging", now: float) -> None:
        session = self._session_of(event)
        if session is None:
            if event.offer is not None:  # nobody to answer it: the PRACK/ACK goes without
                event.call.send_answer(event.offer, None, now)
            return
        early = False
        if event.offer is not None:  # delayed offer: the reliable 18x's offer, our PRACK
            answer, negotiated, problem = session._answer_delayed(event.sdp)
            event.call.send_answer(event.offer, answer, now)
            if negotiated is None:
                self._emit(ev.CallRefused(session.id, event.call.peer, None,
                                          "unusable offer in the 18x: %s" % problem))
                event.call.hangup(now)  # CANCEL
                return
            session._remember_early(event.sdp or b"", negotiated)
            early = True
        elif event.sdp is not None and session.offer is not None:
            try:  # RFC 3264 §4 / RFC 3261 §13.2.1: the 18x's SDP is the answer
                session._remember_early(event.sdp, session._read_answer(event.sdp))
                early = True
            except (oa.OfferAnswerError, ValueError):
                session.early = None
        if early and session.early is not None:
            # early media (a PBX's ringback or announcement in a 183): to the door's speaker
            # now, not only once answered (RFC 3960 §3: the early answer sets up the session)
            if session.started:
                self._renegotiated(session, session.early)
            else:
                session.negotiated = session.early
                self._start(session)
        self._emit(ev.CallRinging(session.id, early))
        self.transfers.progress(session, 180, now)

    def _established(self, event: "sipcall.CallEstablished", now: float) -> None:
        session = self._session_of(event)
        if session is None:
            if event.offer is not None:  # nobody to answer it: the PRACK/ACK goes without
                event.call.send_answer(event.offer, None, now)
            return
        call = session.call
        if call.direction == "outgoing":
            known = session._early_for(event.sdp)
            try:
                if event.offer is not None:  # delayed offer: the 2xx's offer, our ACK
                    answer, answered, problem = session._answer_delayed(event.sdp)
                    call.send_answer(event.offer, answer, now)
                    if answered is None:
                        raise oa.OfferAnswerError("the 200's offer: %s" % problem)
                    negotiated = answered
                elif known is not None:
                    # the 200's SDP (or, without one, its early dialog's) is an 18x's: the
                    # negotiation of that dialog stands (RFC 3261 §13.2.1)
                    negotiated = known
                elif session.early is not None and (event.sdp is None or session.offer is None):
                    negotiated = session.early  # the 18x's answer (or offer/answer) stands
                else:
                    negotiated = session._read_answer(event.sdp)
            except (oa.OfferAnswerError, ValueError) as exc:
                self._emit(ev.CallRefused(session.id, call.peer, None,
                                          "unusable answer: %s" % exc))
                call.hangup(now)
                return
            session.offer = None
            if session.started:  # early media runs: the 200's answer may move it
                if negotiated is not session.negotiated:
                    self._renegotiated(session, negotiated)
            else:
                session.negotiated = negotiated
                self._start(session)
        elif not session.started and session.offer is not None:
            # delayed offer: the ACK carried the answer to the offer in our 200
            try:
                session.negotiated = session._read_answer(event.sdp)
            except (oa.OfferAnswerError, ValueError) as exc:
                self._emit(ev.CallRefused(session.id, call.peer, None,
                                          "unusable answer in the ACK: %s" % exc))
                call.hangup(now)
                return
            session.offer = None
            self._start(session)
        self._emit(ev.CallEstablished(session.id, call.direction, call.peer))
        if call.direction == "outgoing":
            self.transfers.progress(session, 200, now)
        else:
            self.transfers.replacement_established(session, now)

    def _offer_received(self, event: "sipcall.OfferReceived", now: float) -> None:
        session = self._session_of(event)
        if session is None or session.local is None:
            event.call.reject_offer(488, now)
            return
        try:
            answer, negotiated = session._write_answer(event.sdp)
        except oa.OfferAnswerError:
            event.call.reject_offer(488, now)
            return
        event.call.accept_offer(answer, now)
        self._renegotiated(session, negotiated)

    def _answer_received(self, event: "sipcall.AnswerReceived", now: float) -> None:
        """The answer to a re-INVITE we sent; a session refresh that re-sent our last
        description without a new offer of ours changes nothing."""
        session = self._session_of(event)
        if session is None:
            return
        if session.offer is None:
            # the answer (in an ACK) to our description re-sent as the offer of a 2xx to a
            # re-INVITE without SDP: a PBX moving the media (RFC 3311/6337 practice)
            if session.described is None or session.local is None or not event.sdp:
                return
            session.offer = session.described
        try:
            negotiated = session._read_answer(event.sdp)
        except (oa.OfferAnswerError, ValueError) as exc:
            self._emit(ev.CallRefused(session.id, session.call.peer, None,
                                      "unusable answer: %s" % exc))
            if session.state != sipcall.ENDED:
                session.call.hangup(now)
            return
        session.offer = None
        self._renegotiated(session, negotiated)

    def _renegotiated(self, session: "Session", negotiated: "NegotiatedMedia") -> None:
        session.negotiated = negotiated
        if session.started:
            self._emit(ev.UpdateMedia(session.id, negotiated))

    def _info_received(self, event: "sipcall.InfoReceived", now: float) -> None:
        key = parse_info_body(event.content_type, event.body)
        if key is not None and self._session_of(event) is not None:
            self._emit(ev.DigitReceived(event.call.id, key, "info"))

    def _redirect_refused(self, event: "sipcall.RedirectRefused", now: float) -> None:
        self._emit(ev.RedirectRefused(event.call.id, event.target, event.uri, event.reason,
                                      event.status))

    def _ended(self, event: "sipcall.CallEnded", now: float) -> None:
        session = self._session_of(event)
        if session is not None:
            self.transfers.progress(session, event.status or 487, now)
            self._sessions.remove(session)
            session.answer = None
        self._emit(ev.StopMedia(event.call.id))
        self._emit(ev.CallEnded(event.call.id, event.reason, event.status))

    # -- helpers --------------------------------------------------------------------------------
    def _add(self, call: "CallBase") -> "Session":
        session = Session(call)
        self._sessions.append(session)
        return session

    def _session_of(self, event: "sipcall.CallEvent") -> "Session | None":
        return self.get(event.call.id)

    def _start(self, session: "Session") -> None:
        session.started = True
        assert session.negotiated is not None  # started once negotiated
        self._emit(ev.StartMedia(session.id, session.negotiated))

    def _refuse(self, session: "Session", status: int, reason_phrase: str, problem: str,
                now: float) -> None:
        session.answer = None
        session.call.reject(status, now, reason_phrase)
        self._emit(ev.CallRefused(session.id, session.call.peer, status, problem))

    def _local_media(self, address: str, port: int, secure: bool,
                     video_port: "int | None" = None) -> "tuple[LocalMedia, str | None]":
        """(LocalMedia, problem): the SRTP mode this signalling allows and fresh keys (RFC 4568
        §8.3: SDES keys are only as secret as the signalling)."""
        cfg = self.media_cfg
        problem = None
        try:
            mode = oa.signalling_srtp(cfg.srtp, secure, cfg.keys_need_tls())
        except oa.OfferAnswerError as exc:
            mode, problem = oa.SRTP_OFF, exc.reason
        crypto = []
        if mode != oa.SRTP_OFF:
            crypto = [(suite, self.random(oa.KEY_SALT_LENGTH))
                      for suite in oa.SUPPORTED_CRYPTO_SUITES]
        video = None
        if video_port is not None:  # its own SDES keys (RFC 4568 §6.1: a key per m-line)
            video = LocalVideo(video_port, self.video_payload_type,
                               self.video_profile_level_id, crypto=[
                (suite, self.random(oa.KEY_SALT_LENGTH)) for suite, _ in crypto])
        local = oa.LocalMedia(address, port, codecs=cfg.codecs, srtp=mode, crypto=crypto,
                              session_id=int.from_bytes(self.random(4), "big"), video=video)
        return local, problem
