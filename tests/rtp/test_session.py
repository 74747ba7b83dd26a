import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.codecs.g711 import CODECS
from firmware.codecs.tones import Digit, ToneGenerator, goertzel_power, mean_square, pcm_to_samples
from firmware.rtp.dtmf import DigitEnd, DtmfReceiver
from firmware.rtp.packet import (
    Bye,
    ReceiverReport,
    RtpPacket,
    SenderReport,
    SourceDescription,
    is_rtcp,
    parse_rtcp,
)
from firmware.rtp.session import LATCH_PACKETS, RtpSession

A_ADDR = ("127.0.0.1", 40000)
B_ADDR = ("127.0.0.1", 40100)
PCMU = CODECS["PCMU"]
FRAME = bytes(range(256)) + bytes(64)  # 320 bytes: one 20 ms frame of 16-bit PCM


def identity(data):
    return bytes(data)


def make_session(remote=A_ADDR, **options):
    """A session whose peer's SDP names `remote` (the tests' packets come from A_ADDR)."""
    options.setdefault("telephone_event_pt", 101)
    session = RtpSession(0, identity, identity, remote_addr=remote, **options)
    session.set_source(lambda: FRAME)
    return session


def rtp_only(datagrams):
    return [RtpPacket.parse(data) for data, _ in datagrams if not is_rtcp(data)]


def run_owner(session, until, lateness):
    """An event loop that sleeps until get_timer() and wakes up `lateness()` seconds late."""
    sent = []
    now = session.get_timer()
    while now < until:
        now += lateness()
        session.handle_timer(now)
        for packet in rtp_only(session.datagrams_to_send()):
            sent.append((now, packet))
        now = max(now, session.get_timer())
    return sent


# -- sending, pacing ------------------------------------------------------------------------------


def test_ten_minutes_of_late_wakeups_keep_timestamps_locked_to_the_schedule():
    session = make_session()
    start = 1000.0
    session.start(start)
    rng = random.Random(1)

    def lateness():
        roll = rng.random()
        if roll < 0.01:
            return rng.uniform(0.04, 0.15)  # a few intervals late, within the catch-up bound
        return rng.uniform(0, 0.008)

    sent = run_owner(session, start + 600, lateness)
    packets = [packet for _, packet in sent]
    first = packets[0]
    assert first.marker and all(not packet.marker for packet in packets[1:])
    # Every slot due by the last wake-up was sent, and no other: ten minutes is 30000 slots,
    # plus those a late last wake-up (up to 0.15 s) found due.
    last_wake = sent[-1][0]
    assert len(packets) == int((last_wake - start) / 0.02 + 1e-9) + 1
    assert len(packets) >= 30000
    for index, (when, packet) in enumerate(sent):
        assert packet.sequence == (first.sequence + index) % 65536
        assert packet.timestamp == (first.timestamp + 160 * index) % 2**32
        # Never early, and never more than the catch-up bound late.
        deadline = start + index * 0.02
        assert deadline - 1e-9 <= when <= deadline + 0.2 + 1e-9
    assert session.stats()["packets_sent"] == len(packets)
    assert session.skipped_packets == 0


def test_catch_up_is_bounded_and_timestamps_jump_with_real_time():
    session = make_session()
    session.start(0.0)
    session.handle_timer(0.0)
    [first] = rtp_only(session.datagrams_to_send())
    session.handle_timer(0.065)  # three slots overdue: all sent at once
    packets = rtp_only(session.datagrams_to_send())
    assert [p.timestamp - first.timestamp for p in packets] == [160, 320, 480]
    session.handle_timer(1.0651)  # 50 slots overdue: only the last 200 ms are sent
    packets = rtp_only(session.datagrams_to_send())
    assert len(packets) == 10
    assert packets[0].sequence == (first.sequence + 4) % 65536
    assert [(p.timestamp - first.timestamp) % 2**32 // 160 for p in packets] == list(
        range(44, 54)
    )
    assert packets[0].marker and not any(p.marker for p in packets[1:])
    assert session.skipped_packets == 40
    assert session.get_timer() == pytest.approx(54 * 0.02)


