"""RFC 3264 offer/answer for Doorline's one audio stream, with SDES-SRTP and hold.

Implemented
- RFC 3264 §5 (generating an offer), §6 and §6.1 (the answer: same number and order of m-lines,
  port 0 rejects a stream, direction mirrored), §7 (processing the answer), §8 (re-offers:
  the origin's session version grows, hold by direction attribute), §8.4 and RFC 6337 §5.3
  (``c=0.0.0.0`` from an old peer is understood as hold: do not send to it).
- RFC 3551 static payload types PCMU 0, PCMA 8 and G722 9; dynamic types matched by rtpmap name
  and an 8000 Hz clock. G.722 samples at 16 kHz but is written ``G722/8000`` with an 8000 Hz RTP
  clock (RFC 3551 §4.5.2, an error kept for compatibility): ``NegotiatedMedia.audio_rate`` is
  the PCM rate the call's audio runs at (16000 for G722, else 8000) and ``frame_samples`` the
  PCM samples of one packet; ``clock_rate`` stays the RTP clock. Wideband is preferred: when
  G722 is among our codecs it goes first in an offer and is chosen first in an answer, whatever
  its place in the list. RFC 4733 telephone-event with the offerer's payload type.
- RFC 3605 / RFC 5761: the remote RTCP port is ``a=rtcp`` or RTP port + 1; rtcp-mux when both
  sides ask for it.
- RFC 4568 SDES: the answer carries one ``a=crypto`` with the offer's tag and suite and our key.
  Crypto lines with an MKI, several keys or session parameters are skipped (our SRTP layer uses
  none of them), as §5.1.1 allows.

SRTP modes (``LocalMedia.srtp``)
- ``off``: offer RTP/AVP without crypto; an RTP/SAVP offer is rejected (488).
- ``optional``: offer RTP/AVP *with* a=crypto ("best-effort SDES", as baresip's ``srtp`` and many
  phones do; a peer that ignores the crypto lines answers plain RTP). Answering, RTP/SAVP or
  RTP/AVP with a usable crypto gives SRTP, RTP/AVP without crypto gives plain RTP.
- ``mandatory``: offer RTP/SAVP; answering requires RTP/SAVP with a crypto we support, else 488.
- ``signalling_srtp(mode, signalling_secure, requires_tls=True)`` decides the mode for one call
  from its signalling (RFC 4568 §8.3: SDES keys are only as secret as the signalling): unless
  ``requires_tls`` is false, keys travel only over TLS, so over UDP/TCP ``optional`` becomes
  ``off`` (plain RTP/AVP, no a=crypto, an RTP/SAVP offer gets 488) and ``mandatory`` cannot be
  met (``OfferAnswerError``).

Public API
- ``LocalMedia(address, rtp_port, codecs=("PCMU", "PCMA"), telephone_event=True,
  telephone_event_payload_type=101, ptime=20, srtp="off", crypto=(), rtcp_mux=False,
  username="doorline", session_id=0)``: ``crypto`` is an ordered list of ``(suite, key_salt)``
  with a 30-byte master key||salt each, supplied by the caller (this module draws no randomness).
- ``create_offer(local, session_version, direction="sendrecv", previous=None)
  -> SessionDescription``; ``previous`` (our last description) makes it a re-offer (§8).
  The caller bumps ``session_version`` whenever the description changes (§8).
- ``create_answer(offer, local, session_version, direction="sendrecv")
  -> (SessionDescription, NegotiatedMedia)``; raises ``OfferAnswerError`` (status 488).
- ``refusing_answer(offer, local, session_version) -> SessionDescription``: a valid answer
  that rejects every stream (port 0, §6), for an offer that must be answered but cannot be
  accepted (RFC 3261 §13.2.2.4: an unacceptable offer in a 2xx gets one in the ACK, then BYE).
- ``process_answer(offer, answer, local) -> NegotiatedMedia``; raises ``OfferAnswerError``.
- ``NegotiatedMedia``: ``remote_address``, ``remote_port``, ``remote_rtcp_address``,
  ``remote_rtcp_port``, ``rtcp_mux``, ``codec``, ``payload_type``, ``clock_rate``,
  ``audio_rate``, ``frame_samples``, ``telephone_event_payload_type``, ``ptime``, ``sending``,
  ``receiving``, ``direction`` (ours),
  ``srtp`` (``SrtpParameters`` or None), ``media_index``.
- ``SrtpParameters``: ``suite``, ``remote_key``, ``remote_salt``, ``local_key``, ``local_salt``.
"""

