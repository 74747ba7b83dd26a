import random
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware.rtp.packet import (
    Bye,
    OtherRtcp,
    ReceiverReport,
    ReportBlock,
    RtpPacket,
    RtpParseError,
    SenderReport,
    SourceDescription,
    is_rtcp,
    ntp_middle32,
    parse_rtcp,
    serialize_rtcp,
)


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="MicroPython ignores __bytes__")
def test_bytes_of_a_packet_is_its_serialisation():
    block = ReportBlock(2, 0x80, 10, 3, 4, 5, 6)
    for packet in (RtpPacket(0, 1, 2, 3, b"x"), SenderReport(1, 2, 3, 4, 5, [block]),
                   ReceiverReport(1, [block]), SourceDescription.with_cname(1, "a@b"),
                   Bye([1], "bye"), OtherRtcp(204, 3, b"nameDATA"), block):
        assert bytes(packet) == packet.to_bytes()


def test_rtp_minimal_header_layout():
    packet = RtpPacket(0, 0x1234, 0xDECAFBAD, 0xCAFEBABE, payload=b"\xab" * 4, marker=True)
    assert packet.to_bytes() == bytes.fromhex("80801234decafbadcafebabeabababab")


def test_rtp_round_trip_with_csrcs_extension_and_padding():
    packet = RtpPacket(
        8,
        65535,
        0xFFFFFFFF,
        1,
        payload=b"hello",
        csrcs=[7, 9],
        extension_profile=0xBEDE,
        extension_data=b"\x10\xaa\x00\x00",
        padding=3,
    )
    data = packet.to_bytes()
    assert data[0] == 0x80 | 0x20 | 0x10 | 2
    assert len(data) == 12 + 8 + 4 + 4 + 5 + 3
    parsed = RtpPacket.parse(data)
    assert (parsed.payload_type, parsed.sequence, parsed.timestamp, parsed.ssrc) == (
        8,
        65535,
        0xFFFFFFFF,
        1,
    )
    assert parsed.csrcs == [7, 9]
    assert parsed.extension and parsed.extension_profile == 0xBEDE
    assert parsed.extension_data == b"\x10\xaa\x00\x00"
    assert parsed.padding == 3 and parsed.payload == b"hello"
    assert not parsed.marker
    assert parsed.to_bytes() == data


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "shorter"),
        (bytes.fromhex("8000000100000002000000"), "shorter"),
        (bytes.fromhex("400000010000000200000003"), "version"),
        (bytes.fromhex("820000010000000200000003" + "00000004"), "CSRC"),
        (bytes.fromhex("900000010000000200000003" + "bede"), "extension header"),
        (bytes.fromhex("900000010000000200000003" + "bede0002" + "00000000"), "extension data"),
        (bytes.fromhex("a00000010000000200000003" + "aabb00"), "padding"),
        (bytes.fromhex("a00000010000000200000003" + "aabb05"), "padding"),
    ],
)
def test_rtp_malformed_input_is_rejected(data, reason):
    with pytest.raises(RtpParseError) as error:
        RtpPacket.parse(data)
    assert reason in error.value.reason


@given(st.binary(max_size=80))
def test_rtp_parse_raises_only_its_own_error(data):
    try:
        packet = RtpPacket.parse(data)
    except RtpParseError:
        return
    assert RtpPacket.parse(packet.to_bytes()).payload == packet.payload


@given(st.binary(max_size=120))
def test_rtcp_parse_raises_only_its_own_error(data):
    try:
        packets = parse_rtcp(data)
    except RtpParseError:
        return
    assert [type(p) for p in parse_rtcp(serialize_rtcp(packets))] == [type(p) for p in packets]


def test_rtcp_parse_survives_random_mutations_of_a_valid_compound():
    compound = bytearray(_compound())
    rng = random.Random(7)
    for _ in range(2000):
        mutated = bytearray(compound)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            parse_rtcp(bytes(mutated[: rng.randint(0, len(mutated))]))
        except RtpParseError:
            pass


def _compound():
    block = ReportBlock(0x11111111, 25, -3, 0x0001FFFF, 37, 0xAABBCCDD, 0x00010000)
    return serialize_rtcp(
        [
            SenderReport(0x22222222, 0xE1234567_89ABCDEF, 123456, 50, 8000, [block]),
            SourceDescription.with_cname(0x22222222, "door@127.0.0.1"),
            Bye([0x22222222], reason="hangup"),
        ]
    )


