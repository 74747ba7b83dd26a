"""H.264 over RTP (RFC 6184, packetization-mode=1) and the key-frame requests of RTCP feedback
(RFC 4585 PLI, RFC 5104 FIR). Sans-I/O and portable (MicroPython subset): bytes in, bytes out.

Public API
- `packetize(units, max_payload) -> list[bytes]`: the RTP payloads of one access unit (its NAL
  units without start codes, in decoding order): a NAL unit that fits goes alone (single NAL unit
  packet, §5.6), a larger one is cut into FU-A fragments (§5.8). The caller sets the marker bit
  on the last payload (§5.1) and gives all of them the access unit's 90 kHz timestamp.
- `Depacketizer()`: `push(payload, sequence, timestamp, marker) -> list[list[bytes]]` takes
  RTP payloads in arrival order and returns the access units completed (lists of NAL units).
  Single NAL units, STAP-A (§5.7.1) and FU-A are understood; STAP-B, MTAP and FU-B (modes we do
  not offer) are dropped and counted in `unsupported`; a gap in the sequence numbers drops the
  access unit it hits (`lost_units`) and `wants_key_frame` turns true until an IDR arrives, so
  the receiver can send a PLI.
- `nal_type(unit)`, `is_key_frame(units)`: the NAL unit type (§1.3 of RFC 6184, H.264 Table 7-1)
  and whether an access unit holds an IDR slice.
- Feedback: `pli(sender_ssrc, media_ssrc)`, `fir(sender_ssrc, media_ssrc, seq)` build the RTCP
  packets (PSFB, PT 206, FMT 1 / FMT 4); `key_frame_requested(packet_type, count, body, ssrc)`
  tells whether one received RTCP packet (as `packet.OtherRtcp` gives it) asks the sender `ssrc`
  for a key frame.
- `pacing(sizes, path_mtu, spacing_ms=1)`: the send offsets (in ms from the first packet) that
  keep every 1 ms burst under one path MTU.
- `KeyFrames(interval=2.0)`: the key-frame policy of a sender (issue 16): `due(now)` says
  whether the next frame must be a key frame: the first one, then one every `interval` s until
  the peer has asked for one (`requested()`, on PLI or FIR), then only when it asks;
  `sent(now)` records a key frame that went out (whether asked for or not).

Choices: FU-A fragments carry the NRI of the NAL unit; a STAP-A is never produced (the encoder
gives SPS and PPS as small units that go singly; every peer tested accepts that).
"""

import struct

NAL_SLICE, NAL_IDR, NAL_SEI, NAL_SPS, NAL_PPS, NAL_AUD = 1, 5, 6, 7, 8, 9
STAP_A, STAP_B, MTAP16, MTAP24, FU_A, FU_B = 24, 25, 26, 27, 28, 29

RTCP_PSFB = 206  # payload-specific feedback (RFC 4585 §6.3)
FMT_PLI = 1  # RFC 4585 §6.3.1
FMT_FIR = 4  # RFC 5104 §4.3.1

MAX_ACCESS_UNIT = 1024 * 1024  # bytes a receiver gathers for one access unit, at most
MAX_UNITS = 256  # NAL units in one access unit, at most


def nal_type(unit: bytes) -> int:
    return unit[0] & 0x1F if unit else 0


def is_key_frame(units: "list[bytes]") -> bool:
    for unit in units:
        if nal_type(unit) == NAL_IDR:
            return True
    return False


def packetize(units: "list[bytes]", max_payload: int) -> "list[bytes]":
    """RTP payloads for one access unit; each at most `max_payload` bytes (at least 3 + 1)."""
    if max_payload < 4:
        raise ValueError("max_payload too small for FU-A")
    payloads = []
    for unit in units:
        if not unit:
            continue
        if len(unit) <= max_payload:
            payloads.append(bytes(unit))  # single NAL unit packet, §5.6
            continue
        header = unit[0]
        indicator = bytes([(header & 0xE0) | FU_A])  # F and NRI of the unit, type 28, §5.8
        kind = header & 0x1F
        body = memoryview(unit)[1:]
        step = max_payload - 2
        offset = 0
        while offset < len(body):
            chunk = body[offset: offset + step]
            fu_header = kind
            if offset == 0:
                fu_header |= 0x80  # S
            if offset + step >= len(body):
                fu_header |= 0x40  # E
            payloads.append(indicator + bytes([fu_header]) + bytes(chunk))
            offset += step
    return payloads