from firmware.sdp import video as videos
from firmware.sdp.session import (
    INACTIVE,
    RECVONLY,
    SENDONLY,
    SENDRECV,
    Attribute,
    Connection,
    Crypto,
    MediaDescription,
    Origin,
    SessionDescription,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.sdp.session import RtpMap
    from firmware.sdp.video import LocalVideo, NegotiatedVideo

SRTP_OFF = "off"
SRTP_OPTIONAL = "optional"
SRTP_MANDATORY = "mandatory"
SRTP_MODES = (SRTP_OFF, SRTP_OPTIONAL, SRTP_MANDATORY)

PROTO_RTP = "RTP/AVP"
PROTO_SRTP = "RTP/SAVP"

STATIC_PAYLOAD_TYPES = {"PCMU": 0, "PCMA": 8, "G722": 9}  # RFC 3551 §6
CLOCK_RATE = 8000
AUDIO_RATES = {"G722": 16000}  # PCM rate of a codec whose audio is not sampled at 8000 Hz
WIDEBAND = ("G722",)  # preferred over narrowband codecs when both sides have them
TELEPHONE_EVENT = "telephone-event"
SUPPORTED_CRYPTO_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
KEY_SALT_LENGTH = 30  # 16-byte master key + 14-byte master salt for both suites

# (we send, we receive) for each direction attribute, from the writer's point of view.
_DIRECTION_FLAGS = {
    SENDRECV: (True, True),
    SENDONLY: (True, False),
    RECVONLY: (False, True),
    INACTIVE: (False, False),
}
_HOLD_ADDRESSES = ("0.0.0.0",)  # RFC 3264 §8.4: the RFC 2543 way to say "do not send to me"


class OfferAnswerError(Exception):
    """Negotiation failed; ``status`` is the SIP response to send (488 Not Acceptable Here)."""

    def __init__(self, reason: str, status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


def signalling_srtp(mode: str, signalling_secure: bool, requires_tls: bool = True) -> str:
    """The SRTP mode to negotiate over this signalling; see the module docstring."""
    if mode not in SRTP_MODES:
        raise ValueError(f"srtp must be one of {SRTP_MODES}")
    if mode == SRTP_OFF or signalling_secure or not requires_tls:
        return mode
    if mode == SRTP_OPTIONAL:
        return SRTP_OFF  # never SDES keys in the clear: plain RTP instead
    raise OfferAnswerError("SRTP is mandatory but signalling is not TLS: refusing to send SDES "
                           "keys in the clear ([media] srtp_requires_tls)")


class LocalMedia:
    """What we can do and where we receive; validated on construction (``ValueError``)."""

    def __init__(self, address: str, rtp_port: int,
                 codecs: list[str] | tuple[str, str] = ("PCMU", "PCMA"),
                 telephone_event: bool = True, telephone_event_payload_type: int = 101,
                 ptime: int = 20, srtp: str = SRTP_OFF,
                 crypto: "list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]" = (),
                 rtcp_mux: bool = False, username: str = "doorline", session_id: int = 0,
                 video: "LocalVideo | None" = None) -> None:
        self.address = address
        self.rtp_port = rtp_port
        self.codecs = [name.upper() for name in codecs]
        self.telephone_event = telephone_event
        self.telephone_event_payload_type = telephone_event_payload_type
        self.ptime = ptime
        self.srtp = srtp
        self.crypto = [(suite, bytes(key_salt)) for suite, key_salt in crypto]
        self.rtcp_mux = rtcp_mux
        self.username = username
        self.session_id = session_id
        self.video = video  # H.264 beside the audio (firmware/sdp/video.py), None: audio only
        self._validate()

    def _validate(self) -> None:
        if not self.codecs or any(name not in STATIC_PAYLOAD_TYPES for name in self.codecs):
            raise ValueError(f"codecs must be some of {sorted(STATIC_PAYLOAD_TYPES)}")
        if not 96 <= self.telephone_event_payload_type <= 127:
            raise ValueError("telephone-event payload type must be dynamic (96-127)")
        if not 0 < self.rtp_port < 65536:
            raise ValueError("rtp_port out of range")
        if self.srtp not in SRTP_MODES:
            raise ValueError(f"srtp must be one of {SRTP_MODES}")
        if self.srtp != SRTP_OFF and not self.crypto:
            raise ValueError("srtp needs crypto key material")
        for suite, key_salt in self.crypto:
            if suite not in SUPPORTED_CRYPTO_SUITES:
                raise ValueError(f"unsupported crypto suite {suite}")
            if len(key_salt) != KEY_SALT_LENGTH:
                raise ValueError(f"{suite} needs {KEY_SALT_LENGTH} bytes of key and salt")

    def key_salt_for(self, suite: str) -> bytes | None:
        for our_suite, key_salt in self.crypto:
            if our_suite == suite:
                return key_salt
        return None


class SrtpParameters:
    """Keys for one SRTP session: we protect with the local key, unprotect with the remote."""

    def __init__(self, suite: str, remote_key: bytes, remote_salt: bytes, local_key: bytes,
                 local_salt: bytes) -> None:
        self.suite = suite
        self.remote_key = remote_key
        self.remote_salt = remote_salt
        self.local_key = local_key
        self.local_salt = local_salt

    def __repr__(self) -> str:
        return f"SrtpParameters({self.suite})"  # never print keys


class NegotiatedMedia:
    """The outcome of one offer/answer exchange for the audio stream."""

    def __init__(self, media_index: int, remote_address: str, remote_port: int,
                 remote_rtcp_address: str, remote_rtcp_port: int, rtcp_mux: bool, codec: str,
                 payload_type: int, telephone_event_payload_type: int | None, ptime: int,
                 sending: bool, receiving: bool, srtp: "SrtpParameters | None") -> None:
        self.media_index = media_index
        self.remote_address = remote_address
        self.remote_port = remote_port
        self.remote_rtcp_address = remote_rtcp_address
        self.remote_rtcp_port = remote_rtcp_port
        self.rtcp_mux = rtcp_mux
        self.codec = codec
        self.payload_type = payload_type
        self.clock_rate = CLOCK_RATE
        self.audio_rate = AUDIO_RATES.get(codec, CLOCK_RATE)
        self.telephone_event_payload_type = telephone_event_payload_type
        self.ptime = ptime
        self.sending = sending
        self.receiving = receiving
        self.srtp = srtp
        self.video: NegotiatedVideo | None = None  # the m=video beside, when negotiated

    @property
    def frame_samples(self) -> int:
        """PCM samples of one packet at ``audio_rate`` (320 for 20 ms of G.722)."""
        return self.audio_rate * self.ptime // 1000

    @property
    def direction(self) -> str:
        """Our direction as an SDP direction name."""
        return _direction_name((self.sending, self.receiving))

    def __repr__(self) -> str:
        return (f"NegotiatedMedia({self.codec}/{self.payload_type} -> "
                f"{self.remote_address}:{self.remote_port} {self.direction} "
                f"srtp={self.srtp!r})")


def preferred(codecs: "list[str]") -> "list[str]":
    """``codecs`` with the wideband ones first (each group in its configured order)."""
    return [c for c in codecs if c in WIDEBAND] + [c for c in codecs if c not in WIDEBAND]


def _direction_name(flags: tuple[bool, bool]) -> str:
    for name, name_flags in _DIRECTION_FLAGS.items():
        if name_flags == flags:
            return name
    raise ValueError(f"no direction for {flags!r}")


def _payload_type_number(fmt: str) -> int | None:
    if 0 < len(fmt) <= 3 and not fmt.strip("0123456789") and int(fmt) <= 127:
        return int(fmt)
    return None


def _carries(media: "MediaDescription", fmt: str, codec: str,
             maps: "list[RtpMap] | None" = None) -> bool:
    """Whether format ``fmt`` of ``media`` is ``codec`` at 8000 Hz: by rtpmap when there is one
    (a dynamic type, or a static one spelt out), else by the RFC 3551 static number. ``maps``:
    ``media.rtpmaps()``, when the caller has them already (each call parses every rtpmap)."""
    payload_type = _payload_type_number(fmt)
    if payload_type is None:
        return False
    mapping = None
    for candidate in media.rtpmaps() if maps is None else maps:
        if candidate.payload_type == payload_type:  # the first one, as media.rtpmap()
            mapping = candidate
            break
    if mapping is None:
        return STATIC_PAYLOAD_TYPES.get(codec) == payload_type
    return (mapping.encoding.upper() == codec and mapping.clock_rate == CLOCK_RATE
            and mapping.channels in (None, 1))


def _payload_type_for(media: "MediaDescription", codec: str,
                      maps: "list[RtpMap] | None" = None) -> int | None:
    """The first payload type in ``media`` that carries ``codec``, or None."""
    maps = media.rtpmaps() if maps is None else maps
    for fmt in media.formats:
        if _carries(media, fmt, codec, maps):
            return int(fmt)
    return None


def _usable_crypto(media: "MediaDescription", local: "LocalMedia") -> "Crypto | None":
    """The offerer's first crypto line (its preference) that our SRTP layer can use."""
    for crypto in media.cryptos():
        if (local.key_salt_for(crypto.suite) is not None and len(crypto.keys) == 1
                and crypto.keys[0].mki_value is None and not crypto.session_params):
            return crypto
    return None


def _remote_flags(remote: "SessionDescription", media: "MediaDescription") -> tuple[bool, bool]:
    """(remote sends, remote receives), counting c=0.0.0.0 as 'do not send to me'."""
    sends, receives = _DIRECTION_FLAGS[remote.direction_of(media)]
    connection = remote.connection_for(media)
    if connection is None or connection.address in _HOLD_ADDRESSES:
        receives = False
    return sends, receives


def _negotiated(index: int, remote: "SessionDescription", media: "MediaDescription", codec: str,
                payload_type: int, telephone_event: int | None, srtp: "SrtpParameters | None",
                local: "LocalMedia", our_flags: tuple[bool, bool],
                remote_flags: "tuple[bool, bool] | None" = None) -> "NegotiatedMedia":
    connection = remote.connection_for(media)
    if connection is None:
        raise OfferAnswerError("no connection address for the audio stream")
    remote_sends, remote_receives = remote_flags or _remote_flags(remote, media)
    rtcp_mux = local.rtcp_mux and media.rtcp_mux
    rtcp = media.rtcp
    if rtcp_mux:
        rtcp_address, rtcp_port = connection.address, media.port
    elif rtcp is not None:
        rtcp_address, rtcp_port = rtcp.address or connection.address, rtcp.port
    else:
        rtcp_address, rtcp_port = connection.address, media.port + 1
    offered, most = media.ptime, media.maxptime  # each read parses its attribute
    ptime = offered if offered and 10 <= offered <= 120 else local.ptime
    if most and 10 <= most < ptime:
        ptime = most
    return NegotiatedMedia(index, connection.address, media.port, rtcp_address, rtcp_port,
                           rtcp_mux, codec, payload_type, telephone_event, ptime,
                           our_flags[0] and remote_receives, our_flags[1] and remote_sends, srtp)


def _srtp_parameters(remote_crypto: "Crypto", local_crypto: "Crypto") -> "SrtpParameters":
    # Both suites are known ones (_usable_crypto), so their keys split and are never None.
    return SrtpParameters(remote_crypto.suite,
                          remote_crypto.master_key, remote_crypto.master_salt,  # type: ignore[arg-type]
                          local_crypto.master_key, local_crypto.master_salt)  # type: ignore[arg-type]


def _telephone_event_payload_type(media: "MediaDescription",
                                  maps: "list[RtpMap] | None" = None) -> int | None:
    for mapping in media.rtpmaps() if maps is None else maps:
        if mapping.encoding.lower() == TELEPHONE_EVENT and mapping.clock_rate == CLOCK_RATE:
            if str(mapping.payload_type) in media.formats:
                return mapping.payload_type
    return None


def _new_description(local: "LocalMedia", session_version: int) -> "SessionDescription":
    origin = Origin(local.username, local.session_id, session_version, local.address)
    return SessionDescription(origin, "-", Connection(local.address))


def _audio_media(proto: str, port: int, codecs: list[tuple[str, int]], telephone_event: int | None,
                 local: "LocalMedia", direction: str, rtcp_mux: bool) -> "MediaDescription":
    """An m=audio section; ``codecs`` is [(name, payload type)], ``telephone_event`` a pt/None."""
    if direction not in _DIRECTION_FLAGS:
        raise ValueError(f"unknown direction {direction!r}")
    # the attributes in one list, in this order (issue 14, the answer path): rtpmaps, the
    # telephone-event's rtpmap and fmtp, ptime, rtcp-mux, the direction
    formats = [str(payload_type) for _, payload_type in codecs]
    attributes = [Attribute("rtpmap", f"{payload_type} {name}/{CLOCK_RATE}")
                  for name, payload_type in codecs]
    if telephone_event is not None:
        formats.append(str(telephone_event))
        attributes += [Attribute("rtpmap", f"{telephone_event} {TELEPHONE_EVENT}/{CLOCK_RATE}"),
                       Attribute("fmtp", f"{telephone_event} 0-15")]
    attributes.append(Attribute("ptime", str(local.ptime)))
    if rtcp_mux:
        attributes.append(Attribute("rtcp-mux"))
    attributes.append(Attribute(direction))
    return MediaDescription("audio", port, proto, formats, attributes=attributes)


def _audio_slot(previous: "SessionDescription") -> int:
    """Index of the audio stream in our previous description: the live one, else any."""
    audio = [index for index, media in enumerate(previous.media) if media.media == "audio"]
    live = [index for index in audio if previous.media[index].port != 0]
    return (live or audio or [len(previous.media)])[0]


def create_offer(local: "LocalMedia", session_version: int, direction: str = SENDRECV,
                 previous: "SessionDescription | None" = None) -> "SessionDescription":
    """RFC 3264 §5: one audio stream with our codecs in preference order.

    For a re-offer (§8, e.g. hold) pass our ``previous`` description of the session (our last
    offer or answer): m-lines cannot be removed, so the others stay in place with port 0 and the
    audio keeps its position and, with optional SRTP, its transport.
    """
    if direction not in _DIRECTION_FLAGS:
        raise ValueError(f"unknown direction {direction!r}")
    offer = _new_description(local, session_version)
    codecs = [(name, STATIC_PAYLOAD_TYPES[name]) for name in preferred(local.codecs)]
    telephone_event = local.telephone_event_payload_type if local.telephone_event else None
    proto = PROTO_SRTP if local.srtp == SRTP_MANDATORY else PROTO_RTP
    slot = 0
    if previous is not None:
        slot = _audio_slot(previous)
        for media in previous.media:
            offer.media.append(MediaDescription(media.media, 0, media.proto, media.formats))
        if local.srtp == SRTP_OPTIONAL and slot < len(previous.media):
            if previous.media[slot].proto in (PROTO_RTP, PROTO_SRTP):
                proto = previous.media[slot].proto
    media = _audio_media(proto, local.rtp_port, codecs, telephone_event, local, direction,
                         local.rtcp_mux)
    if local.srtp != SRTP_OFF:
        for tag, (suite, key_salt) in enumerate(local.crypto, 1):
            crypto = Crypto.inline(tag, suite, key_salt[:16], key_salt[16:])
            media.add_attribute("crypto", str(crypto))
    offer.media[slot:slot + 1] = [media]
    if local.video is not None:
        video = videos.offer_media(local.video, media.proto, local.srtp, direction)
        slots = [i for i, m in enumerate(offer.media) if m.media == "video"]
        if slots:  # a re-offer: the video keeps its place
            offer.media[slots[0]] = video
        else:
            offer.media.append(video)
    return offer


def _choose_audio(media: "MediaDescription", local: "LocalMedia",
                  maps: "list[RtpMap]") -> "tuple[str, int, Crypto | None]":
    """(codec, payload type, crypto or None) for an offered audio stream, or OfferAnswerError."""
    if media.proto not in (PROTO_RTP, PROTO_SRTP):
        raise OfferAnswerError(f"unsupported transport {media.proto}")
    if media.proto == PROTO_SRTP and local.srtp == SRTP_OFF:
        raise OfferAnswerError("SRTP offered but disabled here")
    if local.srtp == SRTP_MANDATORY and media.proto != PROTO_SRTP:
        raise OfferAnswerError("SRTP (RTP/SAVP) required")
    crypto = _usable_crypto(media, local) if local.srtp != SRTP_OFF else None
    if media.proto == PROTO_SRTP and crypto is None:
        raise OfferAnswerError("no supported crypto suite offered")
    for codec in preferred(local.codecs):
        payload_type = _payload_type_for(media, codec, maps)
        if payload_type is not None:
            return codec, payload_type, crypto
    raise OfferAnswerError("no common codec")


def create_answer(offer: "SessionDescription", local: "LocalMedia", session_version: int,
                  direction: str = SENDRECV) -> "tuple[SessionDescription, NegotiatedMedia]":
    """RFC 3264 §6: accept the first usable audio stream, reject every other one (port 0)."""
    if direction not in _DIRECTION_FLAGS:
        raise ValueError(f"unknown direction {direction!r}")
    answer = _new_description(local, session_version)
    negotiated = None
    failure = "no audio stream offered"
    video = None
    for index, media in enumerate(offer.media):
        accepted = None
        if media.media == "video" and video is None and local.video is not None:
            video = _answer_video(offer, media, index, local)
            if video is not None:
                answer.media.append(video[0])
                continue
        maps = None
        if negotiated is None and media.media == "audio" and media.port != 0:
            maps = media.rtpmaps()  # parsed once for the codec and telephone-event choices
            try:
                accepted = _choose_audio(media, local, maps)
            except OfferAnswerError as error:
                failure = error.reason
        if accepted is None:
            answer.media.append(MediaDescription(media.media, 0, media.proto, media.formats))
            continue
        codec, payload_type, remote_crypto = accepted
        remote_sends, remote_receives = _remote_flags(offer, media)
        wanted_send, wanted_receive = _DIRECTION_FLAGS[direction]
        our_flags = (wanted_send and remote_receives, wanted_receive and remote_sends)
        telephone_event = _telephone_event_payload_type(media, maps) \
            if local.telephone_event else None
        answered = _audio_media(media.proto, local.rtp_port, [(codec, payload_type)],
                                telephone_event, local, _direction_name(our_flags),
                                local.rtcp_mux and media.rtcp_mux)
        srtp = None
        if remote_crypto is not None:
            key_salt = local.key_salt_for(remote_crypto.suite)
            assert key_salt is not None  # _usable_crypto chose one of our suites
            local_crypto = Crypto.inline(remote_crypto.tag, remote_crypto.suite, key_salt[:16],
                                         key_salt[16:])
            answered.add_attribute("crypto", str(local_crypto))
            srtp = _srtp_parameters(remote_crypto, local_crypto)
        answer.media.append(answered)
        negotiated = _negotiated(index, offer, media, codec, payload_type, telephone_event,
                                 srtp, local, our_flags, (remote_sends, remote_receives))
    if negotiated is None:
        raise OfferAnswerError(failure)
    negotiated.video = video[1] if video is not None else None
    return answer, negotiated


def refusing_answer(offer: "SessionDescription", local: "LocalMedia",
                    session_version: int) -> "SessionDescription":
    """RFC 3264 §6: the same m-lines in the same order, each rejected with port 0."""
    answer = _new_description(local, session_version)
    for media in offer.media:
        answer.media.append(MediaDescription(media.media, 0, media.proto, media.formats))
    return answer


def _answer_video(offer: "SessionDescription", media: "MediaDescription", index: int,
                  local: "LocalMedia") -> "tuple[MediaDescription, NegotiatedVideo] | None":
    """An offered m=video: accepted under the audio's SRTP rules, or None (port 0)."""
    assert local.video is not None
    proto_ok = media.proto in (PROTO_RTP, PROTO_SRTP) and \
        not (media.proto == PROTO_SRTP and local.srtp == SRTP_OFF) and \
        not (local.srtp == SRTP_MANDATORY and media.proto != PROTO_SRTP)
    crypto = None
    if proto_ok and local.srtp != SRTP_OFF:
        for candidate in media.cryptos():
            if (local.video.key_salt_for(candidate.suite) is not None and
                    len(candidate.keys) == 1 and candidate.keys[0].mki_value is None and
                    not candidate.session_params):
                crypto = candidate
                break
        if media.proto == PROTO_SRTP and crypto is None:
            proto_ok = False
    return videos.answer_media(offer, media, index, local.video, proto_ok, local.srtp, crypto)


def _answered_srtp(offered: "MediaDescription",
                   answered: "MediaDescription") -> "SrtpParameters | None":
    """SRTP keys from the answer's crypto line that matches one of our offered tags."""
    offered_by_tag = {crypto.tag: crypto for crypto in offered.cryptos()}
    if not offered_by_tag:
        return None  # we offered no SRTP, so any crypto in the answer is meaningless
    if not answered.has_attribute("crypto"):
        if offered.proto == PROTO_SRTP:
            raise OfferAnswerError("RTP/SAVP answered without a crypto attribute")
        return None  # best-effort SDES declined: plain RTP
    for crypto in answered.cryptos():
        ours = offered_by_tag.get(crypto.tag)
        if ours is not None and ours.suite == crypto.suite and crypto.master_key is not None:
            return _srtp_parameters(crypto, ours)
    raise OfferAnswerError("answer's crypto attribute does not match our offer")


def process_answer(offer: "SessionDescription", answer: "SessionDescription",
                   local: "LocalMedia") -> "NegotiatedMedia":
    """RFC 3264 §7: what the answerer accepted of our ``offer``."""
    if len(answer.media) != len(offer.media):
        raise OfferAnswerError("answer has a different number of m-lines than the offer")
    for index, offered in enumerate(offer.media):
        answered = answer.media[index]
        if offered.media != "audio" or offered.port == 0 or answered.port == 0:
            continue
        if answered.media != offered.media or answered.proto != offered.proto:
            raise OfferAnswerError("answer changed the media type or transport")
        codec, payload_type = _answered_codec(offered, answered, local)
        srtp = _answered_srtp(offered, answered)
        telephone_event = None
        if local.telephone_event and _telephone_event_payload_type(offered) is not None:
            telephone_event = _telephone_event_payload_type(answered)
        our_flags = _DIRECTION_FLAGS[offer.direction_of(offered)]
        negotiated = _negotiated(index, answer, answered, codec, payload_type, telephone_event,
                                 srtp, local, our_flags)
        negotiated.video = _answered_video(offer, answer, local)
        return negotiated
    raise OfferAnswerError("answer rejected the audio stream")


def _answered_video(offer: "SessionDescription", answer: "SessionDescription",
                    local: "LocalMedia") -> "NegotiatedVideo | None":
    if local.video is None:
        return None
    for index, offered in enumerate(offer.media):
        if offered.media == "video" and offered.port != 0:
            try:
                return videos.answered(offered, answer, answer.media[index], index, local.video)
            except OfferAnswerError:
                return None  # an unusable video answer: the call goes on without video
    return None


def _answered_codec(offered: "MediaDescription", answered: "MediaDescription",
                    local: "LocalMedia") -> tuple[str, int]:
    """RFC 3264 §7: the answerer's first format that is one of the codecs we offered."""
    for fmt in answered.formats:
        for codec in local.codecs:
            if _carries(answered, fmt, codec) and _payload_type_for(offered, codec) is not None:
                return codec, int(fmt)
    raise OfferAnswerError("answer has no codec we offered")
