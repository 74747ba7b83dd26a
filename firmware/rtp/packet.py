"""RTP and RTCP packets: parse and serialise (RFC 3550 §5, §6; RFC 5761 §4).

Public API
- `RtpParseError(ValueError)`: the only exception `RtpPacket.parse` and `parse_rtcp` raise, for
  any input; `.reason` is a short text.
- `RtpPacket(payload_type, sequence, timestamp, ssrc, payload=b"", marker=False, csrcs=(),
  extension_profile=None, extension_data=b"", padding=0)`; `RtpPacket.parse(data)`;
  `packet.to_bytes()` (also `bytes(packet)` on CPython). `padding` is the number of padding
  octets (0 = P bit clear); `extension` is True when a header extension (RFC 3550 §5.3.1) is
  present.
- RTCP packets (§6.4–§6.6): `SenderReport(ssrc, ntp_timestamp, rtp_timestamp, packet_count,
  octet_count, reports=())`, `ReceiverReport(ssrc, reports=())`, `ReportBlock(ssrc,
  fraction_lost, cumulative_lost, highest_sequence, jitter, last_sr, delay_since_last_sr)`,
  `SourceDescription(chunks)` with chunks `[(ssrc, [(item_type, bytes), ...]), ...]` and
  `SourceDescription.with_cname(ssrc, cname)`, `Bye(ssrcs, reason=None)`, and `OtherRtcp` for
  types we carry but do not interpret (APP, feedback, XR). Each has `to_bytes()`.
- `parse_rtcp(data) -> list` of those packets (a compound packet, §6.1);
  `serialize_rtcp(packets) -> bytes`.
- `is_rtcp(data)`: demultiplexes RTP and RTCP sharing one port (RFC 5761 §4: second octet
  in 192..223 means RTCP).
- `ntp_middle32(ntp_timestamp)`: the middle 32 bits used in LSR/DLSR (§6.4.1).
"""

import struct

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from typing import Any

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203

SDES_CNAME = 1

_MAX_REPORT_BLOCKS = 31  # the 5-bit RC field


