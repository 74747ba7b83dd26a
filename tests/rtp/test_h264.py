"""RFC 6184 packetization-mode=1 and RTCP PLI/FIR (firmware/rtp/h264.py): round trips, packets
checked by hand against the RFC's figures, losses, and the pacing rule. Portable: also runs
under MicroPython (make test-micropython)."""

import random

import pytest

from firmware.rtp import h264
from firmware.rtp.packet import OtherRtcp, parse_rtcp

SPS = bytes([0x67, 0x42, 0xC0, 0x1F, 0xDA, 0x02, 0x80, 0xBF])
PPS = bytes([0x68, 0xCE, 0x3C, 0x80])


def idr(size, seed=1):
    rng = random.Random(seed)
    return bytes([0x65]) + bytes([rng.randrange(256) for _ in range(size - 1)])


def test_fu_a_fragments_by_hand():
    # 0x65: F=0, NRI=3, type 5 (IDR). Indicator 0x7C = NRI 3 | type 28; FU headers S/E + 5.
    unit = bytes([0x65]) + bytes(range(10))
    assert h264.packetize([unit], 6) == [
        bytes([0x7C, 0x85, 0, 1, 2, 3]),
        bytes([0x7C, 0x05, 4, 5, 6, 7]),
        bytes([0x7C, 0x45, 8, 9]),
    ]


def test_small_units_go_as_single_nal_unit_packets():
    assert h264.packetize([SPS, PPS, b"", bytes([0x41, 1, 2])], 1200) == [
        SPS, PPS, bytes([0x41, 1, 2])]


def test_stap_a_by_hand():
    # RFC 6184 Figure 7: STAP-A header (NRI 3, type 24), then 16-bit size + unit per unit.
    stap = bytes([0x78, 0x00, len(SPS)]) + SPS + bytes([0x00, len(PPS)]) + PPS
    d = h264.Depacketizer()
    unit = bytes([0x65, 0x88, 0x84])
    assert d.push(stap, 10, 3000, False) == []
    assert d.push(unit, 11, 3000, True) == [[SPS, PPS, unit]]
    assert not d.wants_key_frame


def test_round_trip_key_frame_and_p_frames():
    frames = [[SPS, PPS, idr(5000)], [bytes([0x41]) + bytes(300)], [idr(1201, 2)],
              [bytes([0x41]) + bytes(1199)]]
    d = h264.Depacketizer()
    out = []
    seq = 65530  # wraps
    for i, units in enumerate(frames):
        payloads = h264.packetize(units, 1200)
        assert all(len(p) <= 1200 for p in payloads)
        for j, payload in enumerate(payloads):
            out.extend(d.push(payload, seq & 0xFFFF, i * 6000, j == len(payloads) - 1))
            seq += 1
    assert out == frames
    assert d.units_done == 4 and d.lost_units == 0


def test_a_lost_fragment_drops_the_frame_and_asks_for_a_key_frame():
    d = h264.Depacketizer()
    payloads = h264.packetize([SPS, PPS, idr(4000)], 1000)
    for j, payload in enumerate(payloads):
        d.push(payload, j, 0, j == len(payloads) - 1)
    assert not d.wants_key_frame
    p_frame = h264.packetize([bytes([0x41]) + bytes(2500)], 1000)
    done = []
    for j, payload in enumerate(p_frame):
        if j == 1:
            continue  # lost
        done += d.push(payload, 100 + j, 3000, j == len(p_frame) - 1)
    assert done == [] and d.lost_units == 1 and d.wants_key_frame
    # the next frame after the gap is whole again
    assert d.push(bytes([0x41, 9]), 100 + len(p_frame), 6000, True) == [[bytes([0x41, 9])]]


def test_timestamp_change_ends_an_access_unit_without_marker():
    d = h264.Depacketizer()
    assert d.push(bytes([0x41, 1]), 1, 0, False) == []
    assert d.push(bytes([0x41, 2]), 2, 3000, True) == [[bytes([0x41, 1])], [bytes([0x41, 2])]]


def test_unsupported_and_malformed_payloads_are_counted_not_raised():
    d = h264.Depacketizer()
    assert d.push(bytes([0x79, 0, 0]), 1, 0, True) == []  # STAP-B
    assert d.unsupported == 1
    assert d.push(bytes([0x7C, 0x05, 1, 2]), 2, 10, True) == []  # FU-A without its start
    assert d.push(bytes([0x78, 0x00, 0x09, 0x67]), 3, 20, True) == []  # STAP-A size too big
    assert d.lost_units == 2


def test_pli_and_fir_by_hand_and_recognised():
    pli = h264.pli(0x11111111, 0x22222222)
    assert pli == bytes([0x81, 0xCE, 0x00, 0x02, 0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x22, 0x22])
    fir = h264.fir(0x11111111, 0x22222222, 7)
    assert fir == bytes([0x84, 0xCE, 0x00, 0x04, 0x11, 0x11, 0x11, 0x11, 0, 0, 0, 0,
                         0x22, 0x22, 0x22, 0x22, 7, 0, 0, 0])
    for data in (pli, fir):
        (packet,) = parse_rtcp(data)
        assert isinstance(packet, OtherRtcp)
        assert h264.key_frame_requested(packet.packet_type, packet.count, packet.body,
                                        0x22222222)
        assert not h264.key_frame_requested(packet.packet_type, packet.count, packet.body,
                                            0x33333333)
    assert not h264.key_frame_requested(205, 1, bytes(8), 0)  # RTPFB (NACK) is no request


def test_pacing_keeps_each_millisecond_under_the_mtu():
    assert h264.pacing([1200, 1200, 300, 200, 1200], 1500) == [0, 1, 1, 2, 2]
    sizes = [1200] * 10
    offsets = h264.pacing(sizes, 1500)
    assert offsets == list(range(10))
    assert h264.pacing([], 1500) == []


def test_packetize_refuses_a_payload_too_small():
    with pytest.raises(ValueError):
        h264.packetize([SPS], 3)


def test_key_frames_at_start_every_interval_until_asked_then_on_request():
    keys = h264.KeyFrames(2.0)
    sent = []
    for i in range(15 * 5):  # 5 s at 15 fps
        now = i / 15
        if keys.due(now):
            keys.sent(now)
            sent.append(round(now, 2))
    assert sent == [0.0, 2.0, 4.0]  # the first frame, then every 2 s: nobody asked yet
    keys.requested()  # PLI or FIR
    assert keys.due(5.0)
    keys.sent(5.0)
    assert not any(keys.due(5.0 + i / 15) for i in range(1, 60)), "periodic after a request"
    keys.requested()
    assert keys.due(9.1) and keys.requests == 2
    keys.sent(9.1)
    keys.want()  # e.g. a re-INVITE
    assert keys.due(9.2)
