"""The session layer with a video port (issue 16), in memory with a fake clock: the runtime's
video port puts an m=video into our offer and answer, the negotiated video reaches the runtime
with StartMedia, its SDES key is its own, and a peer without video gets the audio call as before.
Portable (also under MicroPython)."""

from firmware.session import events as ev
from firmware.sip.endpoint import Peer
from tests.session.test_session import RTP_PORT, Door, _offered_call, ack_for
from tests.sip.test_call import ANSWER, FLAT1, Network, Phone, contact

VIDEO_PORT = 40002
VIDEO = ANSWER + (b"m=video 5002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n"
                  b"a=fmtp:97 packetization-mode=1;profile-level-id=42e01e\r\n"
                  b"a=rtcp-fb:97 nack pli\r\n")


def door_with_video(net):
    door = Door(net)
    opened = door.sessions.media_opened

    def media_opened(call_id, address, port, now):
        opened(call_id, address, port, now, video_port=VIDEO_PORT)

    door.sessions.media_opened = media_opened
    door.sessions.video_profile_level_id = "42c016"
    return door


def m_lines(body):
    return [line for line in body.decode().split("\r\n") if line.startswith("m=")]


def test_incoming_video_offer_is_answered_with_our_video_port():
    net = Network()
    door, phone = door_with_video(net), Phone(net, FLAT1)
    call_id = _offered_call(net, door, phone, body=VIDEO)
    assert door.do("answer", call_id) is True
    ok = phone.take(200)
    assert m_lines(ok.body) == ["m=audio %d RTP/AVP 0" % RTP_PORT,
                                "m=video %d RTP/AVP 97" % VIDEO_PORT]
    assert b"a=fmtp:97 profile-level-id=42c016;packetization-mode=1" in ok.body
    start = door.events[2]
    assert isinstance(start, ev.StartMedia)
    video = start.negotiated.video
    assert video is not None and video.remote_port == 5002 and video.payload_type == 97
    phone.send(ack_for(ok, phone))
    assert door.kinds()[-1] == "CallEstablished"


def test_an_audio_only_offer_gets_the_audio_answer_as_before():
    net = Network()
    door, phone = door_with_video(net), Phone(net, FLAT1)
    call_id = _offered_call(net, door, phone)
    door.do("answer", call_id)
    ok = phone.take(200)
    assert m_lines(ok.body) == ["m=audio %d RTP/AVP 0" % RTP_PORT]
    assert door.events[2].negotiated.video is None


def test_outgoing_offer_with_video_and_an_answer_that_rejects_it():
    net = Network()
    door, phone = Door(net), Phone(net, FLAT1)
    session = door.sessions.place_call(
        "call", [("sip:flat@127.0.0.1:5062", Peer("udp", *FLAT1))], "127.0.0.1", RTP_PORT,
        net.now, video_port=VIDEO_PORT)
    door.collect()
    net.run()
    invite = phone.take("INVITE")
    assert m_lines(invite.body) == ["m=audio %d RTP/AVP 0 8 101" % RTP_PORT,
                                    "m=video %d RTP/AVP 96" % VIDEO_PORT]
    rejected = ANSWER + b"m=video 0 RTP/AVP 96\r\n"
    phone.reply(invite, 200, "OK", extra=(contact(phone.address),), body=rejected)
    assert phone.take("ACK")
    start = [e for e in door.events if isinstance(e, ev.StartMedia)][0]
    assert start.call_id == session.id
    assert start.negotiated.video is None and start.negotiated.remote_port == 5000


def test_video_srtp_key_is_drawn_apart_from_the_audio_key():
    drawn = []

    def random(n):
        drawn.append(n)
        return bytes([len(drawn)]) * n

    net = Network()
    media = {"codecs": ["PCMU"], "srtp": "optional", "srtp_requires_tls": False,
             "rtp_ports": "40000-40199"}
    door = Door(net, media=media, random=random)
    phone = Phone(net, FLAT1)
    door.sessions.place_call("call", [("sip:flat@127.0.0.1:5062", Peer("udp", *FLAT1))],
                             "127.0.0.1", RTP_PORT, net.now, video_port=VIDEO_PORT)
    door.collect()
    net.run()
    invite = phone.take("INVITE")
    cryptos = [line for line in invite.body.decode().split("\r\n")
               if line.startswith("a=crypto:")]
    audio, video = cryptos[:2], cryptos[2:]
    assert len(audio) == 2 and len(video) == 2  # both suites, for each stream
    assert {c.split("inline:")[1] for c in audio}.isdisjoint(
        {c.split("inline:")[1] for c in video})
