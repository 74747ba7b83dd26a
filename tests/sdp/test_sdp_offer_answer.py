"""RFC 3264 offer/answer: codec choice, SRTP policy, m-line bookkeeping, directions and hold."""

import pytest

from firmware.sdp import (
    LocalMedia,
    OfferAnswerError,
    SessionDescription,
    create_answer,
    create_offer,
    process_answer,
    signalling_srtp,
)
from firmware.sdp.session import Crypto
from tests.sdp.sdp_samples import (
    ASTERISK_OFFER,
    BARESIP_OFFER,
    G729_ONLY_OFFER,
    KEY_A,
    KEY_B,
    PORT_ZERO_OFFER,
    SAVP_OFFER,
    VIDEO_AUDIO_OFFER,
    crlf,
)

SUITE_80 = "AES_CM_128_HMAC_SHA1_80"
SUITE_32 = "AES_CM_128_HMAC_SHA1_32"
OUR_KEY_80 = bytes(range(50, 80))
OUR_KEY_32 = bytes(range(150, 180))


def door(srtp="off", **options):
    crypto = [(SUITE_80, OUR_KEY_80), (SUITE_32, OUR_KEY_32)] if srtp != "off" else ()
    return LocalMedia("127.0.0.1", 40000, srtp=srtp, crypto=crypto, session_id=77, **options)


def flat(srtp="off", **options):
    crypto = [(SUITE_80, KEY_A), (SUITE_32, KEY_B)] if srtp != "off" else ()
    return LocalMedia("127.0.0.2", 41000, srtp=srtp, crypto=crypto, username="flat1",
                      session_id=5, **options)


def parse(text):
    return SessionDescription.parse(text)


def wire(sd):
    """Through bytes, as it would travel in a SIP body."""
    return SessionDescription.parse(sd.to_bytes())


def answer_to(text, local, direction="sendrecv"):
    return create_answer(parse(text), local, 1, direction)


# --- offers -------------------------------------------------------------------------------------

def test_plain_offer():
    offer = create_offer(door(), 3)
    assert str(offer) == crlf(
        "v=0", "o=doorline 77 3 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        "m=audio 40000 RTP/AVP 0 8 101", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")


def test_offer_follows_codec_preference_and_telephone_event_settings():
    offer = create_offer(door(codecs=["PCMA"], telephone_event=False, ptime=30), 1)
    audio = offer.media[0]
    assert audio.formats == ["8"]
    assert audio.ptime == 30
    offer = create_offer(door(codecs=["pcma", "PCMU"], telephone_event_payload_type=120), 1)
    assert offer.media[0].formats == ["8", "0", "120"]
    assert offer.media[0].rtpmap(120).encoding == "telephone-event"


def test_mandatory_srtp_offer_is_savp_with_our_keys():
    audio = wire(create_offer(door("mandatory"), 1)).media[0]
    assert audio.proto == "RTP/SAVP"
    cryptos = audio.cryptos()
    assert [(c.tag, c.suite) for c in cryptos] == [(1, SUITE_80), (2, SUITE_32)]
    assert cryptos[0].master_key + cryptos[0].master_salt == OUR_KEY_80
    assert cryptos[1].master_key + cryptos[1].master_salt == OUR_KEY_32


def test_optional_srtp_offer_is_best_effort_avp_with_crypto():
    audio = create_offer(door("optional"), 1).media[0]
    assert audio.proto == "RTP/AVP"
    assert len(audio.cryptos()) == 2


def test_offer_with_rtcp_mux_and_ipv6():
    local = LocalMedia("::1", 40000, rtcp_mux=True)
    offer = wire(create_offer(local, 1, direction="inactive"))
    assert offer.connection.addrtype == "IP6" and offer.origin.addrtype == "IP6"
    assert offer.media[0].rtcp_mux
    assert offer.direction_of(offer.media[0]) == "inactive"


