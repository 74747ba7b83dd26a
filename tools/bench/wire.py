"""What the bench reads off the wire: SIP messages and HTTP requests in a loopback capture.

tests.peers.capture reads UDP only; the button case also needs the TCP segment that carries the
HTTP request, so `read_segments` returns both (kernel timestamps, like `read_pcap`).

Public API:
- `Segment(ts, proto, src, dst, payload)`; `read_segments(path) -> list[Segment]` (IPv4
  UDP and TCP of a classic pcap, partial last record ignored, so a live file can be polled).
- `sip_header(payload, name) -> str | None`: first value of a header, name case-insensitive
  (no compact forms: every UA and SIPp scenario here writes full names).
- `cseq_method(payload) -> str | None`.
- `invite_to_200_ms(packets, ua_port) -> list[float]`: per Call-ID, first INVITE sent to
  `ua_port` → first 200 for that INVITE sent from it.
- `first_register_ok(packets, registrar_port, ua_port, after) -> float | None`: kernel
  timestamp of the first 200 to a REGISTER sent from the registrar to `ua_port` after `after`.
"""

import struct

from tests.peers.capture import _ip_offset, pcap_frames

IPPROTO_TCP = 6
IPPROTO_UDP = 17


class Segment:
    __slots__ = ("ts", "proto", "src", "dst", "payload")

    def __init__(self, ts, proto, src, dst, payload):
        self.ts = ts
        self.proto = proto
        self.src = src
        self.dst = dst
        self.payload = payload

    def __repr__(self):
        return f"Segment({self.ts:.6f}, {self.proto}, {self.src}, {self.dst}, " \
               f"{len(self.payload)} bytes)"


def read_segments(path):
    segments = (_segment(*record) for record in pcap_frames(path))
    return [segment for segment in segments if segment is not None]


def _segment(linktype, frame, ts):
    ip = _ip_offset(linktype, frame)
    if ip is None or len(frame) < ip + 20 or frame[ip] >> 4 != 4:
        return None
    header_length = (frame[ip] & 0x0F) * 4
    total_length = struct.unpack_from("!H", frame, ip + 2)[0]
    proto = frame[ip + 9]
    source = ".".join(str(byte) for byte in frame[ip + 12:ip + 16])
    destination = ".".join(str(byte) for byte in frame[ip + 16:ip + 20])
    start = ip + header_length
    end = min(ip + total_length, len(frame))
    if proto == IPPROTO_UDP and end >= start + 8:
        source_port, destination_port = struct.unpack_from("!HH", frame, start)
        body = frame[start + 8:end]
        name = "udp"
    elif proto == IPPROTO_TCP and end >= start + 20:
        source_port, destination_port = struct.unpack_from("!HH", frame, start)
        body = frame[start + (frame[start + 12] >> 4) * 4:end]
        name = "tcp"
    else:
        return None
    return Segment(ts, name, (source, source_port), (destination, destination_port),
                   bytes(body))


def sip_header(payload, name):
    wanted = name.lower().encode()
    for line in payload.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, colon, value = line.partition(b":")
        if colon and key.strip().lower() == wanted:
            return value.strip().decode(errors="replace")
    return None


def cseq_method(payload):
    value = sip_header(payload, "CSeq")
    return value.split()[-1] if value and value.split() else None


def invite_to_200_ms(packets, ua_port):
    invites = {}
    answers = {}
    for packet in packets:
        payload = packet.payload
        if packet.dst[1] == ua_port and payload.startswith(b"INVITE "):
            invites.setdefault(sip_header(payload, "Call-ID"), packet.ts)
        elif packet.src[1] == ua_port and payload.startswith(b"SIP/2.0 200") \
                and cseq_method(payload) == "INVITE":
            answers.setdefault(sip_header(payload, "Call-ID"), packet.ts)
    return [(answers[call_id] - sent) * 1000.0 for call_id, sent in invites.items()
            if call_id in answers]


def first_register_ok(packets, registrar_port, ua_port, after):
    for packet in packets:
        if packet.ts >= after and packet.src[1] == registrar_port \
                and packet.dst[1] == ua_port and packet.payload.startswith(b"SIP/2.0 200") \
                and cseq_method(packet.payload) == "REGISTER":
            return packet.ts
    return None
