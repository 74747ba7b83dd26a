"""One RTP media stream, sans-I/O (RFC 3550, RFC 3551, RFC 4961, RFC 4733, RFC 5761).

The owner moves bytes and time; the session never reads a clock or touches a socket.

Sending (RFC 3550 §5.1, RFC 3551 §4.1). After `start(now)`, packet n is due at
`start + n * ptime` and carries timestamp `ts0 + n * samples_per_packet`; deadlines come from
the packet index, never from "last send + 20 ms", so late wake-ups cannot make the timestamps
drift from real time. `handle_timer(now)` sends every packet that is due, in order; a backlog
longer than `MAX_BACKLOG` is skipped (the timestamps jump with it, the sequence numbers do not)
and the next packet carries the marker. One frame per packet comes from the source callback;
`None` means silence: nothing is sent and the next packet starts a talkspurt (marker bit).
SSRC, first sequence number and first timestamp are random (§5.1, §8).

DTMF (RFC 4733 §2.5.1). `send_dtmf(key, now)` starts the event at the next packet boundary; its
packets (built by `dtmf.DtmfSender`) share our SSRC, sequence space and clock, and audio packets
are withheld while the event lasts. Further keys queue behind it.

Receiving. `receive(data, addr, now)` takes RTP or RTCP (demultiplexed per RFC 5761 §4).
The call's audio belongs to the peer the SDP names (issue 12): we send RTP only to the SDP's
address and port and RTCP only to the RTCP address it names (`a=rtcp`, RFC 3605; the RTP
address with rtcp-mux; else RTP port + 1), and accept media only from the SDP's IP address.
Nothing is accepted before `start()` (what queued up while the call rang is not the peer's
media). Symmetric RTP (RFC 4961, for a NAT that moves the port) latches once and may switch the
PORT, never the IP address:
- a valid packet from the SDP's exact address latches at once (the usual case);
- with SRTP, an authenticated packet from another port of the SDP's IP latches at once (only
  the peer has the key);
- without SRTP, another port of the SDP's IP latches only after `LATCH_PACKETS` packets in a
  row from it, of one SSRC, with sequence numbers within `LATCH_SEQ_WINDOW` of each other
  (loss and reordering allowed), spanning at least `LATCH_MIN_TIME`, with nothing from the
  SDP's own address before; its packets are dropped until then, and a packet from yet another
  port of that IP starts the count again (a stranger there can delay the switch, not take it);
- once latched, packets from any other address are dropped (counted as `foreign`).
RTCP follows the same rules; without SRTP, RTCP from another port is taken only when it comes
from the RTP source already latched (its SSRC). Only the audio and telephone-event payload
types are accepted. A new SSRC is a new source: statistics and the
jitter buffer start over. Audio is decoded and put into the jitter buffer; `pull_audio(now)`
returns one frame of PCM per 20 ms tick. Telephone events go to `on_dtmf_packet(packet, now)`.
Statistics: sequence tracking, expected and lost (Appendix A.1, A.3), interarrival jitter
(A.8).

RTCP (§6). Every ~5 s (randomised 0.5–1.5, first one at half the interval, §6.2, §6.3.5) a
compound SR (if we sent since the last report) or RR, plus SDES CNAME, goes to the RTCP address
(RTP address with rtcp-mux, else port + 1 unless given). Incoming SRs give LSR; incoming report
blocks about us give the peer's loss and the round-trip time (§6.4.1). `close(now)` sends BYE.

Public API
- `RtpSession(payload_type, encoder, decoder, remote_addr=None, remote_rtcp_addr=None,
  rtcp_mux=False, telephone_event_pt=None, clock_rate=8000, ptime=0.02, srtp=None,
  cname=None, wallclock_offset=0.0, on_dtmf_packet=None, jitter_buffer=None)`.
  `encoder(pcm) -> payload`, `decoder(payload) -> pcm`; `srtp` is any object with
  `protect`, `unprotect`, `protect_rtcp`, `unprotect_rtcp` (`srtp.SrtpSession`).
  `wallclock_offset` is added to `now` for RTCP NTP timestamps.
- `set_source(callable)`; `start(now)`; `set_sending(enabled, now)`; `send_dtmf(key, now,
  duration_ms=100)`; `handle_timer(now)`; `get_timer() -> float | None`;
  `datagrams_to_send() -> list of (bytes, addr)` (drains); `receive(data, addr, now)`;
  `pull_audio(now) -> bytes`; `close(now)`; `stats() -> dict`;
  `set_remote(remote_addr, remote_rtcp_addr=None, rtcp_mux=None)` (a re-offer moved the peer's
  media: latching starts over for the new address).
- Attributes: `ssrc`, `remote_addr`, `remote_rtcp_addr`, `remote_ssrc`, `remote_bye`, `state`.
"""

