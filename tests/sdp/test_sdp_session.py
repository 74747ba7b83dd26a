"""RFC 8866 parsing/serialising, attribute helpers and RFC 4568 crypto attributes."""

import json
import sys

import pytest

from firmware.sdp import session
from firmware.sdp.session import (
    Attribute,
    Connection,
    Crypto,
    InlineKey,
    MediaDescription,
    Origin,
    Rtcp,
    RtpMap,
    SdpParseError,
    SessionDescription,
    parse_ptime,
)
from tests.sdp.sdp_samples import (
    ALL_SAMPLES,
    ASTERISK_OFFER,
    BARESIP_OFFER,
    KEY_A,
    KEY_B,
    RFC8866_EXAMPLE,
    SAVP_OFFER,
    VIDEO_AUDIO_OFFER,
    crlf,
)


@pytest.mark.parametrize("text", ALL_SAMPLES)
def test_samples_round_trip_byte_for_byte(text):
    sd = SessionDescription.parse(text)
    assert str(sd) == text
    assert sd.to_bytes() == text.encode()
    if sys.implementation.name == "cpython":  # MicroPython ignores __bytes__
        assert bytes(sd) == sd.to_bytes()
    assert str(SessionDescription.parse(text.encode())) == text


def test_lf_only_line_ends_are_accepted_and_written_back_as_crlf():
    sd = SessionDescription.parse(ASTERISK_OFFER.replace("\r\n", "\n"))
    assert str(sd) == ASTERISK_OFFER


def test_rfc8866_example_fields():
    sd = SessionDescription.parse(RFC8866_EXAMPLE)
    assert sd.version == 0
    origin = sd.origin
    assert (origin.username, origin.session_id, origin.session_version) == (
        "jdoe", 3724394400, 3724394405)
    assert (origin.nettype, origin.addrtype, origin.address) == ("IN", "IP4", "198.51.100.1")
    assert sd.session_name == "Call to John Smith"
    assert sd.information == "SDP Offer #1"
    assert sd.uri == "http://www.jdoe.example.com/home.html"
    assert sd.emails == ["Jane Doe <jane@jdoe.example.com>"]
    assert sd.phones == ["+1 617 555-6011"]
    assert [(t.start, t.stop) for t in sd.timings] == [(0, 0)]
    assert [(m.media, m.port, m.proto, m.formats) for m in sd.media] == [
        ("audio", 49170, "RTP/AVP", ["0"]),
        ("audio", 49180, "RTP/AVP", ["0"]),
        ("video", 51372, "RTP/AVP", ["99"]),
    ]
    video = sd.media[2]
    assert sd.connection_for(sd.media[0]).address == "198.51.100.1"
    assert (sd.connection_for(video).addrtype, sd.connection_for(video).address) == (
        "IP6", "2001:db8::2")
    assert str(video.rtpmap(99)) == "99 h263-1998/90000"
    assert video.rtpmap(99).clock_rate == 90000


def test_media_level_details_and_attribute_order_are_kept():
    sd = SessionDescription.parse(BARESIP_OFFER)
    audio = sd.media[0]
    assert [a.name for a in audio.attributes] == [
        "rtpmap", "rtpmap", "rtpmap", "fmtp", "sendrecv", "label", "rtcp-rsize", "ssrc",
        "crypto", "crypto", "ptime"]
    assert audio.get_attribute("label") == "1"
    assert audio.get_attribute("rtcp-rsize") is None and audio.has_attribute("rtcp-rsize")
    assert audio.get_attributes("rtpmap") == [
        "0 PCMU/8000", "8 PCMA/8000", "101 telephone-event/8000"]
    assert [(b.bwtype, b.value) for b in audio.bandwidths] == [("AS", 64)]
    assert audio.fmtp(101) == "0-15"
    assert audio.fmtp(0) is None
    assert audio.ptime == 20
    assert audio.direction == "sendrecv"


def test_number_of_ports_repeat_and_zone_lines():
    text = crlf(
        "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s= ", "t=3034423619 3042462419",
        "r=7d 1h 0 25h", "z=2882844526 -1h 2898848070 0", "k=prompt",
        "m=audio 49170/2 RTP/AVP 0", "i=main audio", "k=clear:secret")
    sd = SessionDescription.parse(text)
    assert sd.session_name == " "
    assert sd.timings[0].repeats == ["7d 1h 0 25h"]
    assert sd.zone_adjustments == "2882844526 -1h 2898848070 0"
    assert (sd.media[0].port, sd.media[0].port_count) == (49170, 2)
    assert sd.media[0].information == "main audio" and sd.media[0].key == "clear:secret"
    assert str(sd) == text


