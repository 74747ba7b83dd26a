"""Mutated SDP never makes the parser raise anything but SdpParseError, what it accepts
re-serialises stably, and offer/answer on it fails only with OfferAnswerError."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.sdp import LocalMedia, OfferAnswerError, SdpParseError, SessionDescription
from firmware.sdp.offer_answer import create_answer, process_answer
from firmware.sdp.session import DIRECTIONS, Crypto, RtpMap
from tests.sdp.sdp_samples import ALL_SAMPLES

LOCALS = [
    LocalMedia("127.0.0.1", 40000, srtp=mode, rtcp_mux=True,
               crypto=[("AES_CM_128_HMAC_SHA1_80", bytes(range(30)))] if mode != "off" else ())
    for mode in ("off", "optional", "mandatory")
]

# Pieces that tend to land on parser edge cases.
FRAGMENTS = ["=", ":", "/", " ", "\r", "\n", "\r\n", "\x00", "0", "65536", "-1", "m=", "a=",
             "c=IN IP4 ", "inline:", "|", "2^", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 ", "\u00e9",
             "\u2028", "\udcff", "rtpmap:", "fmtp:", "RTP/SAVP", "t=", "v=0", "o="]


@st.composite
def mutated_sdp(draw):
    lines = draw(st.sampled_from(ALL_SAMPLES)).split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        operation = draw(st.sampled_from(["insert", "delete", "replace", "duplicate", "drop",
                                          "swap", "truncate"]))
        position = draw(st.integers(0, len(line)))
        piece = draw(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)))
        if operation == "insert":
            lines[index] = line[:position] + piece + line[position:]
        elif operation == "delete":
            lines[index] = line[:position] + line[position + draw(st.integers(1, 5)):]
        elif operation == "replace":
            lines[index] = line[:2] + piece
        elif operation == "duplicate":
            lines.insert(index, line)
        elif operation == "drop" and len(lines) > 1:
            del lines[index]
        elif operation == "swap":
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
        else:
            lines[index] = line[:position]
    text = draw(st.sampled_from(["\r\n", "\n"])).join(lines)
    if draw(st.booleans()):
        return text.encode("utf-8", "surrogatepass")  # lone surrogates make invalid UTF-8
    return text


def check_helpers(sd):
    """The helpers on an accepted description return consistent values, never raise."""
    for media in sd.media:
        for mapping in media.rtpmaps():
            assert str(RtpMap.parse(str(mapping))) == str(mapping)
        for crypto in media.cryptos():
            assert str(Crypto.parse(str(crypto))) == str(crypto)
            if crypto.master_key is not None:
                assert crypto.master_key + crypto.master_salt == crypto.keys[0].key_salt
            assert all((key.lifetime_packets or 0) >= 0 for key in crypto.keys)
        assert (media.ptime or 0) >= 0 and (media.maxptime or 0) >= 0
        assert media.rtcp is None or 0 <= media.rtcp.port <= 65535
        assert sd.direction_of(media) in DIRECTIONS
        media.fmtp(0)
        sd.connection_for(media)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_sdp())
def test_mutated_sdp_only_ever_raises_sdp_parse_error(data):
    try:
        sd = SessionDescription.parse(data)
    except SdpParseError:
        return
    text = str(sd)
    assert str(SessionDescription.parse(sd.to_bytes())) == text
    check_helpers(sd)
    for local in LOCALS:
        try:
            answer, _ = create_answer(sd, local, 1)
        except OfferAnswerError:
            continue
        assert str(SessionDescription.parse(answer.to_bytes())) == str(answer)
        try:
            process_answer(sd, sd, local)  # a nonsense answer must still fail cleanly
        except OfferAnswerError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_only_ever_raise_sdp_parse_error(data):
    try:
        SessionDescription.parse(b"v=0\r\n" + data)
    except SdpParseError:
        pass