import math
import os
import struct

from firmware.rtp.dtmf import DtmfPacket, DtmfSender
from firmware.rtp.jitter import JitterBuffer
from firmware.rtp.packet import (
    RTP_HEADER_SIZE,
    RTP_VERSION,
    Bye,
    ReceiverReport,
    ReportBlock,
    RtpPacket,
    RtpParseError,
    SenderReport,
    SourceDescription,
    is_rtcp,
    ntp_middle32,
    parse_rtcp,
)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Callable
    from typing import Any

    from firmware.rtp.srtp import SrtpSession

IDLE = "idle"  # created, clock not started
ACTIVE = "active"
CLOSED = "closed"

MAX_BACKLOG = 0.2  # seconds of overdue packets we still send after a late wake-up
RTCP_INTERVAL = 5.0  # RFC 3550 §6.2 minimum, fixed: one sender and one receiver
INTER_DIGIT_GAP = 0.06
MAX_DROPOUT = 3000  # Appendix A.1
MAX_MISORDER = 100
SEQ_MOD = 0x10000
LATCH_PACKETS = 10  # symmetric RTP without SRTP: packets in a row from the new port ...
LATCH_MIN_TIME = 0.2  # ... spanning at least this long (seconds), before the port switches
LATCH_SEQ_WINDOW = 50  # ... of one SSRC whose sequence numbers stay this close (loss, reordering)
_EPSILON = 1e-9  # a deadline met exactly counts as due despite float rounding
_RTP_FIRST = RTP_VERSION << 6  # first header octet of the packets we send: no P, X, CC
_HEADER = "!BBHII"  # the fixed RTP header (RFC 3550 §5.1)
_unpack_header = struct.unpack_from
_pack_header = struct.pack


def _random_uint(octets: int) -> int:
    return int.from_bytes(os.urandom(octets), "big")


def same_ip(a: str, b: str) -> bool:
    """Whether two textual IP addresses are the same host: case and IPv6 brackets do not
    matter, and an IPv4-mapped IPv6 address equals its IPv4 address."""
    return _plain_ip(a) == _plain_ip(b)


def _same_addr(a: tuple[str, int] | None, b: tuple[str, int] | None) -> bool:
    return a is not None and b is not None and a[1] == b[1] and same_ip(a[0], b[0])


def _plain_ip(text: str) -> str:
    text = str(text).strip("[]").lower()
    if text.startswith("::ffff:") and "." in text:
        text = text[7:]
    return text


def _rtcp_sender_ssrcs(packets: list) -> list[int]:
    return [p.ssrc for p in packets if isinstance(p, (SenderReport, ReceiverReport))]


def _random_factor() -> float:
    """Uniform in [0.5, 1.5) for RTCP interval randomisation (§6.3.1)."""
    return 0.5 + _random_uint(4) / 0x100000000