def test_missing_timing_is_tolerated_and_written_as_t_0_0():
    sd = SessionDescription.parse("v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nm=audio 4000 RTP/AVP 0\n")
    assert "\r\nt=0 0\r\n" in str(sd)


def test_direction_inherits_from_session_level_and_media_level_wins():
    text = crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=sendonly",
                "m=audio 4000 RTP/AVP 0", "m=audio 4002 RTP/AVP 0", "a=inactive",
                "m=audio 4004 RTP/AVP 0")
    sd = SessionDescription.parse(text)
    assert [sd.direction_of(m) for m in sd.media] == ["sendonly", "inactive", "sendonly"]
    plain = SessionDescription.parse(ASTERISK_OFFER.replace("a=sendrecv\r\n", ""))
    assert plain.direction_of(plain.media[0]) == "sendrecv"


def test_set_direction_replaces_the_existing_one():
    sd = SessionDescription.parse(ASTERISK_OFFER)
    sd.media[0].set_direction("recvonly")
    assert sd.media[0].get_attributes("recvonly") == [None]
    assert not sd.media[0].has_attribute("sendrecv")
    with pytest.raises(ValueError):
        sd.media[0].set_direction("sideways")


def test_remove_and_add_attributes():
    sd = SessionDescription.parse(BARESIP_OFFER)
    sd.media[0].remove_attributes("crypto")
    sd.media[0].add_attribute("rtcp-mux")
    assert "crypto" not in str(sd)
    assert str(sd).endswith("a=ptime:20\r\na=rtcp-mux\r\n")


def test_building_a_description_from_objects():
    media = MediaDescription("audio", 40000, "RTP/AVP", ["0"],
                             attributes=[Attribute("rtpmap", "0 PCMU/8000")])
    sd = SessionDescription(Origin("door", 3, 4, "::1"), "-", Connection("::1"), [media])
    assert str(sd) == crlf("v=0", "o=door 3 4 IN IP6 ::1", "s=-", "c=IN IP6 ::1", "t=0 0",
                           "m=audio 40000 RTP/AVP 0", "a=rtpmap:0 PCMU/8000")


def test_serialising_refuses_line_breaks_inside_values():
    sd = SessionDescription.parse(ASTERISK_OFFER)
    sd.session_name = "x\r\na=injected"
    with pytest.raises(ValueError):
        str(sd)


def test_rtpmap_parse_and_malformed_rtpmaps_are_skipped_by_the_media_helper():
    assert (RtpMap.parse("96 opus/48000/2").encoding, RtpMap.parse("96 opus/48000/2").channels) \
        == ("opus", 2)
    for bad in ("96", "x PCMU/8000", "200 PCMU/8000", "96 PCMU", "96 /8000", "96 PCMU/8k"):
        with pytest.raises(SdpParseError):
            RtpMap.parse(bad)
    media = MediaDescription("audio", 1, "RTP/AVP", ["96", "97"], attributes=[
        Attribute("rtpmap", "96 PCMU"), Attribute("rtpmap", "97 PCMA/8000")])
    assert media.rtpmap(96) is None
    assert str(media.rtpmap(97)) == "97 PCMA/8000"


@pytest.mark.parametrize("value,expected", [("20", 20), ("30", 30), ("20.0", 20), (" 40", 40)])
def test_ptime_values(value, expected):
    assert parse_ptime(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "20ms", "-20", "20.x", None])
def test_bad_ptime_values(value):
    with pytest.raises(SdpParseError):
        parse_ptime(value)
    media = MediaDescription("audio", 1, "RTP/AVP", ["0"], attributes=[
        Attribute("ptime", value), Attribute("maxptime", value)])
    assert media.ptime is None and media.maxptime is None


def test_maxptime():
    assert SessionDescription.parse(ASTERISK_OFFER).media[0].maxptime == 150