class RtpParseError(ValueError):
    """Bytes that are not a well-formed RTP or RTCP packet."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_rtcp(data: bytes) -> bool:
    """True when `data` looks like RTCP rather than RTP on a multiplexed port (RFC 5761 §4).

    RTP payload types 64-95 are avoided precisely so that the second octet of RTCP (packet types
    192-223) can never be mistaken for marker bit plus payload type.
    """
    return len(data) >= 2 and (data[0] >> 6) == RTP_VERSION and 192 <= data[1] <= 223


def ntp_middle32(ntp_timestamp: int) -> int:
    """The middle 32 bits of a 64-bit NTP timestamp, as echoed in LSR (RFC 3550 §6.4.1)."""
    return (ntp_timestamp >> 16) & 0xFFFFFFFF


class RtpPacket:
    """One RTP packet (RFC 3550 §5.1)."""

    __slots__ = (
        "version",
        "padding",
        "marker",
        "payload_type",
        "sequence",
        "timestamp",
        "ssrc",
        "csrcs",
        "extension_profile",
        "extension_data",
        "payload",
    )

    def __init__(
        self,
        payload_type: int,
        sequence: int,
        timestamp: int,
        ssrc: int,
        payload: bytes = b"",
        marker: bool = False,
        csrcs: list[int] | tuple[int, ...] = (),
        extension_profile: int | None = None,
        extension_data: bytes = b"",
        padding: int = 0,
    ) -> None:
        self.version = RTP_VERSION
        self.payload_type = payload_type
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload
        self.marker = marker
        self.csrcs = list(csrcs)
        self.extension_profile = extension_profile
        self.extension_data = extension_data
        self.padding = padding

    @property
    def extension(self) -> bool:
        return self.extension_profile is not None

    @classmethod
    def parse(cls, data: bytes) -> "RtpPacket":
        data = bytes(data)
        if len(data) < RTP_HEADER_SIZE:
            raise RtpParseError("shorter than the RTP header")
        first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", data, 0)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError("not RTP version 2")
        if first & 0x3F == 0:  # no padding, extension or CSRC: the media path's every packet
            return cls(second & 0x7F, sequence, timestamp, ssrc, data[RTP_HEADER_SIZE:],
                       second >= 0x80)
        csrc_count = first & 0x0F
        offset = RTP_HEADER_SIZE + 4 * csrc_count
        if len(data) < offset:
            raise RtpParseError("CSRC list truncated")
        csrcs = list(struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE))
        extension_profile = None
        extension_data = b""
        if first & 0x10:
            if len(data) < offset + 4:
                raise RtpParseError("extension header truncated")
            extension_profile, words = struct.unpack_from("!HH", data, offset)
            offset += 4
            if len(data) < offset + 4 * words:
                raise RtpParseError("extension data truncated")
            extension_data = data[offset : offset + 4 * words]
            offset += 4 * words
        end = len(data)
        padding = 0
        if first & 0x20:
            padding = data[-1]
            # §5.1: the count includes itself, so zero is invalid.
            if padding == 0 or end - padding < offset:
                raise RtpParseError("bad padding length")
            end -= padding
        return cls(
            second & 0x7F,
            sequence,
            timestamp,
            ssrc,
            payload=data[offset:end],
            marker=bool(second & 0x80),
            csrcs=csrcs,
            extension_profile=extension_profile,
            extension_data=extension_data,
            padding=padding,
        )

    def to_bytes(self) -> bytes:
        if len(self.csrcs) > 15:
            raise ValueError("at most 15 CSRCs")
        if len(self.extension_data) % 4:
            raise ValueError("extension data must be a multiple of 4 octets")
        first = (RTP_VERSION << 6) | len(self.csrcs)
        if self.padding:
            first |= 0x20
        if self.extension:
            first |= 0x10
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [
            struct.pack(
                "!BBHII",
                first,
                second,
                self.sequence & 0xFFFF,
                self.timestamp & 0xFFFFFFFF,
                self.ssrc & 0xFFFFFFFF,
            )
        ]
        for csrc in self.csrcs:
            parts.append(struct.pack("!I", csrc))
        if self.extension:
            parts.append(struct.pack("!HH", self.extension_profile, len(self.extension_data) // 4))
            parts.append(bytes(self.extension_data))
        parts.append(bytes(self.payload))
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)

    __bytes__ = to_bytes

    def __repr__(self) -> str:
        return (
            f"<RtpPacket pt={self.payload_type} seq={self.sequence} ts={self.timestamp}"
            f" ssrc={self.ssrc:08x} m={int(self.marker)} len={len(self.payload)}>"
        )


def _rtcp_header(count: int, packet_type: int, body_length: int) -> bytes:
    # §6.4.1: length is in 32-bit words minus one, header included.
    return struct.pack("!BBH", (RTP_VERSION << 6) | count, packet_type, (body_length + 4) // 4 - 1)


class ReportBlock:
    """A reception report block (RFC 3550 §6.4.1)."""

    __slots__ = (
        "ssrc",
        "fraction_lost",
        "cumulative_lost",
        "highest_sequence",
        "jitter",
        "last_sr",
        "delay_since_last_sr",
    )
    SIZE = 24

    def __init__(
        self,
        ssrc: int,
        fraction_lost: int,
        cumulative_lost: int,
        highest_sequence: int,
        jitter: int,
        last_sr: int,
        delay_since_last_sr: int,
    ) -> None:
        self.ssrc = ssrc
        self.fraction_lost = fraction_lost
        self.cumulative_lost = cumulative_lost
        self.highest_sequence = highest_sequence
        self.jitter = jitter
        self.last_sr = last_sr
        self.delay_since_last_sr = delay_since_last_sr

    @classmethod
    def parse(cls, data: bytes, offset: int) -> "ReportBlock":
        ssrc, lost_word, highest, jitter, lsr, dlsr = struct.unpack_from("!IIIIII", data, offset)
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:  # signed 24-bit: duplicates can make it negative
            cumulative -= 0x1000000
        return cls(ssrc, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr)

    def to_bytes(self) -> bytes:
        # Clamp to the 24-bit signed range rather than wrap (§6.4.1 / RFC 3550 errata).
        cumulative = max(-0x800000, min(0x7FFFFF, self.cumulative_lost)) & 0xFFFFFF
        return struct.pack(
            "!IIIIII",
            self.ssrc,
            ((self.fraction_lost & 0xFF) << 24) | cumulative,
            self.highest_sequence & 0xFFFFFFFF,
            self.jitter & 0xFFFFFFFF,
            self.last_sr & 0xFFFFFFFF,
            self.delay_since_last_sr & 0xFFFFFFFF,
        )

    __bytes__ = to_bytes

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReportBlock) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    def __repr__(self) -> str:
        return (
            f"<ReportBlock ssrc={self.ssrc:08x} lost={self.fraction_lost}/{self.cumulative_lost}"
            f" jitter={self.jitter}>"
        )


def _parse_report_blocks(body: bytes, offset: int, count: int) -> "list[ReportBlock]":
    if len(body) < offset + count * ReportBlock.SIZE:
        raise RtpParseError("report blocks truncated")
    return [ReportBlock.parse(body, offset + i * ReportBlock.SIZE) for i in range(count)]


class SenderReport:
    """SR (RFC 3550 §6.4.1): sender info plus reception reports."""

    packet_type = RTCP_SR

    def __init__(self, ssrc: int, ntp_timestamp: int, rtp_timestamp: int, packet_count: int,
                 octet_count: int,
                 reports: "list[ReportBlock] | tuple[ReportBlock, ...]" = ()) -> None:
        self.ssrc = ssrc
        self.ntp_timestamp = ntp_timestamp
        self.rtp_timestamp = rtp_timestamp
        self.packet_count = packet_count
        self.octet_count = octet_count
        self.reports = list(reports)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> "SenderReport":
        if len(body) < 24:
            raise RtpParseError("SR sender info truncated")
        ssrc, ntp_high, ntp_low, rtp_ts, packets, octets = struct.unpack_from("!IIIIII", body, 0)
        reports = _parse_report_blocks(body, 24, count)
        return cls(ssrc, (ntp_high << 32) | ntp_low, rtp_ts, packets, octets, reports)

    def to_bytes(self) -> bytes:
        body = struct.pack(
            "!IIIIII",
            self.ssrc,
            (self.ntp_timestamp >> 32) & 0xFFFFFFFF,
            self.ntp_timestamp & 0xFFFFFFFF,
            self.rtp_timestamp & 0xFFFFFFFF,
            self.packet_count & 0xFFFFFFFF,
            self.octet_count & 0xFFFFFFFF,
        ) + b"".join(block.to_bytes() for block in self.reports[:_MAX_REPORT_BLOCKS])
        return _rtcp_header(min(len(self.reports), _MAX_REPORT_BLOCKS), RTCP_SR, len(body)) + body

    __bytes__ = to_bytes

    def __repr__(self) -> str:
        return (
            f"<SenderReport ssrc={self.ssrc:08x} packets={self.packet_count}"
            f" reports={len(self.reports)}>"
        )


class ReceiverReport:
    """RR (RFC 3550 §6.4.2)."""

    packet_type = RTCP_RR

    def __init__(self, ssrc: int,
                 reports: "list[ReportBlock] | tuple[ReportBlock, ...]" = ()) -> None:
        self.ssrc = ssrc
        self.reports = list(reports)

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> "ReceiverReport":
        if len(body) < 4:
            raise RtpParseError("RR truncated")
        return cls(struct.unpack_from("!I", body, 0)[0], _parse_report_blocks(body, 4, count))

    def to_bytes(self) -> bytes:
        body = struct.pack("!I", self.ssrc) + b"".join(
            block.to_bytes() for block in self.reports[:_MAX_REPORT_BLOCKS]
        )
        return _rtcp_header(min(len(self.reports), _MAX_REPORT_BLOCKS), RTCP_RR, len(body)) + body

    __bytes__ = to_bytes

    def __repr__(self) -> str:
        return f"<ReceiverReport ssrc={self.ssrc:08x} reports={len(self.reports)}>"


class SourceDescription:
    """SDES (RFC 3550 §6.5): chunks of (ssrc, [(item_type, value bytes), ...])."""

    packet_type = RTCP_SDES

    def __init__(self, chunks: list[tuple[int, list[tuple[int, bytes]]]]) -> None:
        self.chunks = list(chunks)

    @classmethod
    def with_cname(cls, ssrc: int, cname: str | bytes) -> "SourceDescription":
        if isinstance(cname, str):
            cname = cname.encode()
        return cls([(ssrc, [(SDES_CNAME, cname)])])

    def cname(self, ssrc: int) -> bytes | None:
        for chunk_ssrc, items in self.chunks:
            if chunk_ssrc == ssrc:
                for item_type, value in items:
                    if item_type == SDES_CNAME:
                        return value
        return None

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> "SourceDescription":
        chunks = []
        offset = 0
        for _ in range(count):
            if len(body) < offset + 4:
                raise RtpParseError("SDES chunk truncated")
            ssrc = struct.unpack_from("!I", body, offset)[0]
            offset += 4
            items = []
            while True:
                if offset >= len(body):
                    raise RtpParseError("SDES items not terminated")
                item_type = body[offset]
                if item_type == 0:
                    # §6.5: the null item ends the list; pad to the next 32-bit boundary.
                    offset = (offset + 4) & ~3
                    break
                if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                    raise RtpParseError("SDES item truncated")
                length = body[offset + 1]
                items.append((item_type, body[offset + 2 : offset + 2 + length]))
                offset += 2 + length
            chunks.append((ssrc, items))
        return cls(chunks)

    def to_bytes(self) -> bytes:
        chunks = []
        for ssrc, items in self.chunks:
            chunk = struct.pack("!I", ssrc)
            for item_type, value in items:
                value = bytes(value[:255])
                chunk += bytes([item_type, len(value)]) + value
            chunk += bytes(4 - len(chunk) % 4)  # at least one null octet, then alignment
            chunks.append(chunk)
        body = b"".join(chunks)
        return _rtcp_header(len(self.chunks), RTCP_SDES, len(body)) + body

    __bytes__ = to_bytes

    def __repr__(self) -> str:
        return f"<SourceDescription chunks={len(self.chunks)}>"


class Bye:
    """BYE (RFC 3550 §6.6)."""

    packet_type = RTCP_BYE

    def __init__(self, ssrcs: list[int], reason: bytes | str | None = None) -> None:
        self.ssrcs = list(ssrcs)
        self.reason = reason

    @classmethod
    def parse_body(cls, count: int, body: bytes) -> "Bye":
        if len(body) < 4 * count:
            raise RtpParseError("BYE SSRC list truncated")
        ssrcs = list(struct.unpack_from(f"!{count}I", body, 0))
        reason = None
        offset = 4 * count
        if offset < len(body):
            length = body[offset]
            if offset + 1 + length > len(body):
                raise RtpParseError("BYE reason truncated")
            reason = body[offset + 1 : offset + 1 + length]
        return cls(ssrcs, reason)

    def to_bytes(self) -> bytes:
        body = b"".join(struct.pack("!I", ssrc) for ssrc in self.ssrcs)
        if self.reason:
            reason = self.reason.encode() if isinstance(self.reason, str) else self.reason
            reason = bytes(reason[:255])
            body += bytes([len(reason)]) + reason
            body += bytes(-len(body) % 4)
        return _rtcp_header(len(self.ssrcs), RTCP_BYE, len(body)) + body

    __bytes__ = to_bytes

    def __repr__(self) -> str:
        return "<Bye ssrcs=" + ",".join(f"{ssrc:08x}" for ssrc in self.ssrcs) + ">"


class OtherRtcp:
    """An RTCP packet type we pass along without interpreting (APP, RTPFB, PSFB, XR...)."""

    def __init__(self, packet_type: int, count: int, body: bytes) -> None:
        self.packet_type = packet_type
        self.count = count
        self.body = body

    def to_bytes(self) -> bytes:
        body = bytes(self.body) + bytes(-len(self.body) % 4)
        return _rtcp_header(self.count & 0x1F, self.packet_type, len(body)) + body

    __bytes__ = to_bytes

    def __repr__(self) -> str:
        return f"<OtherRtcp type={self.packet_type} len={len(self.body)}>"


_RTCP_TYPES: "dict[int, Any]" = {
    RTCP_SR: SenderReport,
    RTCP_RR: ReceiverReport,
    RTCP_SDES: SourceDescription,
    RTCP_BYE: Bye,
}


def parse_rtcp(
        data: bytes
) -> "list[SenderReport | ReceiverReport | SourceDescription | Bye | OtherRtcp]":
    """Parse a compound RTCP packet (RFC 3550 §6.1) into a list of packet objects.

    Checks follow Appendix A.2: version 2 on every packet, lengths that add up exactly, padding
    only on the last packet.
    """
    data = bytes(data)
    if len(data) < 4:
        raise RtpParseError("shorter than an RTCP header")
    packets: list[SenderReport | ReceiverReport | SourceDescription | Bye | OtherRtcp] = []
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            raise RtpParseError("trailing bytes after RTCP packet")
        first, packet_type, words = struct.unpack_from("!BBH", data, offset)
        if first >> 6 != RTP_VERSION:
            raise RtpParseError("not RTCP version 2")
        end = offset + 4 * (words + 1)
        if end > len(data):
            raise RtpParseError("RTCP length beyond datagram")
        body_end = end
        if first & 0x20:
            if end != len(data):
                raise RtpParseError("padding before the last RTCP packet")
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - 4:
                raise RtpParseError("bad RTCP padding length")
            body_end -= padding
        body = data[offset + 4 : body_end]
        count = first & 0x1F
        packet_class = _RTCP_TYPES.get(packet_type)
        if packet_class is None:
            if not 192 <= packet_type <= 223:
                raise RtpParseError("not an RTCP packet type")
            packets.append(OtherRtcp(packet_type, count, body))
        else:
            packets.append(packet_class.parse_body(count, body))
        offset = end
    return packets


def serialize_rtcp(packets: "list[SenderReport | SourceDescription | Bye]") -> bytes:
    """Concatenate RTCP packets into one compound packet (RFC 3550 §6.1)."""
    return b"".join(packet.to_bytes() for packet in packets)