@pytest.mark.parametrize("options", [
    {"codecs": []}, {"codecs": ["G729"]}, {"telephone_event_payload_type": 8},
    {"srtp": "sometimes"}, {"srtp": "mandatory"},
    {"srtp": "optional", "crypto": [("AES_256_CM_HMAC_SHA1_80", bytes(46))]},
    {"srtp": "optional", "crypto": [(SUITE_80, bytes(29))]},
])
def test_local_media_validation(options):
    with pytest.raises(ValueError):
        LocalMedia("127.0.0.1", 40000, **options)
    with pytest.raises(ValueError):
        LocalMedia("127.0.0.1", 0)


# --- answers to real-world offers ----------------------------------------------------------------

def test_answer_to_asterisk_uses_our_first_codec_and_their_event_type():
    answer, media = answer_to(ASTERISK_OFFER, door())
    assert (media.codec, media.payload_type) == ("PCMU", 0)  # ours first, though they prefer 8
    assert media.telephone_event_payload_type == 101
    assert (media.remote_address, media.remote_port) == ("127.0.0.1", 17080)
    assert (media.remote_rtcp_address, media.remote_rtcp_port) == ("127.0.0.1", 17081)
    assert media.srtp is None and not media.rtcp_mux
    assert media.ptime == 20 and media.clock_rate == 8000
    assert (media.sending, media.receiving, media.direction) == (True, True, "sendrecv")
    assert str(answer) == crlf(
        "v=0", "o=doorline 77 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        "m=audio 40000 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:101 telephone-event/8000", "a=fmtp:101 0-15", "a=ptime:20", "a=sendrecv")


def test_answer_prefers_pcma_when_we_do():
    _, media = answer_to(ASTERISK_OFFER, door(codecs=["PCMA", "PCMU"]))
    assert (media.codec, media.payload_type) == ("PCMA", 8)


def test_without_telephone_event_locally_none_is_answered():
    answer, media = answer_to(ASTERISK_OFFER, door(telephone_event=False))
    assert media.telephone_event_payload_type is None
    assert answer.media[0].formats == ["0"]


def test_dynamic_payload_type_matched_by_name_and_clock_rate():
    offer = crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
                 "m=audio 5000 RTP/AVP 112 0 97", "a=rtpmap:112 pcmu/8000",
                 "a=rtpmap:0 PCMU/16000", "a=rtpmap:97 telephone-event/8000")
    answer, media = answer_to(offer, door())
    assert (media.codec, media.payload_type, media.telephone_event_payload_type) == (
        "PCMU", 112, 97)
    assert answer.media[0].formats == ["112", "97"]
    assert str(answer.media[0].rtpmap(112)) == "112 PCMU/8000"


def test_static_number_with_a_different_rtpmap_is_not_that_codec():
    offer = crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
                 "m=audio 5000 RTP/AVP 0", "a=rtpmap:0 PCMU/16000")
    with pytest.raises(OfferAnswerError):
        answer_to(offer, door())


def test_unknown_codec_only_gives_488():
    with pytest.raises(OfferAnswerError) as raised:
        answer_to(G729_ONLY_OFFER, door())
    assert raised.value.status == 488
    assert "codec" in raised.value.reason


def test_video_and_audio_offer_keeps_m_line_count_and_order():
    answer, media = answer_to(VIDEO_AUDIO_OFFER, door(rtcp_mux=True))
    assert [(m.media, m.port, m.proto) for m in answer.media] == [
        ("video", 0, "RTP/AVP"), ("audio", 40000, "RTP/AVP")]
    assert answer.media[0].formats == ["97"] and answer.media[0].attributes == []
    assert media.media_index == 1
    assert (media.codec, media.remote_port) == ("PCMU", 7078)
    assert media.rtcp_mux and media.remote_rtcp_port == 7078
    assert answer.media[1].rtcp_mux
    assert wire(answer).media[1].formats == ["0", "101"]


def test_rtcp_mux_needs_both_sides():
    answer, media = answer_to(VIDEO_AUDIO_OFFER, door())
    assert not media.rtcp_mux and media.remote_rtcp_port == 7079
    assert not answer.media[1].rtcp_mux
    answer, media = answer_to(ASTERISK_OFFER, door(rtcp_mux=True))
    assert not media.rtcp_mux and not answer.media[0].rtcp_mux