def test_rtcp_attribute_rfc3605():
    assert SessionDescription.parse(SAVP_OFFER).media[0].rtcp.port == 10003
    rtcp = Rtcp.parse("53020 IN IP4 127.0.0.9")
    assert (rtcp.port, rtcp.nettype, rtcp.addrtype, rtcp.address) == (
        53020, "IN", "IP4", "127.0.0.9")
    assert str(rtcp) == "53020 IN IP4 127.0.0.9"
    for bad in ("", "port", "70000", "1 IN IP4"):
        with pytest.raises(SdpParseError):
            Rtcp.parse(bad)
    assert SessionDescription.parse(ASTERISK_OFFER).media[0].rtcp is None


def test_rtcp_mux_flag():
    sd = SessionDescription.parse(VIDEO_AUDIO_OFFER)
    assert [m.rtcp_mux for m in sd.media] == [False, True]


def test_crypto_lines_of_a_real_offer():
    cryptos = SessionDescription.parse(BARESIP_OFFER).media[0].cryptos()
    assert [(c.tag, c.suite) for c in cryptos] == [
        (1, "AES_CM_128_HMAC_SHA1_32"), (2, "AES_CM_128_HMAC_SHA1_80")]
    assert cryptos[0].master_key == KEY_A[:16] and cryptos[0].master_salt == KEY_A[16:]
    assert cryptos[1].master_key + cryptos[1].master_salt == KEY_B


def test_crypto_lifetime_and_aes256_split():
    cryptos = SessionDescription.parse(SAVP_OFFER).media[0].cryptos()
    aes256, aes128 = cryptos
    assert len(aes256.master_key) == 32 and len(aes256.master_salt) == 14
    assert aes256.master_key == bytes(range(200, 232))
    assert aes128.keys[0].lifetime == "2^31"
    assert aes128.keys[0].lifetime_packets == 2**31


def test_rfc4568_example_inline_key(vectors):
    example = json.loads((vectors / "srtp" / "srtp_vectors.json").read_text())[
        "rfc4568_sdes_example"]
    sd = SessionDescription.parse(crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0",
                                       "m=audio 4000 RTP/SAVP 0", example["attribute"]))
    (crypto,) = sd.media[0].cryptos()
    assert crypto.tag == example["tag"]
    assert crypto.suite == example["crypto_suite"]
    key = crypto.keys[0]
    assert len(key.key_salt) == example["decoded_length"]
    assert crypto.master_key.hex() == example["master_key_hex"]
    assert crypto.master_salt.hex() == example["master_salt_hex"]
    assert key.lifetime == example["lifetime"]
    assert key.lifetime_packets == example["lifetime_packets"]
    assert (key.mki_value, key.mki_length) == (example["mki_value"], example["mki_length_field"])
    assert "a=crypto:" + str(crypto) == example["attribute"]


def test_inline_key_matching_the_libsrtp_packet_vector(vectors):
    entry = json.loads((vectors / "srtp" / "srtp_vectors.json").read_text())[
        "sdes_inline_for_libsrtp_key"]
    crypto = Crypto.parse(entry["attribute"].partition(":")[2])
    assert crypto.master_key.hex() == entry["master_key_hex"]
    assert crypto.master_salt.hex() == entry["master_salt_hex"]


def test_crypto_building_and_session_params_round_trip():
    built = Crypto.inline(7, "AES_CM_128_HMAC_SHA1_80", KEY_A[:16], KEY_A[16:])
    assert str(built) == "7 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
    value = ("1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^20|1:4;"
             "inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB|2^20|2:4 KDR=1 UNENCRYPTED_SRTCP")
    crypto = Crypto.parse(value)
    assert [k.mki_value for k in crypto.keys] == [1, 2]
    assert crypto.session_params == ["KDR=1", "UNENCRYPTED_SRTCP"]
    assert str(crypto) == value


def test_unpadded_base64_is_accepted():
    key = InlineKey.parse("inline:yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09Q")
    assert key.key_salt == bytes(range(200, 246))


@pytest.mark.parametrize("value", [
    "1 AES_CM_128_HMAC_SHA1_80",
    "x AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
    "1 AES_CM_128_HMAC_SHA1_80 uri:https://127.0.0.1/key",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBk",  # 26 bytes
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQF!gcICQoLDA0ODxAREhMUFRYXGBkaGxwd",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdA",
    "1 AES_CM_128_HMAC_SHA1_80 inline:===",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^x",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|1:0",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|1:4|2^20",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^20|2^20",
    "1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|a|b|c",
])
def test_malformed_crypto_values(value):
    with pytest.raises(SdpParseError):
        Crypto.parse(value)
    media = MediaDescription("audio", 1, "RTP/SAVP", ["0"], attributes=[Attribute("crypto", value)])
    assert media.cryptos() == []


