"""The H.264 video stream beside the audio (RFC 6184 §8 for the SDP, RFC 3264 for offer/answer,
RFC 4585 §4.2 / RFC 5104 §7.1 for the feedback we ask for). Portable, sans-I/O.

firmware/sdp/offer_answer.py calls in here for `m=video` lines only; the audio negotiation there
is unchanged, and a peer that offers or answers no video gets an audio-only call as before.

What we offer: `m=video <port> <audio's proto> 96`, `a=rtpmap:96 H264/90000`,
`a=fmtp:96 profile-level-id=42c0LL;packetization-mode=1` (constrained baseline at the level LL
that the configured size, rate and bit rate need, `profile_level_id()`; the encoder is made to
write that level), `a=rtcp-fb:96 nack pli` and `a=rtcp-fb:96 ccm fir`, and the stream's own
SDES key when SRTP is in use (RFC 4568: a key per m-line).

What we accept: the first H.264/90000 payload type with packetization-mode=1 (our packetizer
sends FU-A, which mode 0 forbids) whose profile we can send: constrained baseline is a subset of
every profile, so any profile_idc is fine as long as we answer with the profile the offer
named (RFC 6184 §8.2.2: the answer keeps the offer's profile; the level we send is ours).

Public API
- `LocalVideo(rtp_port, payload_type=96, profile_level_id="42c01f", crypto=())`;
  `profile_level_id(width, height, fps, kbps)`, `level_idc(...)` (H.264 Table A-1).
- `offer_media(local_video, proto, srtp, direction="sendrecv") -> MediaDescription` (srtp: an
  SRTP mode, "off" for none).
- `answer_media(offer, media, index, local_video, proto_ok, srtp) -> (MediaDescription,
  NegotiatedVideo) | None` (None: reject this m-line, port 0).
- `answered(offer_media, answer, answered_media, index, local_video) -> NegotiatedVideo | None`.
- `NegotiatedVideo`: `media_index`, `remote_address`, `remote_port`, `remote_rtcp_address`,
  `remote_rtcp_port`, `rtcp_mux`, `payload_type`, `clock_rate` (90000), `profile_level_id`,
  `sending`, `receiving`, `srtp` (offer_answer.SrtpParameters or None), `pli`, `fir` (the peer
  said it understands them: we may ask it for key frames).
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.sdp.offer_answer import SrtpParameters
    from firmware.sdp.session import Crypto, MediaDescription, SessionDescription

H264 = "H264"
VIDEO_CLOCK = 90000
CONSTRAINED_BASELINE = "42c0"  # profile_idc 66, constraint_set0 and set1 (what libx264 writes)
DEFAULT_PROFILE_LEVEL_ID = CONSTRAINED_BASELINE + "1f"

# H.264 Table A-1: (level_idc, MaxMBPS macroblocks/s, MaxFS macroblocks, MaxBR kbit/s baseline)
LEVELS = ((10, 1485, 99, 64), (11, 3000, 396, 192), (12, 6000, 396, 384),
          (13, 11880, 396, 768), (20, 11880, 396, 2000), (21, 19800, 792, 4000),
          (22, 20250, 1620, 4000), (30, 40500, 1620, 10000), (31, 108000, 3600, 14000),
          (32, 216000, 5120, 20000), (40, 245760, 8192, 20000))


def level_idc(width: int, height: int, fps: int, kbps: int) -> int:
    """The lowest H.264 level (Table A-1) whose frame size, macroblock rate and bit rate hold
    `width` x `height` at `fps` and `kbps`; the encoder is told to write it into its SPS, so
    the SDP says what the stream really is."""
    frame = ((width + 15) // 16) * ((height + 15) // 16)
    for level, max_mbps, max_fs, max_kbps in LEVELS:
        if frame <= max_fs and frame * fps <= max_mbps and kbps <= max_kbps:
            return level
    return LEVELS[-1][0]


def profile_level_id(width: int, height: int, fps: int, kbps: int) -> str:
    """`profile-level-id` (RFC 6184 §8.1) of our constrained baseline stream."""
    return CONSTRAINED_BASELINE + "%02x" % level_idc(width, height, fps, kbps)


class LocalVideo:
    def __init__(self, rtp_port: int, payload_type: int = 96,
                 profile_level_id: str = DEFAULT_PROFILE_LEVEL_ID,
                 crypto: "list[tuple[str, bytes]] | tuple[tuple[str, bytes], ...]" = ()) -> None:
        if not 0 < rtp_port < 65536:
            raise ValueError("video rtp_port out of range")
        if not 96 <= payload_type <= 127:
            raise ValueError("H.264 needs a dynamic payload type (96-127)")
        if len(profile_level_id) != 6 or not _is_hex(profile_level_id):
            raise ValueError("profile-level-id is six hex digits")
        self.rtp_port = rtp_port
        self.payload_type = payload_type
        self.profile_level_id = profile_level_id.lower()
        self.crypto = [(suite, bytes(key_salt)) for suite, key_salt in crypto]

    def key_salt_for(self, suite: str) -> "bytes | None":
        for our_suite, key_salt in self.crypto:
            if our_suite == suite:
                return key_salt
        return None


class NegotiatedVideo:
    def __init__(self, media_index: int, remote_address: str, remote_port: int,
                 remote_rtcp_address: str, remote_rtcp_port: int, rtcp_mux: bool,
                 payload_type: int, profile_level_id: str, sending: bool, receiving: bool,
                 srtp: "SrtpParameters | None", pli: bool, fir: bool) -> None:
        self.media_index = media_index
        self.remote_address = remote_address
        self.remote_port = remote_port
        self.remote_rtcp_address = remote_rtcp_address
        self.remote_rtcp_port = remote_rtcp_port
        self.rtcp_mux = rtcp_mux
        self.payload_type = payload_type
        self.clock_rate = VIDEO_CLOCK
        self.profile_level_id = profile_level_id
        self.sending = sending
        self.receiving = receiving
        self.srtp = srtp
        self.pli = pli
        self.fir = fir

    def __repr__(self) -> str:
        return "NegotiatedVideo(H264/%d -> %s:%d send=%s recv=%s srtp=%r)" % (
            self.payload_type, self.remote_address, self.remote_port, self.sending,
            self.receiving, self.srtp)


def _is_hex(text: str) -> bool:
    for char in text:
        if char not in "0123456789abcdefABCDEF":
            return False
    return True


def fmtp_params(text: "str | None") -> "dict[str, str]":
    """`a=fmtp` parameters (after the payload type) as lower-case names → values."""
    params = {}
    for part in (text or "").split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            params[name.strip().lower()] = value.strip()
    return params


def _fmtp_value(profile_level_id: str) -> str:
    return "profile-level-id=%s;packetization-mode=1" % profile_level_id


def offer_media(local: "LocalVideo", proto: str, srtp: str,
                direction: str = "sendrecv") -> "MediaDescription":
    from firmware.sdp.session import Crypto, MediaDescription

    pt = local.payload_type
    media = MediaDescription("video", local.rtp_port, proto, [str(pt)])
    media.add_attribute("rtpmap", "%d %s/%d" % (pt, H264, VIDEO_CLOCK))
    media.add_attribute("fmtp", "%d %s" % (pt, _fmtp_value(local.profile_level_id)))
    media.add_attribute("rtcp-fb", "%d nack pli" % pt)
    media.add_attribute("rtcp-fb", "%d ccm fir" % pt)
    if srtp != "off":
        for tag, (suite, key_salt) in enumerate(local.crypto, 1):
            media.add_attribute("crypto", str(Crypto.inline(tag, suite, key_salt[:16],
                                                            key_salt[16:])))
    media.set_direction(direction)  # a hold holds the video too
    return media


def _h264_payload_type(media: "MediaDescription") -> "tuple[int, str] | None":
    """(payload type, profile-level-id) of the first usable H.264 format."""
    for fmt in media.formats:
        if not fmt.isdigit() or int(fmt) > 127:
            continue
        mapping = media.rtpmap(int(fmt))
        if mapping is None or mapping.encoding.upper() != H264 or \
                mapping.clock_rate != VIDEO_CLOCK:
            continue
        params = fmtp_params(media.fmtp(int(fmt)))
        if params.get("packetization-mode", "0") != "1":
            continue
        profile = params.get("profile-level-id", "42000a")
        if len(profile) != 6 or not _is_hex(profile):
            continue
        return int(fmt), profile.lower()
    return None


def _feedback(media: "MediaDescription", pt: int) -> "tuple[bool, bool]":
    pli = fir = False
    for value in media.get_attributes("rtcp-fb"):
        fields = (value or "").split()
        if len(fields) < 2 or fields[0] not in (str(pt), "*"):
            continue
        if fields[1:] == ["nack", "pli"]:
            pli = True
        elif fields[1:] == ["ccm", "fir"]:
            fir = True
    return pli, fir


def _rtcp_of(remote: "SessionDescription", media: "MediaDescription",
             mux: bool) -> "tuple[str, str, int] | None":
    connection = remote.connection_for(media)
    if connection is None:
        return None
    rtcp = media.rtcp
    if mux:
        return connection.address, connection.address, media.port
    if rtcp is not None:
        return connection.address, rtcp.address or connection.address, rtcp.port
    return connection.address, connection.address, media.port + 1


def _flags(remote: "SessionDescription", media: "MediaDescription") -> "tuple[bool, bool]":
    """(we send, we receive) against the remote's direction."""
    direction = remote.direction_of(media)
    remote_sends = direction in ("sendrecv", "sendonly")
    remote_receives = direction in ("sendrecv", "recvonly")
    connection = remote.connection_for(media)
    if connection is None or connection.address == "0.0.0.0":
        remote_receives = False
    return remote_receives, remote_sends


