"""G.722 in offer/answer (issue 15): payload type 9, `G722/8000` (RFC 3551 §4.5.2: the RTP
clock is 8000 Hz although the audio is sampled at 16 kHz), wideband preferred."""

from firmware.sdp import LocalMedia, SessionDescription, create_answer, create_offer, process_answer
from tests.sdp.sdp_samples import crlf


def offer_of(*formats, rtpmaps=()):
    return SessionDescription.parse(crlf(
        "v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
        "m=audio 10000 RTP/AVP " + " ".join(formats), *rtpmaps, "a=sendrecv"))


def test_offer_lists_g722_first_as_payload_type_9():
    offer = create_offer(LocalMedia("127.0.0.1", 40000, codecs=["PCMU", "G722"]), 1)
    text = offer.to_bytes().decode()
    assert "m=audio 40000 RTP/AVP 9 0 101\r\n" in text
    assert "a=rtpmap:9 G722/8000\r\n" in text


def test_answer_prefers_g722_when_both_offer_it():
    local = LocalMedia("127.0.0.1", 40000, codecs=["PCMU", "PCMA", "G722"])
    answer, negotiated = create_answer(offer_of("0", "8", "9"), local, 1)
    assert negotiated.codec == "G722" and negotiated.payload_type == 9
    assert negotiated.clock_rate == 8000 and negotiated.audio_rate == 16000
    assert negotiated.frame_samples == 320
    assert "m=audio 40000 RTP/AVP 9" in answer.to_bytes().decode()


def test_g711_only_offer_gets_g711():
    local = LocalMedia("127.0.0.1", 40000, codecs=["G722", "PCMU"])
    _, negotiated = create_answer(offer_of("0", "8"), local, 1)
    assert negotiated.codec == "PCMU" and negotiated.audio_rate == 8000
    assert negotiated.frame_samples == 160


def test_g722_at_16000_in_rtpmap_is_not_g722():
    """An rtpmap `G722/16000` is not RFC 3551's G.722 (whose RTP clock is 8000 Hz)."""
    local = LocalMedia("127.0.0.1", 40000, codecs=["G722", "PCMU"])
    _, negotiated = create_answer(
        offer_of("96", "0", rtpmaps=("a=rtpmap:96 G722/16000", "a=rtpmap:0 PCMU/8000")), local, 1)
    assert negotiated.codec == "PCMU"


def test_answer_with_g722_processed():
    local = LocalMedia("127.0.0.1", 40000, codecs=["G722", "PCMU"])
    offer = create_offer(local, 1)
    answer = SessionDescription.parse(crlf(
        "v=0", "o=- 2 2 IN IP4 127.0.0.2", "s=-", "c=IN IP4 127.0.0.2", "t=0 0",
        "m=audio 20000 RTP/AVP 9", "a=rtpmap:9 G722/8000", "a=sendrecv"))
    negotiated = process_answer(offer, answer, local)
    assert (negotiated.codec, negotiated.audio_rate) == ("G722", 16000)