def test_silence_from_the_source_starts_a_new_talkspurt_with_marker():
    session = make_session()
    frames = iter([FRAME, FRAME, None, None, FRAME, FRAME])
    session.set_source(lambda: next(frames))
    session.start(0.0)
    session.handle_timer(0.1)
    packets = rtp_only(session.datagrams_to_send())
    assert [p.marker for p in packets] == [True, False, True, False]
    offsets = [(p.timestamp - packets[0].timestamp) // 160 for p in packets]
    assert offsets == [0, 1, 4, 5]
    assert [(p.sequence - packets[0].sequence) % 65536 for p in packets] == [0, 1, 2, 3]
    assert packets[0].payload == FRAME


def test_initial_ssrc_sequence_and_timestamp_are_random():
    values = set()
    for _ in range(8):
        session = make_session()
        session.start(0.0)
        session.handle_timer(0.0)
        [packet] = rtp_only(session.datagrams_to_send())
        values.add((packet.ssrc, packet.sequence, packet.timestamp))
        assert packet.ssrc == session.ssrc
    assert len({v[0] for v in values}) == 8
    assert len({v[2] for v in values}) == 8


def test_hold_stops_packets_but_not_the_clock():
    session = make_session()
    session.start(0.0)
    session.handle_timer(0.0)
    [first] = rtp_only(session.datagrams_to_send())
    session.set_sending(False, 0.01)
    session.handle_timer(1.0)
    assert rtp_only(session.datagrams_to_send()) == []
    session.set_sending(True, 1.001)
    session.handle_timer(session.get_timer())
    [resumed] = rtp_only(session.datagrams_to_send())
    assert resumed.marker
    assert (resumed.timestamp - first.timestamp) % 2**32 == 51 * 160


# -- DTMF -----------------------------------------------------------------------------------------


def test_dtmf_events_interleave_with_audio_and_reach_the_receiver_once():
    sender = make_session()
    receiver_dtmf = DtmfReceiver()
    receiver = make_session(
        remote=A_ADDR,
        on_dtmf_packet=lambda packet, now: receiver_dtmf.receive(
            packet.timestamp, packet.sequence, packet.marker, packet.payload, now
        ),
    )
    sender.start(0.0)
    receiver.start(0.0)
    sender.handle_timer(0.0)
    sender.send_dtmf("5", 0.005, duration_ms=100)
    sender.send_dtmf("#", 0.005, duration_ms=100)
    packets = []
    now = 0.0
    while now < 1.0:
        for data, _ in sender.datagrams_to_send():
            receiver.receive(data, A_ADDR, now)
            if not is_rtcp(data):
                packets.append((now, RtpPacket.parse(data)))
        now = sender.get_timer()
        sender.handle_timer(now)
    events = [p for _, p in packets if p.payload_type == 101]
    audio = [p for _, p in packets if p.payload_type == 0]
    assert {p.ssrc for p in events} == {sender.ssrc}
    sequences = [p.sequence for _, p in packets]
    assert sequences == [(sequences[0] + i) % 65536 for i in range(len(sequences))]
    first_event = events[0]
    assert first_event.marker and first_event.payload[0] == 5
    assert (first_event.timestamp - audio[0].timestamp) % 2**32 == 160  # the next slot
    assert events[-1].payload[0] == 11 and events[-1].payload[1] & 0x80
    # No audio while an event is on; audio comes back as a new talkspurt.
    event_times = [when for when, p in packets if p.payload_type == 101]
    during = [p for when, p in packets if p.payload_type == 0 and when <= event_times[-1]]
    assert during == [audio[0]]
    assert audio[1].marker
    reported = []
    while (event := receiver_dtmf.next_event()) is not None:
        reported.append(event)
    assert reported == [Digit("5", "rfc4733"), DigitEnd("5", 100), Digit("#", "rfc4733"),
                        DigitEnd("#", 100)]
    assert receiver.stats()["lost"] == 0


def test_audio_after_a_key_press_goes_back_to_the_usual_slot():
    sender = make_session()
    sender.start(0.0)
    sender.handle_timer(0.0)
    sender.send_dtmf("1", 0.005, duration_ms=60)
    now, timestamps = 0.0, []
    while now < 1.0:
        for data, _ in sender.datagrams_to_send():
            packet = RtpPacket.parse(data) if not is_rtcp(data) else None
            if packet is not None and packet.payload_type == 0:
                timestamps.append(packet.timestamp)
        now = sender.get_timer()
        sender.handle_timer(now)
    # Audio came back on the schedule (one frame per 20 ms slot, no slot twice)...
    steps = {(b - a) % 2**32 for a, b in zip(timestamps, timestamps[1:], strict=False)}
    assert all(step and step % 160 == 0 for step in steps), steps  # the event's slots skipped
    assert timestamps[-10:] == [timestamps[-10] + 160 * i for i in range(10)]
    # ...and once the event and its gap are over the session is as before it (the usual
    # slot's one-frame path, issue 14): nothing of the event is kept.
    assert sender._dtmf_busy_until is None


def test_dtmf_without_telephone_event_is_refused():
    session = RtpSession(0, identity, identity, remote_addr=B_ADDR)
    session.start(0.0)
    with pytest.raises(ValueError):
        session.send_dtmf("1", 0.0)


# -- receiving ------------------------------------------------------------------------------------


def packet_bytes(sequence, timestamp, ssrc=0x1234, payload_type=0, payload=FRAME):
    return RtpPacket(payload_type, sequence, timestamp, ssrc, payload).to_bytes()


class FakeSrtp:
    """Stands in for libsrtp in the latch rules: a packet is authentic when it ends with the
    tag (the portable tests cannot load pylibsrtp; the real one is tested in test_srtp.py)."""

    TAG = b"AUTH"

    def protect(self, data):
        return data + self.TAG

    def unprotect(self, data):
        if not data.endswith(self.TAG):
            raise ValueError("authentication failed")
        return data[:-len(self.TAG)]

    protect_rtcp = protect
    unprotect_rtcp = unprotect


SDP_ADDR = ("127.0.0.1", 4000)  # where the peer's SDP says it receives RTP
ROGUE = ("127.0.0.1", 6000)  # same host, another port
STRANGER = ("192.0.2.7", 4000)  # another host, the SDP's port


def sent_to(session, now=0.0):
    session.handle_timer(now)
    return {addr for _, addr in session.datagrams_to_send()}


def stream(session, addr, count, first_at=0.0, step=0.02, seq=1, ssrc=0x1234, wrap=None):
    for index in range(count):
        data = packet_bytes(seq + index, 160 * index, ssrc=ssrc)
        session.receive(wrap(data) if wrap else data, addr, first_at + index * step)


def test_media_only_from_the_sdp_ip_and_only_to_the_sdp_address():
    session = make_session(remote=SDP_ADDR)
    session.start(0.0)
    stream(session, STRANGER, 40)  # a steady stream from another host, even at the SDP's port
    assert session.remote_addr == SDP_ADDR
    assert session.stats()["packets_received"] == 0 and session.foreign == 40
    assert sent_to(session, 1.0) == {SDP_ADDR}
    session.receive(packet_bytes(50, 0), ("::ffff:127.0.0.1", 4000), 1.0)  # same host, mapped
    assert session.stats()["packets_received"] == 1


def test_a_packet_from_the_sdp_address_latches_and_nothing_else_is_heard_after():
    session = make_session(remote=SDP_ADDR)
    session.start(0.0)
    session.receive(packet_bytes(1, 0, payload_type=99), ROGUE, 0.0)  # not our payload type
    session.receive(b"\x80garbage", ROGUE, 0.0)
    session.receive(packet_bytes(1, 0), SDP_ADDR, 0.01)
    stream(session, ROGUE, 60, first_at=0.02, seq=100, ssrc=0x666)  # a steady hijack attempt
    assert session.remote_addr == SDP_ADDR
    assert session.remote_rtcp_addr == ("127.0.0.1", 4001)
    assert session.stats()["packets_received"] == 1
    assert session.stats()["invalid"] == 62
    assert sent_to(session, 1.0) == {SDP_ADDR}


def test_nothing_is_taken_before_start():
    session = make_session(remote=SDP_ADDR)
    stream(session, ROGUE, 20)  # queued while the call rang
    session.receive(packet_bytes(99, 0), SDP_ADDR, 0.5)
    session.start(1.0)
    assert session.stats()["packets_received"] == 0
    stream(session, ROGUE, 5, first_at=1.0, seq=21)  # continuing the same stream: no head start
    assert session.remote_addr == SDP_ADDR and session.stats()["packets_received"] == 0


def test_another_port_of_the_sdp_ip_switches_only_after_a_steady_stream():
    """RFC 4961 behind a NAT that changes the port: a steady stream from one port of the SDP's
    host, with nothing from the SDP's own address, moves our sending there, IP unchanged."""
    session = make_session(remote=SDP_ADDR)
    session.start(0.0)
    nat = ("127.0.0.1", 5000)
    stream(session, nat, LATCH_PACKETS - 1)
    assert session.remote_addr == SDP_ADDR and session.stats()["packets_received"] == 0
    session.receive(packet_bytes(1, 0, ssrc=0x666), ROGUE, 0.19)  # a stranger interleaves
    stream(session, nat, LATCH_PACKETS - 1, first_at=0.2, seq=LATCH_PACKETS)
    assert session.remote_addr == SDP_ADDR  # the count started over
    stream(session, nat, 1, first_at=0.4, seq=2 * LATCH_PACKETS - 1)
    assert session.remote_addr == nat and session.remote_rtcp_addr == ("127.0.0.1", 5001)
    assert session.stats()["packets_received"] == 1  # the one that confirmed it
    stream(session, SDP_ADDR, 5, first_at=0.5, seq=500)  # latched: once and for all
    assert session.remote_addr == nat and session.stats()["packets_received"] == 1
    assert sent_to(session, 6.0) == {nat, ("127.0.0.1", 5001)}  # RTP and RTCP, same host


def test_a_nat_stream_with_loss_and_reordering_still_latches():
    session = make_session(remote=SDP_ADDR)
    session.start(0.0)
    nat = ("127.0.0.1", 5000)
    rng = random.Random(3)
    arrivals = sorted((index * 0.02 + rng.uniform(0, 0.1), index) for index in range(50)
                      if rng.random() > 0.05)  # 5 % loss, 0-100 ms jitter
    for when, index in arrivals:
        session.receive(packet_bytes(index, 160 * index), nat, when)
    assert session.remote_addr == nat
    assert session.stats()["packets_received"] >= 50 - 2 * LATCH_PACKETS - 5


def test_a_burst_is_not_a_steady_stream():
    session = make_session(remote=SDP_ADDR)
    session.start(0.0)
    stream(session, ROGUE, 5 * LATCH_PACKETS, step=0.001)  # 50 packets in 50 ms
    assert session.remote_addr == SDP_ADDR and session.stats()["packets_received"] == 0
    stream(session, ROGUE, LATCH_PACKETS, first_at=0.06, step=0.02, seq=1000)  # a gap of 950
    assert session.remote_addr == SDP_ADDR  # not in sequence with the burst: counted anew...
    stream(session, ROGUE, 2, first_at=0.3, seq=1000 + LATCH_PACKETS)
    assert session.remote_addr == ROGUE  # ...and it is the same host: without SRTP, it may


def test_with_srtp_only_authenticated_media_latches_and_never_another_ip():
    session = make_session(remote=SDP_ADDR, srtp=FakeSrtp())
    session.start(0.0)
    stream(session, SDP_ADDR, 20)  # the right address but not authenticated
    stream(session, STRANGER, 20, seq=30, wrap=FakeSrtp().protect)  # authentic, other host
    assert session.remote_addr == SDP_ADDR and session.stats()["packets_received"] == 0
    assert session.stats()["srtp_failures"] == 20 and session.foreign == 20
    nat = ("127.0.0.1", 5000)
    session.receive(FakeSrtp().protect(packet_bytes(60, 0)), nat, 0.5)  # authentic, same host
    assert session.remote_addr == nat and session.stats()["packets_received"] == 1
    stream(session, SDP_ADDR, 3, first_at=0.6, seq=61, wrap=FakeSrtp().protect)
    assert session.remote_addr == nat and session.stats()["packets_received"] == 1


def test_rtcp_goes_to_the_sdp_rtcp_address_and_comes_only_from_the_peer():
    rtcp_addr = ("127.0.0.1", 4100)  # a=rtcp:4100 (RFC 3605), not RTP port + 1
    session = make_session(remote=SDP_ADDR, remote_rtcp_addr=rtcp_addr)
    session.start(0.0)
    session.receive(packet_bytes(1, 0, ssrc=0x1234), SDP_ADDR, 0.0)
    report = ReceiverReport(0x666).to_bytes()
    session.receive(report, ("127.0.0.1", 6001), 0.1)  # other port, not the peer's SSRC
    session.receive(ReceiverReport(0x1234).to_bytes(), STRANGER, 0.1)  # other host
    assert session.foreign == 2 and session.remote_rtcp_addr == rtcp_addr
    assert {addr for _, addr in session.datagrams_to_send()} == set()
    assert sent_to(session, 6.0) == {SDP_ADDR, rtcp_addr}
    # The peer's own source (its SSRC) reporting from another port of its host is taken.
    session.receive(ReceiverReport(0x1234).to_bytes(), ("127.0.0.1", 5001), 6.1)
    assert session.remote_rtcp_addr == ("127.0.0.1", 5001)


def test_a_re_offer_moves_the_peer_and_latching_starts_over():
    session = make_session(remote=SDP_ADDR)
    session.start(0.0)
    session.receive(packet_bytes(1, 0), SDP_ADDR, 0.0)
    moved = ("127.0.0.1", 4200)
    session.set_remote(moved)
    session.receive(packet_bytes(2, 160), SDP_ADDR, 0.02)  # the old address: not latched again
    assert session.remote_addr == moved and session.remote_rtcp_addr == ("127.0.0.1", 4201)
    session.receive(packet_bytes(3, 320), moved, 0.04)
    assert session.stats()["packets_received"] == 2
    assert sent_to(session, 1.0) == {moved}


def test_statistics_with_synthetic_loss_reordering_and_jitter():
    session = make_session()
    session.start(0.0)
    rng = random.Random(5)
    lost = set(rng.sample(range(1, 1999), 100))
    arrivals = []
    for index in range(2000):
        if index in lost:
            continue
        # Packet 0 comes first, undelayed: the first packet received sets the base (A.1).
        delay = rng.uniform(0, 0.030) if index else 0.0
        arrivals.append((index * 0.02 + delay, index))
    arrivals.sort()  # delays above 20 ms reorder neighbours
    assert any(a[1] > b[1] for a, b in zip(arrivals, arrivals[1:], strict=False))
    base_seq = 65000  # crosses the 16-bit wrap
    estimates = []
    for number, (when, index) in enumerate(arrivals):
        data = packet_bytes((base_seq + index) % 65536, (7 + 160 * index) % 2**32)
        session.receive(data, A_ADDR, when)
        if number >= 200 and number % 10 == 0:
            estimates.append(session.stats()["jitter_ms"])
    # Uniform 0-30 ms delay: E|D1 - D2| = 10 ms is what the A.8 estimator converges to. Its
    # 1/16 gain leaves the single latest value wandering by a few ms, so average it over the run.
    assert 8.5 <= sum(estimates) / len(estimates) <= 11.5
    duplicate = packet_bytes((base_seq + 1999) % 65536, (7 + 160 * 1999) % 2**32)
    session.receive(duplicate, A_ADDR, 40.1)
    stats = session.stats()
    assert stats["expected"] == 2000
    assert stats["packets_received"] == 1901
    assert stats["lost"] == 99  # 100 lost, one duplicate counted as received (RFC 3550 A.3)
    assert stats["fraction_lost"] == pytest.approx(99 / 2000)
    assert stats["duplicates"] == 1


def test_jitter_is_near_zero_for_a_steady_stream_and_large_seq_jump_needs_confirmation():
    session = make_session()
    session.start(0.0)
    for index in range(100):
        session.receive(packet_bytes(index, 160 * index), A_ADDR, 0.5 + index * 0.02)
    assert session.stats()["jitter_ms"] < 0.01
    session.receive(packet_bytes(30000, 160 * 100), A_ADDR, 2.5)  # stray: ignored
    assert session.stats()["packets_received"] == 100
    session.receive(packet_bytes(30001, 160 * 101), A_ADDR, 2.52)  # confirms: restart
    session.receive(packet_bytes(30002, 160 * 102), A_ADDR, 2.54)
    assert session.stats()["packets_received"] == 2
    assert session.stats()["lost"] == 0


def test_new_ssrc_is_a_new_source():
    session = make_session()
    session.start(0.0)
    for index in range(10):
        session.receive(packet_bytes(index, 160 * index, ssrc=1), A_ADDR, index * 0.02)
    for index in range(5):
        session.receive(packet_bytes(500 + index, 9999, ssrc=2), A_ADDR, 0.2 + index * 0.02)
    assert session.remote_ssrc == 2
    assert session.stats()["packets_received"] == 5


# -- RTCP -----------------------------------------------------------------------------------------


def exchange(a, b, until, delay=0.03, start=0.0):
    """Run two sessions against each other, event by event, over a network with one-way `delay`.

    Time jumps to the next timer or arrival, so measured round trips are exact.
    """
    in_flight = []  # (arrival, destination session, data, source address)
    seen = {id(a): [], id(b): []}
    now = start
    while now < until:
        for session, peer, addr in ((a, b, A_ADDR), (b, a, B_ADDR)):
            timer = session.get_timer()
            if timer is not None and timer <= now:
                session.handle_timer(now)
            for data, destination in session.datagrams_to_send():
                source = (addr[0], addr[1] + 1) if destination[1] % 2 else addr
                in_flight.append((now + delay, peer, data, source))
                seen[id(session)].append((now, data, destination))
        for item in [item for item in in_flight if item[0] <= now]:
            in_flight.remove(item)
            item[1].receive(item[2], item[3], now)
        upcoming = [item[0] for item in in_flight]
        upcoming += [t for t in (a.get_timer(), b.get_timer()) if t is not None]
        now = min(upcoming)
    return seen


def test_sr_when_sending_rr_when_not_and_round_trip_time():
    a = make_session(remote=B_ADDR, cname="door@example")
    b = make_session(remote=A_ADDR)
    b.set_source(lambda: None)  # B only listens
    a.start(0.0)
    b.start(0.0)
    seen = exchange(a, b, 16.0)
    a_reports = [(when, packets, dest) for when, data, dest in seen[id(a)] if is_rtcp(data)
                 for packets in [parse_rtcp(data)]]
    b_reports = [(when, packets, dest) for when, data, dest in seen[id(b)] if is_rtcp(data)
                 for packets in [parse_rtcp(data)]]
    assert 2 <= len(a_reports) <= 8 and 2 <= len(b_reports) <= 8
    for _, packets, dest in a_reports:
        assert isinstance(packets[0], SenderReport) and packets[0].ssrc == a.ssrc
        assert isinstance(packets[1], SourceDescription)
        assert packets[1].cname(a.ssrc) == b"door@example"
        assert dest == ("127.0.0.1", B_ADDR[1] + 1)
    times = [when for when, _, _ in a_reports]
    assert 1.25 <= times[0] <= 3.75  # half interval, randomised
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(2.5 <= gap <= 7.5 for gap in gaps)
    last_rr = b_reports[-1][1][0]
    assert isinstance(last_rr, ReceiverReport)
    [block] = last_rr.reports
    assert block.ssrc == a.ssrc and block.cumulative_lost == 0 and block.last_sr != 0
    rr_time = b_reports[-1][0]
    a_rtp = [RtpPacket.parse(data) for when, data, _ in seen[id(a)]
             if not is_rtcp(data) and when + 0.03 <= rr_time]
    assert block.highest_sequence % 65536 == a_rtp[-1].sequence
    stats = a.stats()
    assert stats["rtt_ms"] == pytest.approx(60, abs=0.05)  # 2 x 30 ms
    assert stats["remote_lost"] == 0
    assert b.stats()["rtt_ms"] is None  # B never got a report block with LSR about itself


def test_round_trip_time_is_exact_with_wallclock_offset_and_rtcp_mux():
    a = make_session(remote=B_ADDR, rtcp_mux=True, wallclock_offset=3_900_000_000.0)
    b = make_session(remote=A_ADDR, rtcp_mux=True, wallclock_offset=17.0)
    a.start(100.0)
    b.start(100.0)
    seen = exchange(a, b, 120.0, delay=0.05, start=100.0)
    assert all(dest == B_ADDR for _, _, dest in seen[id(a)])
    assert a.stats()["rtt_ms"] == pytest.approx(100, abs=0.05)
    assert b.stats()["rtt_ms"] == pytest.approx(100, abs=0.05)


def test_close_sends_bye_and_the_peer_notices():
    a = make_session(rtcp_mux=True)
    b = make_session(remote=A_ADDR, rtcp_mux=True)
    a.start(0.0)
    b.start(0.0)
    exchange(a, b, 0.2)
    a.close(0.2)
    [(data, dest)] = [(d, addr) for d, addr in a.datagrams_to_send() if is_rtcp(d)]
    packets = parse_rtcp(data)
    assert isinstance(packets[-1], Bye) and packets[-1].ssrcs == [a.ssrc]
    b.receive(data, A_ADDR, 0.21)
    assert b.remote_bye
    assert a.get_timer() is None
    a.handle_timer(5.0)
    assert a.datagrams_to_send() == []


# -- end to end -----------------------------------------------------------------------------------


def test_tone_through_srtp_arrives_as_the_tone():
    pytest.importorskip("pylibsrtp")  # SRTP is CPython only (not in the portable core)
    from firmware.rtp.srtp import AES_CM_128_HMAC_SHA1_80, SrtpSession, new_key_material

    a_keys, b_keys = new_key_material(), new_key_material()
    a_srtp = SrtpSession(AES_CM_128_HMAC_SHA1_80, a_keys[:16], a_keys[16:], b_keys[:16],
                         b_keys[16:])
    b_srtp = SrtpSession(AES_CM_128_HMAC_SHA1_80, b_keys[:16], b_keys[16:], a_keys[:16],
                         a_keys[16:])
    a = RtpSession(0, PCMU.encode, PCMU.decode, remote_addr=B_ADDR, srtp=a_srtp, rtcp_mux=True)
    b = RtpSession(0, PCMU.encode, PCMU.decode, remote_addr=A_ADDR, srtp=b_srtp, rtcp_mux=True)
    tone = ToneGenerator([1000])
    a.set_source(lambda: next(tone))
    a.start(0.0)
    b.start(0.0)
    rng = random.Random(9)
    heard = []
    in_flight = []
    for tick in range(150):  # 3 s; B's speaker pulls every 20 ms
        now = tick * 0.02 + 0.005
        a.handle_timer(now)
        for data, _ in a.datagrams_to_send():
            assert not data.startswith(PCMU.encode(FRAME)[:8])
            in_flight.append((now + rng.uniform(0, 0.03), data))
        in_flight.sort()
        while in_flight and in_flight[0][0] <= now:
            b.receive(in_flight.pop(0)[1], A_ADDR, now)
        heard.append(b.pull_audio(now))
    samples = pcm_to_samples(b"".join(heard[50:]))
    assert mean_square(samples) > 1e6
    assert goertzel_power(samples, 1000, 8000) > 0.9 * mean_square(samples)
    assert goertzel_power(samples, 1250, 8000) < 0.01 * mean_square(samples)
    stats = b.stats()
    assert stats["packets_received"] > 140 and stats["srtp_failures"] == 0
    # A packet not protected with A's key is refused.
    b.receive(packet_bytes(1, 2, ssrc=a.ssrc), A_ADDR, 3.1)
    assert b.stats()["srtp_failures"] == 1


def test_pcm_frames_are_16_bit_little_endian():
    session = make_session()
    session.start(0.0)
    tone = struct.pack("<160h", *([1000] * 160))
    for index in range(10):
        session.receive(packet_bytes(index, 160 * index, payload=tone), A_ADDR, index * 0.02)
    out = [session.pull_audio(0.01 + index * 0.02) for index in range(10)]
    assert tone in out


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8), st.booleans())
def test_receive_never_raises_on_junk(datagrams, looks_like_rtcp):
    session = make_session(rtcp_mux=True)
    session.start(0.0)
    for index, data in enumerate(datagrams):
        if looks_like_rtcp and len(data) >= 2:
            data = b"\x80\xc9" + data[2:]  # RR header, random rest
        session.receive(data, A_ADDR, index * 0.02)
        session.pull_audio(index * 0.02)
    session.handle_timer(10.0)
    assert session.stats()["packets_received"] <= len(datagrams)


