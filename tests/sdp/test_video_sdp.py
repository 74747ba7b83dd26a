"""m=video (H.264, RFC 6184 §8) in offer/answer beside the audio: accepted, rejected with port 0,
audio-only peers unchanged, SRTP keys per stream. Portable (also under MicroPython)."""

from firmware.sdp import offer_answer as oa
from firmware.sdp.session import SessionDescription
from firmware.sdp.video import LocalVideo, fmtp_params

KEY_A = bytes(range(30))
KEY_V = bytes(range(100, 130))

PEER_OFFER = (
    "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
    "a=sendrecv\r\n"
    "m=video 30002 RTP/AVP 100 102\r\n"
    "a=rtpmap:100 H264/90000\r\na=fmtp:100 packetization-mode=0;profile-level-id=42002a\r\n"
    "a=rtpmap:102 H264/90000\r\na=fmtp:102 packetization-mode=1;profile-level-id=42002a\r\n"
    "a=rtcp-fb:* nack pli\r\na=sendrecv\r\n")


def local(video=True, srtp="off"):
    crypto = [("AES_CM_128_HMAC_SHA1_80", KEY_A)] if srtp != "off" else []
    vcrypto = [("AES_CM_128_HMAC_SHA1_80", KEY_V)] if srtp != "off" else []
    return oa.LocalMedia("127.0.0.1", 40000, srtp=srtp, crypto=crypto,
                         video=LocalVideo(40002, crypto=vcrypto) if video else None)


def parse(text):
    return SessionDescription.parse(text.encode())


def test_offer_has_h264_mode_1_with_feedback():
    offer = oa.create_offer(local(), 1)
    assert [m.media for m in offer.media] == ["audio", "video"]
    video = offer.media[1]
    assert video.port == 40002 and video.proto == "RTP/AVP" and video.formats == ["96"]
    assert str(video.rtpmap(96)) == "96 H264/90000"
    assert fmtp_params(video.fmtp(96)) == {"profile-level-id": "42c01f",
                                           "packetization-mode": "1"}
    assert video.get_attributes("rtcp-fb") == ["96 nack pli", "96 ccm fir"]
    assert not video.has_attribute("crypto")
    # without video the offer is what it always was
    assert [m.media for m in oa.create_offer(local(video=False), 1).media] == ["audio"]


def test_answer_accepts_the_mode_1_format_with_the_offers_profile():
    answer, negotiated = oa.create_answer(parse(PEER_OFFER), local(), 1)
    assert [(m.media, m.port) for m in answer.media] == [("audio", 40000), ("video", 40002)]
    video = answer.media[1]
    assert video.formats == ["102"]
    assert fmtp_params(video.fmtp(102))["packetization-mode"] == "1"
    assert fmtp_params(video.fmtp(102))["profile-level-id"] == "42c01f"
    assert video.get_attributes("rtcp-fb") == ["102 nack pli"]
    v = negotiated.video
    assert v is not None and v.payload_type == 102 and v.remote_port == 30002
    assert v.remote_rtcp_port == 30003 and v.sending and v.receiving and v.pli and not v.fir
    assert negotiated.codec == "PCMU" and negotiated.media_index == 0 and v.media_index == 1


def test_video_without_mode_1_is_rejected_with_port_0_audio_kept():
    offer = PEER_OFFER.replace("a=rtpmap:102 H264/90000\r\n", "").replace(
        "a=fmtp:102 packetization-mode=1;profile-level-id=42002a\r\n", "")
    answer, negotiated = oa.create_answer(parse(offer), local(), 1)
    assert [(m.media, m.port) for m in answer.media] == [("audio", 40000), ("video", 0)]
    assert negotiated.video is None and negotiated.codec == "PCMU"


