"""runtime/video.py on loopback sockets with the pattern camera: a key frame with SPS/PPS first,
one every 2 s until the peer asks, then on request only (RTCP PLI and FIR answered within a few
frames); 90 kHz timestamps from the capture clock; packets within the MTU; received H.264 from
the peer decoded and counted; the peer's loss answered with a PLI."""

import socket
import struct
import time

import pytest

from firmware.rtp import h264
from firmware.rtp.packet import (
    OtherRtcp,
    ReceiverReport,
    RtpPacket,
    SenderReport,
    parse_rtcp,
)
from firmware.runtime.camera import CameraService
from firmware.runtime.video import MAX_PAYLOAD, VideoStream
from firmware.sdp.video import NegotiatedVideo
from firmware.settings import CameraConfig
from hal.camera_pattern import PatternCamera

FPS = 15


def udp_pair():
    socks = []
    for _ in range(2):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.setblocking(False)
        socks.append(s)
    return socks


@pytest.fixture
def call(tmp_path):
    station = udp_pair()
    peer = udp_pair()
    for s in peer:
        s.setblocking(True)
        s.settimeout(0.5)
    service = CameraService(PatternCamera(), CameraConfig(width=160, height=128, fps=FPS),
                            str(tmp_path))
    stream = VideoStream("c1", station, service)
    negotiated = NegotiatedVideo(1, "127.0.0.1", peer[0].getsockname()[1], "127.0.0.1",
                                 peer[1].getsockname()[1], False, 97, "42c01f", True, True,
                                 None, True, True)
    stream.play(negotiated)
    yield stream, station, peer
    stream.stop()
    service.close()
    for s in peer:
        s.close()


def receive_frames(sock, seconds):
    """[(arrival, timestamp, units)] of whole access units arriving within `seconds`."""
    d = h264.Depacketizer()
    frames = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        assert len(data) <= 12 + MAX_PAYLOAD
        packet = RtpPacket.parse(data)
        assert packet.payload_type == 97
        for units in d.push(packet.payload, packet.sequence, packet.timestamp, packet.marker):
            frames.append((time.monotonic(), packet.timestamp, units))
    return frames


def keys(frames):
    return [i for i, (_, _, units) in enumerate(frames) if h264.is_key_frame(units)]


def test_key_frames_periodic_until_asked_then_on_request(call):
    stream, station, peer = call
    frames = receive_frames(peer[0], 4.6)
    assert len(frames) >= 4.6 * FPS * 0.7, len(frames)
    first = frames[0][2]
    assert [h264.nal_type(u) for u in first][:2] == [7, 8] and h264.is_key_frame(first)
    periodic = keys(frames)
    assert len(periodic) >= 3, periodic  # at 0, 2 and 4 s
    # 90 kHz timestamps from the capture clock: 6000 per frame at 15 fps
    steps = [b[1] - a[1] for a, b in zip(frames, frames[1:], strict=False)]
    assert all(5000 <= s <= 7000 or s % 6000 < 1500 for s in steps), steps[:10]

    # a sender report (RFC 3550 §6.4.1) with our SSRC came to the RTCP port
    reports = []
    peer[1].settimeout(0.02)  # it came with the first frame, seconds ago
    while True:
        try:
            reports += parse_rtcp(peer[1].recv(2048))
        except TimeoutError:
            break
    peer[1].settimeout(0.5)
    srs = [r for r in reports if isinstance(r, SenderReport)]
    assert srs and srs[0].ssrc == stream.ssrc and srs[0].packet_count > 0, reports

    # the peer asks (PLI): a key frame within a few frames, then none unasked for 2.5 s
    rtcp_port = station[1].getsockname()[1]
    peer[1].sendto(ReceiverReport(1234).to_bytes() + h264.pli(1234, stream.ssrc),
                   ("127.0.0.1", rtcp_port))
    frames = receive_frames(peer[0], 3.0)
    asked = keys(frames)
    assert asked and asked[0] <= 4, asked
    assert asked == [asked[0]], f"periodic key frames after the peer asked: {asked}"
    assert stream.key_frames.peer_asked and stream.stats()["key_requests"] == 1

    # FIR (RFC 5104) works the same way
    peer[1].sendto(h264.fir(1234, stream.ssrc, 1), ("127.0.0.1", rtcp_port))
    frames = receive_frames(peer[0], 1.0)
    assert keys(frames) and keys(frames)[0] <= 4
    # a PLI for another sender is not for us
    peer[1].sendto(h264.pli(1234, stream.ssrc ^ 1), ("127.0.0.1", rtcp_port))
    frames = receive_frames(peer[0], 1.0)
    assert keys(frames) == []
    stats = stream.stats()
    assert stats["capture_to_rtp_ms"]["median"] < 100, stats


