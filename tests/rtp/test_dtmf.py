"""RFC 4733 DTMF: payload format, receiver against the SIPp captures, sender, SIP INFO bodies."""

import json
import random
import struct

import pytest

from firmware.codecs.tones import Digit
from firmware.rtp.dtmf import (
    END_TIMEOUT,
    MAX_DURATION,
    DigitEnd,
    DtmfReceiver,
    DtmfSender,
    TelephoneEvent,
    parse_info_body,
)
from firmware.rtp.packet import RtpParseError


class Packet:
    """The RTP fields the DTMF receiver needs, plus the capture time."""

    def __init__(self, seq, ts, marker, payload, time):
        self.seq, self.ts, self.marker, self.payload, self.time = seq, ts, marker, payload, time


def read_pcap(path):
    """RTP packets of a little-endian Ethernet/IPv4/UDP libpcap file (stdlib only)."""
    data = path.read_bytes()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4
    assert struct.unpack_from("<I", data, 20)[0] == 1  # link type Ethernet
    packets, offset, first_time = [], 24, None
    while offset < len(data):
        seconds, micros, caplen, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:  # IPv4, UDP
            continue
        udp = frame[14 + (frame[14] & 0x0F) * 4 :]
        rtp = udp[8 : struct.unpack_from(">H", udp, 4)[0]]
        assert rtp[0] >> 6 == 2
        header = 12 + 4 * (rtp[0] & 0x0F)
        seq, ts = struct.unpack_from(">HI", rtp, 2)
        time = seconds + micros / 1e6
        first_time = time if first_time is None else first_time
        packets.append(Packet(seq, ts, bool(rtp[1] & 0x80), rtp[header:], time - first_time))
    return packets


def _manifest(vectors):
    """manifest.tsv's rows as dicts (csv is CPython only; the file has no quoting)."""
    lines = (vectors / "dtmf" / "manifest.tsv").read_text().splitlines()
    columns = lines[0].split("\t")
    return [dict(zip(columns, line.split("\t"), strict=True)) for line in lines[1:] if line]


def _capture(vectors, key):
    name = {"*": "star", "#": "pound"}.get(key, key)
    return read_pcap(vectors / "dtmf" / f"dtmf_2833_{name}.pcap")


def _feed(receiver, packets, start=0.0):
    events = []
    for p in packets:
        receiver.receive(p.ts, p.seq, p.marker, p.payload, start + p.time)
        while (event := receiver.next_event()) is not None:
            events.append(event)
    return events


def _digits(events):
    return "".join(e.digit for e in events if isinstance(e, Digit))


def test_pcap_reader_agrees_with_packets_json(vectors):
    decoded = json.loads((vectors / "dtmf" / "packets.json").read_text())
    assert len(decoded) == 12
    for name, entry in decoded.items():
        packets = read_pcap(vectors / "dtmf" / name)
        assert [(p.seq, p.ts, p.marker, p.payload.hex()) for p in packets] == [
            (q["seq"], q["ts"], bool(q["marker"]), q["payload_hex"]) for q in entry["packets"]
        ]


def test_every_capture_yields_exactly_its_digit(vectors):
    rows = _manifest(vectors)
    assert len(rows) == 12
    for row in rows:
        receiver = DtmfReceiver()
        events = _feed(receiver, read_pcap(vectors / "dtmf" / row["file"]))
        assert events == [Digit(row["digit"], "rfc4733"), DigitEnd(row["digit"], 280)], row["file"]
        assert receiver.state == "idle" and receiver.get_timer() is None


def test_payloads_parse_to_the_manifest_fields(vectors):
    for row in _manifest(vectors):
        blocks = [
            TelephoneEvent.parse(p.payload) for p in read_pcap(vectors / "dtmf" / row["file"])
        ]
        assert {b.event for b in blocks} == {int(row["event_code"])}
        assert {b.key for b in blocks} == {row["digit"]}
        assert [b.duration for b in blocks] == [int(d) for d in row["durations"].split(",")]
        assert sum(b.end for b in blocks) == int(row["end_packets"])
        assert {b.volume for b in blocks} == {int(row["volume"])}


def test_digit_is_reported_on_the_first_packet(vectors):
    receiver = DtmfReceiver()
    first = _capture(vectors, "7")[0]
    receiver.receive(first.ts, first.seq, first.marker, first.payload, 0.0)
    assert receiver.next_event() == Digit("7", "rfc4733")
    assert receiver.next_event() is None
    assert receiver.get_timer() == pytest.approx(END_TIMEOUT)