GOOD_HEAD = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "t=0 0"]


@pytest.mark.parametrize("data", [
    "", "\r\n", b"", None, 42, ["v=0"],
    crlf("v=1", *GOOD_HEAD[1:]),
    crlf(*GOOD_HEAD[1:]),
    crlf("v=0", "s=-", "t=0 0"),
    crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "t=0 0"),
    crlf("v=0", "o=- 1 IN IP4 127.0.0.1", "s=-"),
    crlf("v=0", "o=- x 1 IN IP4 127.0.0.1", "s=-"),
    crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "o=- 1 1 IN IP4 127.0.0.1", "s=-"),
    crlf(*GOOD_HEAD, "c=IN IP4"),
    crlf(*GOOD_HEAD, "b=AS"),
    crlf(*GOOD_HEAD, "b=AS:lots"),
    crlf(*GOOD_HEAD, "t=0"),
    crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "r=7d 1h 0"),
    crlf(*GOOD_HEAD, "x=unknown"),
    crlf(*GOOD_HEAD, "garbage"),
    crlf(*GOOD_HEAD, "a="),
    crlf(*GOOD_HEAD, "a=:value"),
    crlf(*GOOD_HEAD, "a=bad name"),
    crlf(*GOOD_HEAD, "m=audio"),
    crlf(*GOOD_HEAD, "m=audio 70000 RTP/AVP 0"),
    crlf(*GOOD_HEAD, "m=audio -1 RTP/AVP 0"),
    crlf(*GOOD_HEAD, "m=audio 4000/ RTP/AVP 0"),
    crlf(*GOOD_HEAD, "m=audio 4000 RTP//AVP 0"),
    crlf(*GOOD_HEAD, "m=audio 4000 RTP/AVP 0", "o=- 1 1 IN IP4 127.0.0.1"),
    crlf(*GOOD_HEAD, "m=audio 4000 RTP/AVP 0", "t=0 0"),
    crlf(*GOOD_HEAD, "m=audio ４０００ RTP/AVP 0"),  # fullwidth digits are not DIGIT
    crlf(*GOOD_HEAD, "a=x\ry"),
    crlf(*GOOD_HEAD, "a=x\x00"),
    crlf(*GOOD_HEAD).encode() + b"a=\xff\xfe\r\n",
    crlf(*GOOD_HEAD, "a=" + "x" * (session.MAX_LINE_LENGTH + 1)),
    crlf(*GOOD_HEAD) + "a=x\r\n" * session.MAX_LINES,
    crlf(*GOOD_HEAD) + "m=audio 1 RTP/AVP 0\r\n" * (session.MAX_MEDIA + 1),
    b"v=0\r\n" + b"a" * session.MAX_SIZE,
])
def test_malformed_descriptions_raise_sdp_parse_error(data):
    with pytest.raises(SdpParseError) as raised:
        SessionDescription.parse(data)
    assert isinstance(raised.value, ValueError) and raised.value.reason


def test_limits_leave_room_for_real_descriptions():
    many = crlf(*GOOD_HEAD) + "m=audio 1 RTP/AVP 0\r\n" * session.MAX_MEDIA
    assert len(SessionDescription.parse(many).media) == session.MAX_MEDIA


def test_reprs_do_not_reveal_key_material():
    crypto = SessionDescription.parse(BARESIP_OFFER).media[0].cryptos()[0]
    assert repr(crypto) == "Crypto(1 AES_CM_128_HMAC_SHA1_32)"
    assert repr(crypto.keys) == "[InlineKey(30 bytes)]"


@pytest.mark.parametrize("smuggled", ["x\r\na=sendonly", "x\na=sendonly", "x\ra=sendonly"])
def test_a_value_with_a_line_break_is_never_written(smuggled):
    sd = SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
    sd.add_attribute("tool", smuggled)
    with pytest.raises(ValueError, match="line break"):
        sd.to_bytes()