def test_sent_packets_are_the_rtp_packets_bytes_and_parse_back():
    # the send path packs the header itself (issue 14): the same bytes as RtpPacket.to_bytes
    session = make_session()
    session.start(0.0)
    session.handle_timer(0.061)
    sent = [data for data, _ in session.datagrams_to_send() if not is_rtcp(data)]
    assert len(sent) == 4
    for index, data in enumerate(sent):
        packet = RtpPacket.parse(data)
        assert packet.marker == (index == 0) and packet.payload_type == 0
        assert packet.ssrc == session.ssrc and packet.payload == FRAME and packet.csrcs == []
        assert data == RtpPacket(0, packet.sequence, packet.timestamp, session.ssrc, FRAME,
                                 index == 0).to_bytes()
    sequences = [RtpPacket.parse(d).sequence for d in sent]
    assert [(s - sequences[0]) % 0x10000 for s in sequences] == [0, 1, 2, 3]


class _FailingProtection:
    """An SRTP layer whose protect fails every other packet (issue 14's fast send path must
    drop such a packet, never send it in the clear)."""

    def __init__(self):
        self.calls = 0

    def protect(self, data):
        self.calls += 1
        if self.calls % 2:
            raise ValueError("cipher failure")
        return b"P" + data

    def protect_rtcp(self, data):
        return b"P" + data


def test_a_packet_whose_protection_fails_is_dropped_never_sent_in_the_clear():
    session = make_session(srtp=_FailingProtection())
    session.start(0.0)
    sent = []
    for tick in range(6):
        session.handle_timer(tick * 0.02)
        sent += [data for data, _ in session.datagrams_to_send()]
    assert session.send_failures == 3 and session.packets_sent == 3
    assert len(sent) == 3 and all(data.startswith(b"P") for data in sent)
    # the sequence numbers of the dropped packets are used up (as libsrtp's failed protect)
    assert [RtpPacket.parse(data[1:]).sequence for data in sent] == [
        (RtpPacket.parse(sent[0][1:]).sequence + 2 * n) % 65536 for n in range(3)]