def _continuous_stream(vectors, keys, gap=0.2):
    """Rewrite single-digit captures into one stream: seq and timestamp run on (NOTES.md).

    Packets that shared a sequence number in the capture (SIPp's end triplet) still share one.
    """
    stream, seq, ts, clock = [], 1000, 50000, 0.0
    for key in keys:
        capture = _capture(vectors, key)
        seq_offset, ts_offset = seq - capture[0].seq, ts - capture[0].ts
        for p in capture:
            stream.append(
                Packet(
                    (p.seq + seq_offset) & 0xFFFF,
                    p.ts + ts_offset,
                    p.marker,
                    p.payload,
                    clock + p.time,
                )
            )
        seq = stream[-1].seq + 1
        clock = stream[-1].time + gap
        ts += int((stream[-1].time - stream[-len(capture)].time + gap) * 8000)
    return stream


def test_continuous_multi_digit_stream(vectors):
    keys = "1984#*0550"
    events = _feed(DtmfReceiver(), _continuous_stream(vectors, keys))
    assert _digits(events) == keys
    assert [e.digit for e in events if isinstance(e, DigitEnd)] == list(keys)


@pytest.mark.parametrize("seed", range(5))
def test_duplicates_and_reordering_do_not_add_digits(vectors, seed):
    rng = random.Random(seed)
    keys = "2580*#11"
    stream = []
    for p in _continuous_stream(vectors, keys):
        stream += [p] * rng.choice([1, 1, 2, 3])
    for i in range(len(stream) - 1):
        if rng.random() < 0.3:
            stream[i], stream[i + 1] = stream[i + 1], stream[i]
    assert _digits(_feed(DtmfReceiver(), stream)) == keys


def test_replaying_a_capture_is_a_duplicate_not_a_second_press(vectors):
    capture = _capture(vectors, "3")
    receiver = DtmfReceiver()
    assert _digits(_feed(receiver, capture) + _feed(receiver, capture, start=1.0)) == "3"


def test_lost_start_packets(vectors):
    capture = _capture(vectors, "4")[4:]
    assert not capture[0].marker
    assert _feed(DtmfReceiver(), capture) == [Digit("4", "rfc4733"), DigitEnd("4", 280)]


def test_only_end_packets_received(vectors):
    capture = _capture(vectors, "#")[-3:]
    assert _feed(DtmfReceiver(), capture) == [Digit("#", "rfc4733"), DigitEnd("#", 280)]


def test_lost_end_packets_end_by_timeout(vectors):
    receiver = DtmfReceiver()
    capture = _capture(vectors, "6")[:-3]
    assert _feed(receiver, capture) == [Digit("6", "rfc4733")]
    deadline = receiver.get_timer()
    assert deadline == pytest.approx(capture[-1].time + END_TIMEOUT)
    receiver.handle_timer(deadline - 0.01)
    assert receiver.next_event() is None
    receiver.handle_timer(deadline)
    assert receiver.next_event() == DigitEnd("6", 240)
    assert receiver.get_timer() is None
    # Late packets of the timed-out press must not report it again.
    assert _feed(receiver, _capture(vectors, "6")[-3:], start=deadline) == []


def test_lost_end_packets_then_next_press(vectors):
    stream = _continuous_stream(vectors, "88", gap=0.05)
    first, second = stream[:7], stream[10:]
    events = _feed(DtmfReceiver(), first + second)
    assert events == [
        Digit("8", "rfc4733"),
        DigitEnd("8", 240),
        Digit("8", "rfc4733"),
        DigitEnd("8", 280),
    ]


def _updates(key_event, timestamp, durations, end_after=True, seq=0):
    packets = [
        Packet(seq + i, timestamp, i == 0, TelephoneEvent(key_event, False, 10, d).to_bytes(),
               i * 0.05)
        for i, d in enumerate(durations)
    ]
    if end_after:
        last = durations[-1]
        for r in range(3):
            payload = TelephoneEvent(key_event, True, 10, last).to_bytes()
            packets.append(
                Packet(seq + len(durations) + r, timestamp, False, payload, len(durations) * 0.05)
            )
    return packets