def test_video_refused_when_not_ours_and_audio_only_offers_unchanged():
    answer, negotiated = oa.create_answer(parse(PEER_OFFER), local(video=False), 1)
    assert [(m.media, m.port) for m in answer.media] == [("audio", 40000), ("video", 0)]
    assert negotiated.video is None
    audio_only = PEER_OFFER[:PEER_OFFER.index("m=video")]
    with_video, n1 = oa.create_answer(parse(audio_only), local(), 1)
    without, n2 = oa.create_answer(parse(audio_only), local(video=False), 1)
    assert with_video.to_bytes() == without.to_bytes()
    assert n1.video is None and n2.video is None


def test_process_answer_accepted_and_rejected_video():
    ours = local()
    offer = oa.create_offer(ours, 1)
    accepted = (
        "v=0\r\no=peer 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        "m=video 30010 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
        "a=fmtp:96 packetization-mode=1;profile-level-id=42c01f\r\n"
        "a=rtcp-fb:96 ccm fir\r\na=recvonly\r\n")
    negotiated = oa.process_answer(offer, parse(accepted), ours)
    v = negotiated.video
    assert v is not None and v.remote_port == 30010 and v.fir and not v.pli
    assert v.sending and not v.receiving  # the peer only receives
    rejected = accepted.replace("m=video 30010", "m=video 0")
    assert oa.process_answer(offer, parse(rejected), ours).video is None
    no_mode_1 = accepted.replace("packetization-mode=1", "packetization-mode=0")
    n = oa.process_answer(offer, parse(no_mode_1), ours)
    assert n.video is None and n.codec == "PCMU", "the audio call goes on"


def test_srtp_video_has_its_own_key():
    offer = oa.create_offer(local(srtp="optional"), 1)
    audio_key = offer.media[0].cryptos()[0].master_key
    video_key = offer.media[1].cryptos()[0].master_key
    assert audio_key == KEY_A[:16] and video_key == KEY_V[:16]
    peer = PEER_OFFER.replace("RTP/AVP", "RTP/SAVP").replace(
        "a=sendrecv\r\nm=video",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd\r\n"
        "a=sendrecv\r\nm=video") + \
        "a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB\r\n"
    answer, negotiated = oa.create_answer(parse(peer), local(srtp="optional"), 1)
    video = answer.media[1]
    assert video.port == 40002 and video.proto == "RTP/SAVP"
    (crypto,) = video.cryptos()
    assert crypto.tag == 3 and crypto.master_key == KEY_V[:16]
    assert negotiated.video.srtp is not None
    assert negotiated.video.srtp.local_key == KEY_V[:16]
    assert negotiated.video.srtp.remote_key != negotiated.srtp.remote_key
    # SAVP video without a crypto line we can use: rejected, the audio stays
    no_crypto = peer[:peer.rindex("a=crypto:3")]
    answer, negotiated = oa.create_answer(parse(no_crypto), local(srtp="optional"), 1)
    assert answer.media[1].port == 0 and negotiated.video is None


def test_profile_level_id_from_size_rate_and_bit_rate():
    from firmware.sdp.video import level_idc, profile_level_id

    # H.264 Table A-1 by hand: 640x480 = 1200 macroblocks (> 792 of level 2.1), 18000 MB/s
    assert profile_level_id(640, 480, 15, 600) == "42c016"
    assert level_idc(320, 240, 15, 600) == 13  # 300 MBs, 4500 MB/s, 600 kbit/s
    assert level_idc(320, 240, 15, 1000) == 20  # 768 kbit/s is level 1.3's limit
    assert level_idc(1280, 720, 30, 600) == 31
    assert level_idc(1920, 1080, 30, 600) == 40
    assert LocalVideo(40002, profile_level_id="42c016").profile_level_id == "42c016"


def test_a_hold_reoffer_holds_the_video_in_its_place():
    ours = local()
    first = oa.create_offer(ours, 1)
    held = oa.create_offer(ours, 2, "sendonly", previous=first)
    assert [(m.media, m.port) for m in held.media] == [("audio", 40000), ("video", 40002)]
    assert held.direction_of(held.media[1]) == "sendonly"
    assert held.direction_of(held.media[0]) == "sendonly"