def test_port_zero_stream_stays_rejected_and_media_level_connection_is_used():
    answer, media = answer_to(PORT_ZERO_OFFER, door())
    assert [m.port for m in answer.media] == [0, 40000]
    assert media.media_index == 1
    assert (media.remote_address, media.remote_port, media.codec) == ("127.0.0.3", 30002, "PCMA")


def test_all_streams_disabled_gives_488():
    with pytest.raises(OfferAnswerError) as raised:
        answer_to(PORT_ZERO_OFFER.replace("30002", "0"), door())
    assert raised.value.status == 488


def test_only_the_first_usable_audio_stream_is_accepted():
    offer = crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
                 "m=audio 5000 RTP/AVP 18", "m=audio 5002 RTP/AVP 0", "m=audio 5004 RTP/AVP 8")
    answer, media = answer_to(offer, door())
    assert [m.port for m in answer.media] == [0, 40000, 0]
    assert (media.media_index, media.remote_port) == (1, 5002)


def test_unsupported_transport_is_rejected():
    offer = ASTERISK_OFFER.replace("RTP/AVP", "UDP/TLS/RTP/SAVPF")
    with pytest.raises(OfferAnswerError):
        answer_to(offer, door("optional"))


def test_offer_without_any_connection_address_is_refused():
    offer = ASTERISK_OFFER.replace("c=IN IP4 127.0.0.1\r\n", "")
    with pytest.raises(OfferAnswerError):
        answer_to(offer, door())


def test_remote_ptime_is_used_and_capped_by_maxptime():
    _, media = answer_to(ASTERISK_OFFER.replace("a=ptime:20", "a=ptime:30"), door())
    assert media.ptime == 30
    text = ASTERISK_OFFER.replace("a=ptime:20", "a=ptime:40").replace("maxptime:150", "maxptime:30")
    assert answer_to(text, door())[1].ptime == 30
    assert answer_to(ASTERISK_OFFER.replace("a=ptime:20", "a=ptime:1000"), door())[1].ptime == 20


# --- SRTP policy ------------------------------------------------------------------------------

def test_best_effort_sdes_offer_with_optional_srtp():
    answer, media = answer_to(BARESIP_OFFER, door("optional"))
    audio = answer.media[0]
    assert audio.proto == "RTP/AVP"
    (crypto,) = audio.cryptos()
    assert (crypto.tag, crypto.suite) == (1, SUITE_32)  # the offerer's first choice
    assert crypto.master_key + crypto.master_salt == OUR_KEY_32
    srtp = media.srtp
    assert srtp.suite == SUITE_32
    assert (srtp.remote_key, srtp.remote_salt) == (KEY_A[:16], KEY_A[16:])
    assert (srtp.local_key, srtp.local_salt) == (OUR_KEY_32[:16], OUR_KEY_32[16:])


def test_answer_uses_the_offerers_first_suite_that_we_support():
    local = LocalMedia("127.0.0.1", 40000, srtp="optional", crypto=[(SUITE_80, OUR_KEY_80)])
    answer, media = answer_to(BARESIP_OFFER, local)
    assert (answer.media[0].cryptos()[0].tag, media.srtp.suite) == (2, SUITE_80)
    assert media.srtp.remote_key + media.srtp.remote_salt == KEY_B


def test_best_effort_sdes_offer_with_srtp_off_gives_plain_rtp():
    answer, media = answer_to(BARESIP_OFFER, door("off"))
    assert media.srtp is None
    assert not answer.media[0].has_attribute("crypto")


def test_best_effort_sdes_offer_with_mandatory_srtp_is_refused():
    with pytest.raises(OfferAnswerError) as raised:
        answer_to(BARESIP_OFFER, door("mandatory"))
    assert raised.value.status == 488


# SDES keys only over TLS unless `[media] srtp_requires_tls = false` (issue 12).

def keys_over(mode, secure, requires_tls=True):
    chosen = signalling_srtp(mode, secure, requires_tls)
    return door(chosen)


def test_optional_srtp_over_plain_signalling_offers_plain_rtp_without_keys():
    offer = create_offer(keys_over("optional", secure=False), 1)
    assert offer.media[0].proto == "RTP/AVP"
    assert not offer.media[0].has_attribute("crypto") and b"a=crypto" not in offer.to_bytes()