class _SourceStats:
    """Reception statistics for one remote SSRC (RFC 3550 Appendix A.1, A.3, A.8; the
    interarrival jitter of A.8 and A.1's in-order case are updated in `RtpSession.receive`)."""

    def __init__(self, sequence: int, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.fraction_lost = 0  # of the last report interval, in 1/256
        self.transit: float | None = None
        self.jitter = 0.0  # timestamp units
        self._init_seq(sequence)

    def _init_seq(self, sequence: int) -> None:
        self.base_seq = sequence
        self.max_seq = sequence
        self.cycles = 0
        self.bad_seq: int | None = None
        self.received = 0
        self.expected_prior = 0
        self.received_prior = 0

    def update_seq(self, sequence: int) -> bool:
        """Appendix A.1 without probation; False when the packet should be ignored."""
        delta = (sequence - self.max_seq) % SEQ_MOD
        if delta < MAX_DROPOUT:
            if sequence < self.max_seq:
                self.cycles += SEQ_MOD
            self.max_seq = sequence
        elif delta <= SEQ_MOD - MAX_MISORDER:
            # A big jump: accept it only when the next packet confirms the new numbering.
            if sequence != self.bad_seq:
                self.bad_seq = (sequence + 1) % SEQ_MOD
                return False
            self._init_seq(sequence)
        self.received += 1
        return True

    @property
    def extended_max(self) -> int:
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        return self.extended_max - self.base_seq + 1

    @property
    def lost(self) -> int:
        return self.expected - self.received

    def report_block(self, ssrc: int, last_sr: int, delay_since_last_sr: int) -> "ReportBlock":
        expected_interval = self.expected - self.expected_prior
        received_interval = self.received - self.received_prior
        self.expected_prior = self.expected
        self.received_prior = self.received
        lost_interval = expected_interval - received_interval
        if expected_interval > 0 and lost_interval > 0:
            self.fraction_lost = (lost_interval << 8) // expected_interval
        else:
            self.fraction_lost = 0
        return ReportBlock(
            ssrc,
            self.fraction_lost,
            self.lost,
            self.extended_max,
            int(self.jitter),
            last_sr,
            delay_since_last_sr,
        )


class RtpSession:
    def __init__(
        self,
        payload_type: int,
        encoder: "Callable",
        decoder: "Callable",
        remote_addr: tuple[str, int] | None = None,
        remote_rtcp_addr: tuple[str, int] | None = None,
        rtcp_mux: bool = False,
        telephone_event_pt: int | None = None,
        clock_rate: int = 8000,
        ptime: float = 0.02,
        srtp: "SrtpSession | None" = None,
        cname: str | None = None,
        wallclock_offset: float = 0.0,
        on_dtmf_packet: "Callable | None" = None,
        jitter_buffer: "JitterBuffer | None" = None,
    ) -> None:
        self.payload_type = payload_type
        self.telephone_event_pt = telephone_event_pt
        self._encoder = encoder
        self._decoder = decoder
        self.clock_rate = clock_rate
        self.ptime = ptime
        self.samples_per_packet = round(clock_rate * ptime)
        self._backlog = int(MAX_BACKLOG / ptime + _EPSILON)  # packets still sent after a delay
        self._srtp = srtp
        self.rtcp_mux = rtcp_mux
        self.remote_addr: tuple[str, int] | None = None
        self.remote_rtcp_addr: tuple[str, int] | None = None
        self.set_remote(remote_addr, remote_rtcp_addr)
        self.cname = cname or (os.urandom(8).hex() + "@doorline")
        self._wallclock_offset = wallclock_offset
        self.on_dtmf_packet = on_dtmf_packet
        self._source: Callable | None = None
        self._jitter = jitter_buffer or JitterBuffer(clock_rate)
        # pull_audio(now): one frame of decoded PCM for the speaker's 20 ms tick (concealment
        # when missing): the jitter buffer's own method, no frame of ours around it (issue 14)
        self.pull_audio: Callable[[float], bytes] = self._jitter.get
        self._dtmf_sender = DtmfSender(clock_rate) if telephone_event_pt is not None else None

        self.ssrc = _random_uint(4)
        self._sequence = _random_uint(2)
        self._timestamp_origin = _random_uint(4)
        self.state = IDLE
        self.sending = True
        self._start: float = None  # type: ignore[assignment]  # set by start(), read when ACTIVE
        self._next_index = 0
        self._marker_pending = True
        self._outgoing: list[tuple[bytes, tuple[str, int]]] = []
        # (key, duration_ms) waiting for the current event to end
        self._dtmf_queue: list[tuple[str, int]] = []
        # (deadline, DtmfPacket) of the current event
        self._dtmf_packets: list[tuple[float, DtmfPacket]] = []
        self._dtmf_busy_until: float | None = None
        self._next_rtcp: float = None  # type: ignore[assignment]  # as _start
        self._sent_since_report = False

        self.packets_sent = 0
        self.octets_sent = 0
        self.skipped_packets = 0
        self.send_failures = 0
        self.remote_ssrc: int | None = None
        self._source_stats: _SourceStats | None = None
        self.invalid = 0
        self.foreign = 0  # from an address that is not (or not yet) the peer's
        self.unknown_payload = 0
        self.srtp_failures = 0
        self._last_sr = 0
        self._last_sr_at: float | None = None
        self.rtt: float | None = None
        self.remote_lost: int | None = None
        self.remote_fraction_lost: float | None = None
        self.remote_jitter: int | None = None
        self.remote_bye = False

    def set_remote(self, remote_addr: tuple[str, int] | None,
                   remote_rtcp_addr: tuple[str, int] | None = None,
                   rtcp_mux: bool | None = None) -> None:
        """Where the SDP says the peer receives RTP (and RTCP); latching starts over."""
        if rtcp_mux is not None:
            self.rtcp_mux = rtcp_mux
        if remote_rtcp_addr is None and remote_addr is not None and not self.rtcp_mux:
            remote_rtcp_addr = (remote_addr[0], remote_addr[1] + 1)
        self.remote_addr = self._sdp_addr = remote_addr
        self.remote_rtcp_addr = self._sdp_rtcp_addr = remote_rtcp_addr
        self._rtp_latched = False
        self._rtcp_latched = False
        self._candidate: list | None = None  # [addr, ssrc, last sequence, packets, first seen]

    # -- clock -------------------------------------------------------------------------------

    def set_source(self, source: "Callable") -> None:
        """`source()` returns one frame of 16-bit PCM (`samples_per_packet` samples) or None."""
        self._source = source

    def start(self, now: float) -> None:
        if self.state != IDLE:
            return
        self.state = ACTIVE
        self._start = now
        self._next_rtcp = now + RTCP_INTERVAL / 2 * _random_factor()

    def set_sending(self, enabled: bool, now: float) -> None:
        """Hold and resume (sendonly/recvonly): the packet clock keeps running meanwhile."""
        if enabled and not self.sending and self.state == ACTIVE:
            self._next_index = max(self._next_index, self._first_slot_from(now))
            self._marker_pending = True
        self.sending = enabled

    def _due_index(self, now: float) -> int:
        """Number of packet slots whose deadline is at or before `now`."""
        return int((now - self._start) / self.ptime + _EPSILON) + 1

    def _first_slot_from(self, now: float) -> int:
        """Index of the first packet slot whose deadline is at or after `now`."""
        return max(0, math.ceil((now - self._start) / self.ptime - _EPSILON))

    def _slot_time(self, index: int) -> float:
        return self._start + index * self.ptime

    def _slot_timestamp(self, index: int) -> int:
        return (self._timestamp_origin + index * self.samples_per_packet) & 0xFFFFFFFF

    def get_timer(self) -> float | None:
        if self.state != ACTIVE:
            return None
        deadline = self._next_rtcp  # asked on every wake-up (issue 14): no list, no min()
        if self.sending:
            slot = self._start + self._next_index * self.ptime
            if slot < deadline:
                deadline = slot
        if self._dtmf_packets and self._dtmf_packets[0][0] < deadline:
            deadline = self._dtmf_packets[0][0]
        return deadline

    def handle_timer(self, now: float) -> None:
        if self.state != ACTIVE:
            return
        if self.sending:
            due = int((now - self._start) / self.ptime + _EPSILON) + 1  # _due_index
            backlog = self._backlog
            if due - self._next_index > backlog:
                self.skipped_packets += due - backlog - self._next_index
                self._next_index = due - backlog
                self._marker_pending = True
            if self._next_index == due - 1 and self._dtmf_busy_until is None and \
                    self._source is not None:
                # The usual slot (one due, no telephone event sent in this session): as
                # _send_audio_slot and _send_rtp, in one frame (issue 14, sixth round: on a
                # cold wake-up every Python call costs several µs).
                frame = self._source()
                if frame is None:
                    self._marker_pending = True
                else:
                    payload = self._encoder(frame)
                    data = _pack_header(
                        _HEADER, _RTP_FIRST, (0x80 if self._marker_pending else 0) |
                        (self.payload_type & 0x7F), self._sequence,
                        (self._timestamp_origin + self._next_index * self.samples_per_packet) &
                        0xFFFFFFFF, self.ssrc) + payload
                    self._sequence = (self._sequence + 1) % SEQ_MOD
                    if self._srtp is not None:
                        try:
                            data = self._srtp.protect(data)
                        except Exception:  # the SRTP layer's own error type; keep going
                            self.send_failures += 1
                            data = b""
                    if data:
                        self.packets_sent += 1
                        self.octets_sent += len(payload)
                        self._sent_since_report = True
                        if self.remote_addr is not None:
                            self._outgoing.append((data, self.remote_addr))
                    self._marker_pending = False
                self._next_index = due
            while self._next_index < due:
                if self._dtmf_packets:
                    slot_time = self._slot_time(self._next_index)
                    while self._dtmf_packets and \
                            self._dtmf_packets[0][0] <= slot_time + _EPSILON:
                        self._send_dtmf_packet()
                self._send_audio_slot(self._next_index)
                self._next_index += 1
        while self._dtmf_packets and self._dtmf_packets[0][0] <= now + _EPSILON:
            self._send_dtmf_packet()
        if not self._dtmf_packets:
            if self._dtmf_queue:
                key, duration_ms = self._dtmf_queue.pop(0)
                self._begin_dtmf(key, duration_ms, now)
            elif self._dtmf_busy_until is not None and \
                    now > self._dtmf_busy_until + INTER_DIGIT_GAP + _EPSILON:
                self._dtmf_busy_until = None  # the event and its gap are over: the usual slot
        if now + _EPSILON >= self._next_rtcp:
            self._send_rtcp(now)
            self._next_rtcp = now + RTCP_INTERVAL * _random_factor()

    # -- sending -----------------------------------------------------------------------------

    def _send_audio_slot(self, index: int) -> None:
        frame = self._source() if self._source is not None else None
        if self._dtmf_busy_until is not None and \
                self._slot_time(index) <= self._dtmf_busy_until + _EPSILON:
            self._marker_pending = True  # audio resumes as a new talkspurt after the event
            return
        if frame is None:
            self._marker_pending = True
            return
        payload = self._encoder(frame)
        timestamp = self._timestamp_origin + index * self.samples_per_packet  # _slot_timestamp
        self._send_rtp(self.payload_type, timestamp, self._marker_pending, payload)
        self._marker_pending = False

    def _send_rtp(self, payload_type: int, timestamp: int, marker: bool, payload: bytes) -> None:
        # RtpPacket(...).to_bytes() without the object: the fixed header, packed once per packet
        data = struct.pack("!BBHII", _RTP_FIRST, (0x80 if marker else 0) | (payload_type & 0x7F),
                           self._sequence, timestamp & 0xFFFFFFFF, self.ssrc) + payload
        self._sequence = (self._sequence + 1) % SEQ_MOD
        if self._srtp is not None:
            try:
                data = self._srtp.protect(data)
            except Exception:  # the SRTP layer's own error type; keep the stream going
                self.send_failures += 1
                return
        self.packets_sent += 1
        self.octets_sent += len(payload)
        self._sent_since_report = True
        if self.remote_addr is not None:
            self._outgoing.append((data, self.remote_addr))

    def send_dtmf(self, key: str, now: float, duration_ms: int = 100) -> None:
        """Queue one RFC 4733 key press; raises ValueError without telephone-event."""
        if self._dtmf_sender is None:
            raise ValueError("telephone-event was not negotiated")
        if self.state != ACTIVE:
            raise ValueError("session not started")
        if self._dtmf_packets or self._dtmf_queue:
            self._dtmf_queue.append((key, duration_ms))
        else:
            self._begin_dtmf(key, duration_ms, now)

    def _begin_dtmf(self, key: str, duration_ms: int, now: float) -> None:
        earliest = now
        if self._dtmf_busy_until is not None:
            earliest = max(earliest, self._dtmf_busy_until + INTER_DIGIT_GAP)
        index = max(self._next_index, self._first_slot_from(earliest))
        start = self._slot_time(index)
        assert self._dtmf_sender is not None  # send_dtmf needs a telephone-event type
        packets = self._dtmf_sender.packets(key, duration_ms, self._slot_timestamp(index))
        self._dtmf_packets = [(start + packet.offset, packet) for packet in packets]
        self._dtmf_busy_until = self._dtmf_packets[-1][0]

    def _send_dtmf_packet(self) -> None:
        _, packet = self._dtmf_packets.pop(0)
        assert self.telephone_event_pt is not None  # as in _begin_dtmf
        self._send_rtp(self.telephone_event_pt, packet.timestamp, packet.marker, packet.payload)

    def datagrams_to_send(self) -> list[tuple[bytes, tuple[str, int]]]:
        outgoing, self._outgoing = self._outgoing, []
        return outgoing

    # -- receiving ---------------------------------------------------------------------------

    def receive(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        """One datagram from the RTP socket (or the RTCP socket: RTCP is recognised either way)."""
        if self.state != ACTIVE:
            return  # before start: queued while ringing, not the answered peer's media
        if len(data) >= 2 and 192 <= data[1] <= 223 and is_rtcp(data):  # RFC 5761 §4
            self._receive_rtcp(data, addr, now)
            return
        sdp = self._sdp_addr
        # Latched and from exactly the latched address (every packet of a call): no text
        # comparison of addresses.
        if not (self._rtp_latched and addr == self.remote_addr) and (
                sdp is None or not same_ip(addr[0], sdp[0]) or
                (self._rtp_latched and not _same_addr(addr, self.remote_addr))):
            self.foreign += 1
            return
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect(bytes(data))
            except Exception:  # authentication or replay failure
                self.srtp_failures += 1
                return
        packet: RtpPacket | None = None
        if len(data) >= RTP_HEADER_SIZE and data[0] == _RTP_FIRST:
            # No padding, extension or CSRC (every packet of a call): the fields straight from
            # the header, no RtpPacket object (issue 14: on a cold wake-up the object costs
            # more than the unpacking); RtpPacket.parse takes every other header.
            second, sequence, timestamp, ssrc = _unpack_header(_HEADER, data)[1:]
            payload_type = second & 0x7F
        else:
            try:
                packet = RtpPacket.parse(data)
            except RtpParseError:
                self.invalid += 1
                return
            payload_type, sequence, timestamp, ssrc = (
                packet.payload_type, packet.sequence, packet.timestamp, packet.ssrc)
        if payload_type not in (self.payload_type, self.telephone_event_pt):
            self.unknown_payload += 1
            return
        if not self._rtp_latched:
            if not _same_addr(addr, sdp) and self._srtp is None and \
                    not self._confirms(addr, ssrc, sequence, now):
                self.foreign += 1
                return
            self._latch_rtp(addr)
        if ssrc != self.remote_ssrc:
            self.remote_ssrc = ssrc
            self._source_stats = _SourceStats(sequence, self.clock_rate)
            self._jitter.reset()
            self._last_sr, self._last_sr_at = 0, None
        source_stats = self._source_stats
        assert source_stats is not None  # made for the first packet's SSRC just above
        if 0 < sequence - source_stats.max_seq < MAX_DROPOUT:
            # in order, no wrap (every packet but a few): update_seq's first case, inline
            source_stats.max_seq = sequence
            source_stats.received += 1
        elif not source_stats.update_seq(sequence):
            return
        if payload_type == self.telephone_event_pt:
            if self.on_dtmf_packet is not None:
                if packet is None:
                    packet = RtpPacket(payload_type, sequence, timestamp, ssrc,
                                       data[RTP_HEADER_SIZE:], second >= 0x80)
                self.on_dtmf_packet(packet, now)
            return
        # source_stats.update_jitter(timestamp, now), inline (RFC 3550 A.8)
        transit = now * self.clock_rate - timestamp
        if source_stats.transit is not None:
            # Timestamps wrap at 2^32; a difference near it is a wrap, not jitter.
            difference = (transit - source_stats.transit + 0x80000000) % 0x100000000 - \
                0x80000000
            source_stats.jitter += (abs(difference) - source_stats.jitter) / 16
        source_stats.transit = transit
        payload = packet.payload if packet is not None else data[RTP_HEADER_SIZE:]
        self._jitter.put(sequence, timestamp, self._decoder(payload), now)

    def _confirms(self, addr: tuple[str, int], ssrc: int, sequence: int, now: float) -> bool:
        """Symmetric RTP without SRTP: has `addr` (the SDP's IP, another port) sent a steady
        stream long enough to be taken for the peer behind a port-changing NAT?"""
        candidate = self._candidate
        # None only with no candidate, when the test below stops before comparing it
        step: Any = None if candidate is None else (sequence - candidate[2]) % SEQ_MOD
        if candidate is None or candidate[0] != addr or candidate[1] != ssrc or \
                LATCH_SEQ_WINDOW < step < SEQ_MOD - LATCH_SEQ_WINDOW:
            self._candidate = [addr, ssrc, sequence, 1, now]
            return False
        if step == 0:
            return False  # a duplicate proves nothing
        if step <= LATCH_SEQ_WINDOW:
            candidate[2] = sequence  # ahead; a late (reordered) one only counts
        candidate[3] += 1
        return candidate[3] >= LATCH_PACKETS and now - candidate[4] + _EPSILON >= LATCH_MIN_TIME

    def _latch_rtp(self, addr: tuple[str, int]) -> None:
        self._rtp_latched = True
        self._candidate = None
        if not _same_addr(addr, self.remote_addr):
            self.remote_addr = addr
            assert self._sdp_addr is not None  # media is accepted only from the SDP's address
            if not self.rtcp_mux and not self._rtcp_latched and \
                    self._sdp_rtcp_addr == (self._sdp_addr[0], self._sdp_addr[1] + 1):
                self.remote_rtcp_addr = (addr[0], addr[1] + 1)


    # -- RTCP --------------------------------------------------------------------------------

    def _ntp(self, now: float) -> int:
        return int((now + self._wallclock_offset) * 0x100000000)

    def _report_blocks(self, now: float) -> "list[ReportBlock]":
        if self._source_stats is None:
            return []
        delay = 0
        if self._last_sr_at is not None:
            delay = int((now - self._last_sr_at) * 65536)
        ssrc = self.remote_ssrc  # set together with _source_stats
        return [self._source_stats.report_block(ssrc, self._last_sr, delay)]  # type: ignore[arg-type]

    def _compound(self, now: float) -> "list[ReceiverReport | SourceDescription | SenderReport]":
        blocks = self._report_blocks(now)
        report: SenderReport | ReceiverReport
        if self._sent_since_report:
            elapsed = now - self._start
            rtp_timestamp = self._timestamp_origin + int(elapsed * self.clock_rate)
            report = SenderReport(
                self.ssrc,
                self._ntp(now),
                rtp_timestamp & 0xFFFFFFFF,
                self.packets_sent,
                self.octets_sent,
                blocks,
            )
        else:
            report = ReceiverReport(self.ssrc, blocks)
        self._sent_since_report = False
        return [report, SourceDescription.with_cname(self.ssrc, self.cname)]

    def _send_rtcp(self, now: float, extra: "list[Bye] | tuple[Bye, ...]" = ()) -> None:
        data = b"".join(packet.to_bytes() for packet in self._compound(now) + list(extra))
        if self._srtp is not None:
            try:
                data = self._srtp.protect_rtcp(data)
            except Exception:
                self.send_failures += 1
                return
        destination = self.remote_addr if self.rtcp_mux else self.remote_rtcp_addr
        if destination is not None:
            self._outgoing.append((data, destination))

    def _receive_rtcp(self, data: bytes, addr: tuple[str, int], now: float) -> None:
        if self.rtcp_mux:
            expected, latched = self.remote_addr, self._rtp_latched
        else:
            expected, latched = self.remote_rtcp_addr, self._rtcp_latched
        if expected is None or not same_ip(addr[0], expected[0]) or \
                (latched and not _same_addr(addr, expected)):
            self.foreign += 1
            return
        if self._srtp is not None:
            try:
                data = self._srtp.unprotect_rtcp(bytes(data))
            except Exception:
                self.srtp_failures += 1
                return
        try:
            packets = parse_rtcp(data)
        except RtpParseError:
            self.invalid += 1
            return
        if not _same_addr(addr, expected) and self._srtp is None and not (
                self._rtp_latched and self.remote_ssrc in _rtcp_sender_ssrcs(packets)):
            self.foreign += 1  # another port, unauthenticated and not our peer's source
            return
        if not self.rtcp_mux and not self._rtcp_latched:
            self._rtcp_latched = True
            if not _same_addr(addr, expected):
                self.remote_rtcp_addr = addr
        for packet in packets:
            if isinstance(packet, SenderReport) and packet.ssrc == self.remote_ssrc:
                self._last_sr = ntp_middle32(packet.ntp_timestamp)
                self._last_sr_at = now
            if isinstance(packet, (SenderReport, ReceiverReport)):
                for block in packet.reports:
                    if block.ssrc == self.ssrc:
                        self._take_report(block, now)
            elif isinstance(packet, Bye) and self.remote_ssrc in packet.ssrcs:
                self.remote_bye = True

    def _take_report(self, block: "ReportBlock", now: float) -> None:
        self.remote_lost = block.cumulative_lost
        self.remote_fraction_lost = block.fraction_lost / 256
        self.remote_jitter = block.jitter
        if block.last_sr:
            # §6.4.1: RTT = A - LSR - DLSR, all in 1/65536 s of our own NTP clock.
            rtt = (ntp_middle32(self._ntp(now)) - block.last_sr - block.delay_since_last_sr)
            rtt &= 0xFFFFFFFF
            if rtt < 0x80000000:
                self.rtt = rtt / 65536

    def close(self, now: float) -> None:
        """Send a final report with BYE (§6.6) and stop."""
        if self.state == ACTIVE:
            self._send_rtcp(now, [Bye([self.ssrc])])
        self.state = CLOSED
        self._dtmf_packets = []
        self._dtmf_queue = []

    # -- statistics --------------------------------------------------------------------------

    def stats(self) -> dict[str, float | None]:
        source = self._source_stats
        expected = source.expected if source else 0
        lost = source.lost if source else 0
        jitter_stats = self._jitter.stats()
        return {
            "packets_sent": self.packets_sent,
            "octets_sent": self.octets_sent,
            "packets_received": source.received if source else 0,
            "expected": expected,
            "lost": lost,
            "fraction_lost": max(0, lost) / expected if expected > 0 else 0.0,
            "jitter_ms": source.jitter * 1000 / self.clock_rate if source else 0.0,
            "late": jitter_stats["late"],
            "concealed": jitter_stats["concealed"],
            "duplicates": jitter_stats["duplicates"],
            "buffer_ms": jitter_stats["target_ms"],
            "rtt_ms": None if self.rtt is None else self.rtt * 1000,
            "remote_lost": self.remote_lost,
            "remote_fraction_lost": self.remote_fraction_lost,
            "skipped_packets": self.skipped_packets,
            "invalid": self.invalid + self.unknown_payload + self.foreign,
            "srtp_failures": self.srtp_failures,
        }