def test_duration_that_wraps_keeps_one_press_and_counts_on():
    durations = [(400 * i) & 0xFFFF for i in range(200)]  # 10 s, wraps once after 8.2 s
    events = _feed(DtmfReceiver(), _updates(5, 1234, durations))
    assert events == [Digit("5", "rfc4733"), DigitEnd("5", 400 * 199 // 8)]


def test_late_update_does_not_shrink_the_duration():
    packets = _updates(1, 99, [0, 400, 800, 1200], end_after=False)
    packets[2], packets[3] = packets[3], packets[2]
    receiver = DtmfReceiver()
    _feed(receiver, packets)
    receiver.handle_timer(10.0)
    assert receiver.next_event() == DigitEnd("1", 150)


def test_segmented_long_press_is_one_digit():
    sender = DtmfSender()
    packets = sender.packets("0", 20000, timestamp=0xFFFFF000)  # also wraps the timestamp
    timestamps = sorted({p.timestamp for p in packets})
    assert len(timestamps) == 3  # 20 s = 160000 units = two full segments and a third
    events = _feed(DtmfReceiver(), _from_sender(packets))
    assert events == [Digit("0", "rfc4733"), DigitEnd("0", 20000)]


def test_new_press_of_same_key_right_after_a_full_segment_is_a_new_digit():
    # The marker bit tells a new press apart from a §2.5.1.3 continuation segment.
    long_press = _updates(9, 0, list(range(0, MAX_DURATION, 400)) + [MAX_DURATION], False)
    again = _updates(9, MAX_DURATION, [0, 400], seq=500)
    assert _digits(_feed(DtmfReceiver(), long_press + again)) == "99"


def test_ignores_malformed_and_non_dtmf_events():
    receiver = DtmfReceiver()
    receiver.receive(100, 1, True, b"\x05\x0a", 0.0)
    receiver.receive(200, 2, True, TelephoneEvent(16, False, 10, 0).to_bytes(), 0.0)  # flash
    assert receiver.next_event() is None
    receiver.receive(300, 3, True, TelephoneEvent(15, False, 10, 0).to_bytes(), 0.0)
    assert receiver.next_event() == Digit("D", "rfc4733")


def test_reset_accepts_a_restarted_stream(vectors):
    receiver = DtmfReceiver()
    capture = _capture(vectors, "2")
    _feed(receiver, capture)
    receiver.reset()
    assert _digits(_feed(receiver, capture, start=1.0)) == "2"


def test_telephone_event_round_trip_and_reserved_bit():
    block = TelephoneEvent.parse(bytes.fromhex("008a08c0"))
    assert (block.event, block.end, block.volume, block.duration) == (0, True, 10, 2240)
    assert block.to_bytes() == bytes.fromhex("008a08c0")
    with_r_bit = TelephoneEvent.parse(bytes.fromhex("0bca0140"))
    assert (with_r_bit.key, with_r_bit.end, with_r_bit.volume) == ("#", True, 10)
    assert with_r_bit.to_bytes() == bytes.fromhex("0b8a0140")  # R is sent as zero
    with pytest.raises(RtpParseError):
        TelephoneEvent.parse(b"\x01\x02\x03")
    with pytest.raises(ValueError):
        TelephoneEvent(1, duration=0x10000).to_bytes()


def _from_sender(packets, seq=4000):
    return [
        Packet((seq + i) & 0xFFFF, p.timestamp, p.marker, p.payload, p.offset)
        for i, p in enumerate(packets)
    ]


@pytest.mark.parametrize("key", list("0123456789*#ABCD"))
def test_sender_output_parses_back(key):
    packets = DtmfSender().packets(key, 200, timestamp=8000)
    blocks = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [b.duration for b in blocks] == [0, 400, 800, 1200, 1600, 1600, 1600]
    assert [b.end for b in blocks] == [False] * 4 + [True] * 3
    assert [p.marker for p in packets] == [True] + [False] * 6
    assert {p.timestamp for p in packets} == {8000}
    assert {b.key for b in blocks} == {key} and {b.volume for b in blocks} == {10}
    assert [p.offset for p in packets] == pytest.approx([0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3])
    events = _feed(DtmfReceiver(), _from_sender(packets))
    assert events == [Digit(key, "rfc4733"), DigitEnd(key, 200)]


def test_sender_segments_long_events():
    packets = DtmfSender().packets("1", 9000, timestamp=0)  # 72000 units > 0xFFFF
    blocks = [TelephoneEvent.parse(p.payload) for p in packets]
    closing = [b for b, p in zip(blocks, packets, strict=True) if p.timestamp == 0][-1]
    assert (closing.duration, closing.end) == (MAX_DURATION, False)
    rest = [(p.timestamp, p.marker) for p in packets if p.timestamp != 0]
    assert {ts for ts, _ in rest} == {MAX_DURATION} and not any(m for _, m in rest)
    assert blocks[-1].duration == 72000 - MAX_DURATION and blocks[-1].end
    offsets = [p.offset for p in packets]
    assert offsets == sorted(offsets)


def test_sender_rejects_unknown_keys():
    with pytest.raises(ValueError):
        DtmfSender().packets("x", 100, 0)
    with pytest.raises(ValueError):
        DtmfSender().packets("12", 100, 0)


@pytest.mark.parametrize(
    "content_type, body, expected",
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", "5"),
        ("Application/DTMF-Relay; charset=utf-8", "Signal= #\r\nDuration= 250", "#"),
        ("application/dtmf-relay", b"Duration=160\nSignal=*\n", "*"),
        ("application/dtmf-relay", b"Signal=11\r\nDuration=160", "#"),
        ("application/dtmf-relay", b"Signal=a\r\n", "A"),
        ("application/dtmf-relay", b"Duration=160\r\n", None),
        ("application/dtmf-relay", b"Signal=x\r\n", None),
        ("application/dtmf", b"7", "7"),
        ("application/dtmf", b"10\r\n", "*"),
        ("application/dtmf", b"", None),
        ("application/dtmf", b"\xff", None),
        ("text/plain", b"Signal=5", None),
    ],
)
def test_parse_info_body(content_type, body, expected):
    assert parse_info_body(content_type, body) == expected