def test_optional_srtp_over_plain_signalling_answers_plain_rtp_without_keys():
    answer, media = answer_to(BARESIP_OFFER, keys_over("optional", secure=False))
    assert answer.media[0].proto == "RTP/AVP" and media.srtp is None
    assert b"a=crypto" not in answer.to_bytes()
    with pytest.raises(OfferAnswerError) as raised:  # RTP/SAVP needs keys: 488, not keys
        answer_to(SAVP_OFFER, keys_over("optional", secure=False))
    assert raised.value.status == 488


def test_keys_travel_over_tls_or_when_explicitly_allowed():
    for secure, requires_tls in ((True, True), (False, False)):
        offer = create_offer(keys_over("optional", secure, requires_tls), 1)
        assert offer.media[0].has_attribute("crypto")
        answer, media = answer_to(BARESIP_OFFER, keys_over("optional", secure, requires_tls))
        assert media.srtp is not None and answer.media[0].has_attribute("crypto")
    assert signalling_srtp("mandatory", True) == "mandatory"
    assert signalling_srtp("off", False) == "off"


def test_mandatory_srtp_over_plain_signalling_is_refused():
    with pytest.raises(OfferAnswerError) as raised:
        signalling_srtp("mandatory", False)
    assert raised.value.status == 488 and "srtp_requires_tls" in raised.value.reason
    assert signalling_srtp("mandatory", False, requires_tls=False) == "mandatory"
    with pytest.raises(ValueError):
        signalling_srtp("sometimes", True)


@pytest.mark.parametrize("mode", ["optional", "mandatory"])
def test_savp_offer_accepted_with_a_supported_suite(mode):
    answer, media = answer_to(SAVP_OFFER, door(mode))
    audio = answer.media[0]
    assert audio.proto == "RTP/SAVP"
    (crypto,) = audio.cryptos()
    assert (crypto.tag, crypto.suite) == (2, SUITE_80)  # the AES-256 line is skipped
    assert media.srtp.remote_key + media.srtp.remote_salt == KEY_B
    assert media.srtp.local_key + media.srtp.local_salt == OUR_KEY_80
    assert media.remote_rtcp_port == 10003


def test_savp_offer_refused_when_srtp_is_off():
    with pytest.raises(OfferAnswerError) as raised:
        answer_to(SAVP_OFFER, door("off"))
    assert raised.value.status == 488


@pytest.mark.parametrize("crypto_line", [
    "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:"
    "yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09Q==",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd|2^20|1:4",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd "
    "UNENCRYPTED_SRTP",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:not-base64",
])
def test_savp_offer_without_a_usable_crypto_is_refused(crypto_line):
    offer = crlf("v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
                 "m=audio 5000 RTP/SAVP 0", crypto_line)
    with pytest.raises(OfferAnswerError):
        answer_to(offer, door("mandatory"))


def test_offer_and_answer_between_two_of_us_share_keys():
    us, them = door("optional", codecs=["PCMA", "PCMU"]), flat("mandatory")
    offer = create_offer(us, 1)
    with pytest.raises(OfferAnswerError):
        create_answer(wire(offer), them, 1)  # AVP offer, they insist on SAVP
    offer = create_offer(door("mandatory"), 1)
    answer, theirs = create_answer(wire(offer), them, 1)
    ours = process_answer(offer, wire(answer), door("mandatory"))
    assert (ours.codec, theirs.codec) == ("PCMU", "PCMU")
    assert ours.srtp.suite == theirs.srtp.suite == SUITE_80
    assert (ours.srtp.local_key, ours.srtp.local_salt) == (
        theirs.srtp.remote_key, theirs.srtp.remote_salt)
    assert (ours.srtp.remote_key, ours.srtp.remote_salt) == (
        theirs.srtp.local_key, theirs.srtp.local_salt)
    assert (ours.remote_address, ours.remote_port) == ("127.0.0.2", 41000)
    assert (theirs.remote_address, theirs.remote_port) == ("127.0.0.1", 40000)


def test_optional_offer_answered_without_crypto_is_plain_rtp():
    offer = create_offer(door("optional"), 1)
    answer, _ = create_answer(wire(offer), flat("off"), 1)
    assert process_answer(offer, wire(answer), door("optional")).srtp is None