def test_rtcp_compound_round_trip():
    data = _compound()
    assert len(data) % 4 == 0
    sr, sdes, bye = parse_rtcp(data)
    assert isinstance(sr, SenderReport)
    assert sr.ssrc == 0x22222222 and sr.ntp_timestamp == 0xE1234567_89ABCDEF
    assert (sr.rtp_timestamp, sr.packet_count, sr.octet_count) == (123456, 50, 8000)
    assert sr.reports == [ReportBlock(0x11111111, 25, -3, 0x0001FFFF, 37, 0xAABBCCDD, 0x10000)]
    assert sdes.cname(0x22222222) == b"door@127.0.0.1"
    assert sdes.cname(0x1) is None
    assert bye.ssrcs == [0x22222222] and bye.reason == b"hangup"
    assert serialize_rtcp(parse_rtcp(data)) == data


def test_report_block_cumulative_lost_is_signed_24_bit_and_clamped():
    block = ReportBlock(1, 0, -1, 0, 0, 0, 0)
    assert block.to_bytes()[4:8] == bytes.fromhex("00ffffff")
    rr = parse_rtcp(ReceiverReport(5, [block]).to_bytes())[0]
    assert rr.reports[0].cumulative_lost == -1
    huge = ReportBlock(1, 0, 1 << 30, 0, 0, 0, 0)
    assert ReportBlock.parse(huge.to_bytes(), 0).cumulative_lost == 0x7FFFFF


def test_rr_layout_matches_rfc_3550():
    data = ReceiverReport(0xCAFEBABE, [ReportBlock(2, 0x80, 10, 3, 4, 5, 6)]).to_bytes()
    assert data[:8] == bytes.fromhex("81c90007cafebabe")
    assert len(data) == 8 + 24


def test_sdes_with_several_items_and_chunks():
    sdes = SourceDescription([(1, [(1, b"a"), (6, b"tool")]), (2, [(1, b"bcd")])])
    data = sdes.to_bytes()
    assert len(data) % 4 == 0
    parsed = parse_rtcp(data)[0]
    assert parsed.chunks == [(1, [(1, b"a"), (6, b"tool")]), (2, [(1, b"bcd")])]


def test_unknown_rtcp_types_are_carried_and_junk_rejected():
    app = OtherRtcp(204, 3, b"nameDATA")
    packets = parse_rtcp(app.to_bytes() + ReceiverReport(9).to_bytes())
    assert packets[0].packet_type == 204 and packets[0].body == b"nameDATA"
    assert packets[1].ssrc == 9
    with pytest.raises(RtpParseError):
        parse_rtcp(bytes.fromhex("80630000"))  # packet type 99 is not RTCP


def test_rtcp_length_must_add_up():
    data = ReceiverReport(9).to_bytes()
    with pytest.raises(RtpParseError):
        parse_rtcp(data + b"\x00\x00")
    with pytest.raises(RtpParseError):
        parse_rtcp(data[:-1])


def test_rtcp_padding_only_on_last_packet():
    padded = bytearray(ReceiverReport(9).to_bytes() + bytes.fromhex("00000004"))
    padded[0] |= 0x20
    padded[3] += 1
    assert parse_rtcp(bytes(padded))[0].ssrc == 9
    with pytest.raises(RtpParseError):
        parse_rtcp(bytes(padded) + ReceiverReport(10).to_bytes())


def test_is_rtcp_demultiplexes_rfc_5761():
    assert is_rtcp(ReceiverReport(1).to_bytes())
    assert is_rtcp(_compound())
    for payload_type in (0, 8, 101, 127):
        for marker in (False, True):
            rtp = RtpPacket(payload_type, 1, 2, 3, b"x", marker=marker).to_bytes()
            assert not is_rtcp(rtp)
    assert not is_rtcp(b"\x80")
    assert not is_rtcp(b"")
    assert not is_rtcp(bytes.fromhex("40c9"))  # version 1


def test_ntp_middle32():
    assert ntp_middle32(0x11223344_55667788) == 0x33445566