class Depacketizer:
    def __init__(self) -> None:
        self._units: list[bytes] = []
        self._size = 0
        self._timestamp: int | None = None
        self._fragment: bytearray | None = None
        self._next_sequence: int | None = None
        self._broken = False  # a packet of the current access unit was lost
        self.wants_key_frame = True  # until the first IDR
        self.lost_units = 0
        self.unsupported = 0
        self.units_done = 0

    def push(self, payload: bytes, sequence: int, timestamp: int,
             marker: bool) -> "list[list[bytes]]":
        done: list[list[bytes]] = []
        if self._next_sequence is not None and sequence != self._next_sequence:
            self._broken = True
            self._fragment = None
        self._next_sequence = (sequence + 1) & 0xFFFF
        if self._timestamp is not None and timestamp != self._timestamp:
            self._finish(done)  # a new timestamp ends the previous access unit (§5.1)
        self._timestamp = timestamp
        if payload:
            self._take(payload)
        if marker:
            self._finish(done)
        return done

    def _take(self, payload: bytes) -> None:
        kind = payload[0] & 0x1F
        if 1 <= kind <= 23:
            self._add(bytes(payload))
        elif kind == STAP_A:
            offset = 1
            while offset + 2 <= len(payload):
                size = (payload[offset] << 8) | payload[offset + 1]
                offset += 2
                if size == 0 or offset + size > len(payload):
                    self._broken = True
                    return
                self._add(bytes(payload[offset: offset + size]))
                offset += size
        elif kind == FU_A:
            if len(payload) < 3:
                self._broken = True
                return
            fu = payload[1]
            if fu & 0x80:  # start
                self._fragment = bytearray([(payload[0] & 0xE0) | (fu & 0x1F)])
            elif self._fragment is None:
                self._broken = True  # a fragment whose start we did not see
                return
            if len(self._fragment) + len(payload) > MAX_ACCESS_UNIT:
                self._fragment = None
                self._broken = True
                return
            self._fragment.extend(payload[2:])
            if fu & 0x40:  # end
                self._add(bytes(self._fragment))
                self._fragment = None
        else:
            self.unsupported += 1

    def _add(self, unit: bytes) -> None:
        if len(self._units) >= MAX_UNITS or self._size + len(unit) > MAX_ACCESS_UNIT:
            self._broken = True
            return
        self._units.append(unit)
        self._size += len(unit)

    def _finish(self, done: "list[list[bytes]]") -> None:
        units, broken = self._units, self._broken or self._fragment is not None
        self._units, self._size, self._fragment, self._broken = [], 0, None, False
        self._timestamp = None
        if not units and not broken:
            return
        if broken:
            self.lost_units += 1
            self.wants_key_frame = True
            return
        if is_key_frame(units):
            self.wants_key_frame = False
        self.units_done += 1
        done.append(units)


def pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """RTCP Picture Loss Indication (RFC 4585 §6.3.1): 12 bytes."""
    return struct.pack("!BBHII", 0x80 | FMT_PLI, RTCP_PSFB, 2, sender_ssrc, media_ssrc)


def fir(sender_ssrc: int, media_ssrc: int, seq: int) -> bytes:
    """RTCP Full Intra Request (RFC 5104 §4.3.1) with one FCI entry: 20 bytes."""
    return struct.pack("!BBHIIIB", 0x80 | FMT_FIR, RTCP_PSFB, 4, sender_ssrc, 0, media_ssrc,
                       seq & 0xFF) + b"\x00\x00\x00"


def key_frame_requested(packet_type: int, count: int, body: bytes, ssrc: int) -> bool:
    """Does this RTCP packet (type, FMT in `count`, body after the 4-byte header) ask the
    sender `ssrc` for a key frame? PLI names the media source in the common header, FIR in one
    of its FCI entries (RFC 5104 §4.3.1.1: the common header's media source is 0)."""
    if packet_type != RTCP_PSFB or len(body) < 8:
        return False
    if count == FMT_PLI:
        return struct.unpack_from("!I", body, 4)[0] == ssrc
    if count == FMT_FIR:
        offset = 8
        while offset + 8 <= len(body):
            if struct.unpack_from("!I", body, offset)[0] == ssrc:
                return True
            offset += 8
    return False


def pacing(sizes: "list[int]", path_mtu: int, spacing_ms: int = 1) -> "list[int]":
    """Send offsets in ms: packets go together while their bytes within one `spacing_ms` slot
    stay within `path_mtu`; the next packet waits for the next slot."""
    offsets = []
    slot, used = 0, 0
    for size in sizes:
        if used and used + size > path_mtu:
            slot += spacing_ms
            used = 0
        offsets.append(slot)
        used += size
    return offsets


class KeyFrames:
    """When the next encoded frame must be a key frame (IDR with SPS/PPS before it)."""

    def __init__(self, interval: float = 2.0) -> None:
        self.interval = interval
        self.peer_asked = False  # after the peer's first PLI/FIR: no more periodic key frames
        self._wanted = True  # the first frame
        self._last: float | None = None
        self.requests = 0

    def requested(self) -> None:
        """The peer asked (RTCP PLI or FIR)."""
        self._wanted = True
        self.peer_asked = True
        self.requests += 1

    def want(self) -> None:
        """A key frame for another reason (a re-INVITE changed the stream)."""
        self._wanted = True

    def due(self, now: float) -> bool:
        if self._wanted:
            return True
        return not self.peer_asked and self._last is not None and \
            now - self._last >= self.interval

    def sent(self, now: float) -> None:
        self._wanted = False
        self._last = now