# --- process_answer errors ---------------------------------------------------------------------

def _offer_and_answer(local=None, remote=None):
    local = local or door()
    offer = create_offer(local, 1)
    answer, _ = create_answer(wire(offer), remote or flat(), 1)
    return offer, answer, local


def test_answer_must_keep_the_m_line_count():
    offer, answer, local = _offer_and_answer()
    answer.media.append(answer.media[0])
    with pytest.raises(OfferAnswerError):
        process_answer(offer, answer, local)


def test_answer_rejecting_our_audio():
    offer, answer, local = _offer_and_answer()
    answer.media[0].port = 0
    with pytest.raises(OfferAnswerError):
        process_answer(offer, answer, local)


def test_answer_changing_transport_or_codec():
    offer, answer, local = _offer_and_answer()
    answer.media[0].proto = "RTP/SAVP"
    with pytest.raises(OfferAnswerError):
        process_answer(offer, answer, local)
    offer, answer, local = _offer_and_answer(local=door(codecs=["PCMA"]))
    answer.media[0].formats = ["0"]
    answer.media[0].remove_attributes("rtpmap")
    with pytest.raises(OfferAnswerError):
        process_answer(offer, answer, local)


def test_answer_with_the_answerers_preferred_codec_first():
    offer, answer, local = _offer_and_answer()
    answer.media[0].formats = ["8", "0", "101"]
    media = process_answer(offer, answer, local)
    assert (media.codec, media.payload_type, media.telephone_event_payload_type) == ("PCMA", 8, 101)


def test_savp_answer_without_crypto_or_with_a_wrong_tag():
    offer, answer, local = _offer_and_answer(door("mandatory"), flat("mandatory"))
    assert process_answer(offer, answer, local).srtp.suite == SUITE_80
    crypto = answer.media[0].cryptos()[0]
    answer.media[0].remove_attributes("crypto")
    with pytest.raises(OfferAnswerError):
        process_answer(offer, answer, local)
    answer.media[0].add_attribute("crypto", str(Crypto(9, crypto.suite, crypto.keys)))
    with pytest.raises(OfferAnswerError):
        process_answer(offer, answer, local)
    answer.media[0].remove_attributes("crypto")
    answer.media[0].add_attribute("crypto", str(Crypto(1, SUITE_32, crypto.keys)))
    with pytest.raises(OfferAnswerError):
        process_answer(offer, answer, local)


def test_answer_rtcp_attribute_with_its_own_address():
    offer, answer, local = _offer_and_answer()
    answer.media[0].add_attribute("rtcp", "41011 IN IP4 127.0.0.4")
    media = process_answer(offer, wire(answer), local)
    assert (media.remote_rtcp_address, media.remote_rtcp_port) == ("127.0.0.4", 41011)


# --- directions and hold ----------------------------------------------------------------------

# RFC 3264 §6.1: the offer's direction limits ours; written out by hand, not computed.
DIRECTION_MATRIX = [
    # offer,      we want,    answer,     we send, we receive
    ("sendrecv", "sendrecv", "sendrecv", True, True),
    ("sendrecv", "sendonly", "sendonly", True, False),
    ("sendrecv", "recvonly", "recvonly", False, True),
    ("sendrecv", "inactive", "inactive", False, False),
    ("sendonly", "sendrecv", "recvonly", False, True),
    ("sendonly", "sendonly", "inactive", False, False),
    ("sendonly", "recvonly", "recvonly", False, True),
    ("recvonly", "sendrecv", "sendonly", True, False),
    ("recvonly", "recvonly", "inactive", False, False),
    ("recvonly", "sendonly", "sendonly", True, False),
    ("inactive", "sendrecv", "inactive", False, False),
    ("inactive", "sendonly", "inactive", False, False),
]


@pytest.mark.parametrize("offered,wanted,answered,sending,receiving", DIRECTION_MATRIX)
def test_direction_matrix(offered, wanted, answered, sending, receiving):
    offer = create_offer(flat(), 2, direction=offered)
    answer, media = create_answer(wire(offer), door(), 1, direction=wanted)
    assert wire(answer).direction_of(answer.media[0]) == answered
    assert (media.sending, media.receiving, media.direction) == (sending, receiving, answered)
    # And the offerer reads the mirror image from the answer.
    theirs = process_answer(offer, wire(answer), flat())
    assert (theirs.sending, theirs.receiving) == (receiving, sending)