def answer_media(offer: "SessionDescription", media: "MediaDescription", index: int,
                 local: "LocalVideo", proto_ok: bool, srtp: str,
                 crypto: "Crypto | None"
                 ) -> "tuple[MediaDescription, NegotiatedVideo] | None":
    """Our answer to an offered m=video, or None to reject it (port 0). `proto_ok`: the
    offer's transport is one the audio negotiation accepts; `crypto`: the offered crypto line
    to use (offer_answer picks it as for audio), None for plain RTP."""
    from firmware.sdp.offer_answer import _srtp_parameters
    from firmware.sdp.session import Crypto, MediaDescription

    if not proto_ok or media.port == 0:
        return None
    chosen = _h264_payload_type(media)
    if chosen is None:
        return None
    pt, profile = chosen
    addresses = _rtcp_of(offer, media, False)
    if addresses is None:
        return None
    our_profile = profile[:2] + local.profile_level_id[2:]  # their profile, our level
    answered = MediaDescription("video", local.rtp_port, media.proto, [str(pt)])
    answered.add_attribute("rtpmap", "%d %s/%d" % (pt, H264, VIDEO_CLOCK))
    answered.add_attribute("fmtp", "%d %s" % (pt, _fmtp_value(our_profile)))
    pli, fir = _feedback(media, pt)
    if pli:
        answered.add_attribute("rtcp-fb", "%d nack pli" % pt)
    if fir:
        answered.add_attribute("rtcp-fb", "%d ccm fir" % pt)
    srtp_params = None
    if crypto is not None:
        key_salt = local.key_salt_for(crypto.suite)
        if key_salt is None:
            return None
        ours = Crypto.inline(crypto.tag, crypto.suite, key_salt[:16], key_salt[16:])
        answered.add_attribute("crypto", str(ours))
        srtp_params = _srtp_parameters(crypto, ours)
    elif srtp == "mandatory":
        return None
    sending, receiving = _flags(offer, media)
    answered.set_direction({(True, True): "sendrecv", (True, False): "sendonly",
                            (False, True): "recvonly", (False, False): "inactive"}[
                                (sending, receiving)])
    address, rtcp_address, rtcp_port = addresses
    return answered, NegotiatedVideo(index, address, media.port, rtcp_address, rtcp_port,
                                     False, pt, our_profile, sending, receiving, srtp_params,
                                     pli, fir)


def answered(offered: "MediaDescription", answer: "SessionDescription",
             media: "MediaDescription", index: int, local: "LocalVideo"
             ) -> "NegotiatedVideo | None":
    """What the answerer accepted of our m=video (None: rejected or unusable)."""
    from firmware.sdp.offer_answer import _answered_srtp

    if media.port == 0 or media.media != "video" or media.proto != offered.proto:
        return None
    chosen = _h264_payload_type(media)
    if chosen is None or chosen[0] != local.payload_type:
        return None
    addresses = _rtcp_of(answer, media, False)
    if addresses is None:
        return None
    srtp = _answered_srtp(offered, media)
    sending, receiving = _flags(answer, media)
    pli, fir = _feedback(media, chosen[0])
    address, rtcp_address, rtcp_port = addresses
    return NegotiatedVideo(index, address, media.port, rtcp_address, rtcp_port, False,
                           chosen[0], chosen[1], sending, receiving, srtp, pli, fir)