def test_received_video_is_decoded_and_loss_asks_for_a_key_frame(call):
    stream, station, peer = call
    sender = PatternCamera()
    sender.open(160, 128, FPS)
    encoder = sender.h264_encoder()
    rtp_port = station[0].getsockname()[1]
    seq = 100
    for i in range(20):
        units = encoder.encode(sender.read(), key=False)
        payloads = h264.packetize(units, 300)
        for j, payload in enumerate(payloads):
            seq += 1
            if i == 12 and j == 0:
                continue  # lost: the station must ask for a key frame
            packet = RtpPacket(97, seq & 0xFFFF, i * 6000, 4321, payload,
                               marker=j == len(payloads) - 1)
            peer[0].sendto(packet.to_bytes(), ("127.0.0.1", rtp_port))
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and stream.stats()["frames_decoded"] < 12:
        time.sleep(0.05)
    stats = stream.stats()
    assert stats["frames_decoded"] >= 12 and stats["received_size"] == [160, 128], stats
    assert stats["lost_frames"] >= 1
    pli = None
    end = time.monotonic() + 2
    while pli is None and time.monotonic() < end:
        try:
            data = peer[1].recv(2048)
        except TimeoutError:
            continue
        for packet in parse_rtcp(data):
            if isinstance(packet, OtherRtcp) and h264.key_frame_requested(
                    packet.packet_type, packet.count, packet.body, 4321):
                pli = packet
    assert pli is not None, "no PLI after a loss"


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: kernel receive time


def test_the_packets_of_a_frame_are_paced_one_mtu_per_millisecond(tmp_path):
    """Measured with the kernel's receive timestamps (the test thread may read late: the
    pattern camera renders in Python and holds the GIL meanwhile)."""
    station, peer = udp_pair(), udp_pair()
    peer[0].setblocking(True)
    peer[0].settimeout(0.5)
    peer[0].setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    service = CameraService(PatternCamera(), CameraConfig(width=640, height=480, fps=FPS),
                            str(tmp_path))
    stream = VideoStream("c2", station, service)
    stream.play(NegotiatedVideo(1, "127.0.0.1", peer[0].getsockname()[1], "127.0.0.1",
                                peer[1].getsockname()[1], False, 97, "42c016", True, True,
                                None, True, True))
    try:
        arrivals = []  # (time, marker) of the first key frame's packets
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            data, ancillary, _, _ = peer[0].recvmsg(65536, 64)
            stamps = [d for level, kind, d in ancillary
                      if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS]
            assert stamps, "no kernel timestamp"
            seconds, nanoseconds = struct.unpack("qq", stamps[0][:16])
            packet = RtpPacket.parse(data)
            arrivals.append((seconds + nanoseconds / 1e9, len(data)))
            if packet.marker:
                break
    finally:
        stream.stop()
        service.close()
        for s in peer:
            s.close()
    assert len(arrivals) >= 4, arrivals  # a 640x480 key frame takes several packets
    # no 1 ms window holds more than one path MTU of datagrams (IPv6 + UDP headers counted)
    for i, (start, _) in enumerate(arrivals):
        window = sum(size + 48 for when, size in arrivals[i:] if when - start < 0.0009)
        assert window <= 1500, (i, [(round((t - start) * 1e3, 2), n) for t, n in arrivals])


def test_a_reinvite_with_new_srtp_keys_takes_them():
    from firmware.sdp.offer_answer import SrtpParameters

    def negotiated(srtp):
        return NegotiatedVideo(1, "127.0.0.1", 9, "127.0.0.1", 10, False, 97, "42c016", True,
                               True, srtp, True, True)

    keys = SrtpParameters("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14), bytes(range(16)),
                          bytes(range(14)))
    socks = udp_pair()
    stream = VideoStream("c3", socks, None)  # not playing: no threads, only the state
    stream.negotiated = negotiated(None)
    stream.update(negotiated(keys))
    first = stream._srtp
    assert first is not None
    stream.update(negotiated(keys))
    assert stream._srtp is first, "the same keys: the same context (no replay reset)"
    stream.update(negotiated(None))
    assert stream._srtp is None
    stream.stop()