def test_legacy_hold_with_zero_address_means_do_not_send():
    held = ASTERISK_OFFER.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0")
    answer, media = answer_to(held, door())
    assert (media.sending, media.receiving) == (False, True)
    assert answer.direction_of(answer.media[0]) == "recvonly"
    assert media.remote_address == "0.0.0.0"


def test_remote_puts_us_on_hold_and_resumes():
    us, phone = door(), flat()
    offer = create_offer(phone, 1)
    _, media = create_answer(wire(offer), us, 1)
    assert media.direction == "sendrecv"
    hold = create_offer(phone, 2, direction="sendonly")
    answer, media = create_answer(wire(hold), us, 2)
    assert (media.sending, media.receiving) == (False, True)
    assert answer.media[0].direction == "recvonly"
    assert hold.origin.session_version == 2 and answer.origin.session_version == 2
    _, media = create_answer(wire(create_offer(phone, 3, direction="inactive")), us, 3)
    assert media.direction == "inactive"
    _, media = create_answer(wire(create_offer(phone, 4)), us, 4)
    assert media.direction == "sendrecv"


def test_we_put_the_remote_on_hold_and_resume():
    us, phone = door(), flat()
    steps = [("sendonly", "recvonly", (True, False)), ("inactive", "inactive", (False, False)),
             ("sendrecv", "sendrecv", (True, True))]
    for version, (ours, theirs, flags) in enumerate(steps, 2):
        offer = create_offer(us, version, direction=ours)
        answer, _ = create_answer(wire(offer), phone, version)
        assert answer.media[0].direction == theirs
        media = process_answer(offer, wire(answer), us)
        assert (media.sending, media.receiving) == flags


def test_answer_with_zero_address_is_hold_too():
    offer, answer, local = _offer_and_answer()
    answer.connection.address = "0.0.0.0"
    media = process_answer(offer, wire(answer), local)
    assert (media.sending, media.receiving) == (False, True)


def test_unknown_direction_arguments():
    with pytest.raises(ValueError):
        create_offer(door(), 1, direction="both")
    with pytest.raises(ValueError):
        answer_to(ASTERISK_OFFER, door(), direction="both")


def test_re_offer_keeps_the_previous_m_lines_in_place():
    us, phone = door(rtcp_mux=True), flat()
    our_answer, _ = answer_to(VIDEO_AUDIO_OFFER, us)
    hold = wire(create_offer(us, 2, direction="sendonly", previous=our_answer))
    assert [(m.media, m.port) for m in hold.media] == [("video", 0), ("audio", 40000)]
    assert hold.direction_of(hold.media[1]) == "sendonly"
    their_answer, theirs = create_answer(hold, phone, 2)
    assert [m.port for m in their_answer.media] == [0, 41000]
    assert (theirs.media_index, theirs.sending, theirs.receiving) == (1, False, True)
    media = process_answer(hold, wire(their_answer), us)
    assert (media.media_index, media.sending, media.receiving) == (1, True, False)


def test_re_offer_with_optional_srtp_keeps_the_negotiated_transport():
    us = door("optional")
    our_answer, _ = answer_to(SAVP_OFFER, us)
    assert create_offer(us, 2, previous=our_answer).media[0].proto == "RTP/SAVP"
    our_answer, _ = answer_to(ASTERISK_OFFER, us)
    assert create_offer(us, 2, previous=our_answer).media[0].proto == "RTP/AVP"
    our_answer, _ = answer_to(SAVP_OFFER, door("mandatory"))
    assert create_offer(door("mandatory"), 2, previous=our_answer).media[0].proto == "RTP/SAVP"


def test_re_offer_after_a_description_without_audio_appends_it():
    previous = parse(G729_ONLY_OFFER.replace("m=audio", "m=image"))
    offer = create_offer(door(), 2, previous=previous)
    assert [(m.media, m.port) for m in offer.media] == [("image", 0), ("audio", 40000)]
