"""Loopback packet capture and pcap files, for tests that look at RTP on the wire.

    with Capture(workdir / "call.pcap", udp_ports=[rtp_port]) as capture:
        ...  # make the call
    for packet in capture.packets():      # after the with-block tcpdump has flushed and exited
        packet.ts, packet.src, packet.dst, packet.payload   # src/dst are ("127.0.0.1", port)

Public API:
- `Capture(path, udp_ports=(), expression=None, interface="lo")`: `start(timeout=5)` (returns
  once tcpdump reports it is listening), `stop(timeout=5)` (SIGINT by PID so it flushes),
  `packets() -> list[Packet]`, context manager. Timestamps are the kernel's, so they are the
  right clock for latency and jitter measurements.
- `read_pcap(path) -> list[Packet]`: IPv4/UDP packets of a classic pcap file (µs or ns,
  either byte order; Ethernet, Linux cooked v1/v2, BSD loopback or raw IP link types).
- `write_pcap(path, packets)`: writes `Packet`s as Ethernet/IPv4/UDP (what `play_pcap_audio` of
  SIPp reads).
- `dtmf_packets(digits, ...) -> list[Packet]` and `write_dtmf_pcap(path, digits, ...)`: one
  continuous RFC 4733 telephone-event stream (single SSRC, consecutive sequence numbers,
  three end packets per digit, §2.5.1.4) so multi-digit replays do not look like duplicates.
- `Packet(ts, src, dst, payload)`.
"""

import os
import signal
import struct

from tests.peers.process import ManagedProcess, require_binary, wait_until

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
IPPROTO_UDP = 17

DTMF_EVENT_CODES = {**{str(digit): digit for digit in range(10)}, "*": 10, "#": 11,
                    "A": 12, "B": 13, "C": 14, "D": 15}


class Packet:
    __slots__ = ("ts", "src", "dst", "payload")

    def __init__(self, ts, src, dst, payload):
        self.ts = ts
        self.src = src
        self.dst = dst
        self.payload = payload

    def __iter__(self):  # allows `ts, src, dst, payload = packet`
        return iter((self.ts, self.src, self.dst, self.payload))

    def __repr__(self):
        return f"Packet({self.ts:.6f}, {self.src}, {self.dst}, {len(self.payload)} bytes)"


def _ip_offset(linktype, frame):
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 14, struct.unpack_from("!H", frame, 12)[0]
        while ethertype == 0x8100:  # VLAN tags
            ethertype = struct.unpack_from("!H", frame, offset + 2)[0]
            offset += 4
        return offset if ethertype == 0x0800 else None
    if linktype == LINKTYPE_LINUX_SLL:
        return 16 if struct.unpack_from("!H", frame, 14)[0] == 0x0800 else None
    if linktype == LINKTYPE_LINUX_SLL2:
        return 20 if struct.unpack_from("!H", frame, 0)[0] == 0x0800 else None
    if linktype == LINKTYPE_NULL:
        return 4
    if linktype == LINKTYPE_RAW:
        return 0
    raise ValueError(f"unsupported pcap link type {linktype}")


def pcap_frames(path):
    """(linktype, frame, kernel timestamp) of every complete record of a classic pcap file; a
    partial last record (tcpdump still writing) is left out, so a live file can be polled."""
    with open(path, "rb") as pcap:
        data = pcap.read()
    if len(data) < 24:
        return
    formats = {
        b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
        b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
    }
    if data[:4] not in formats:
        raise ValueError(f"{path}: not a classic pcap file (pcapng is not supported)")
    order, fraction = formats[data[:4]]
    linktype = struct.unpack_from(order + "I", data, 20)[0] & 0x0FFFFFFF
    offset = 24
    while offset + 16 <= len(data):
        seconds, fraction_part, captured, _ = struct.unpack_from(order + "IIII", data, offset)
        frame = data[offset + 16:offset + 16 + captured]
        if len(frame) < captured:
            return
        offset += 16 + captured
        yield linktype, frame, seconds + fraction_part * fraction


def read_pcap(path):
    packets = (_udp_packet(*record) for record in pcap_frames(path))
    return [packet for packet in packets if packet is not None]


def _udp_packet(linktype, frame, ts):
    ip = _ip_offset(linktype, frame)
    if ip is None or len(frame) < ip + 20 or frame[ip] >> 4 != 4:
        return None
    header_length = (frame[ip] & 0x0F) * 4
    total_length = struct.unpack_from("!H", frame, ip + 2)[0]
    if frame[ip + 9] != IPPROTO_UDP:
        return None
    source = ".".join(str(byte) for byte in frame[ip + 12:ip + 16])
    destination = ".".join(str(byte) for byte in frame[ip + 16:ip + 20])
    udp = ip + header_length
    source_port, destination_port, udp_length = struct.unpack_from("!HHH", frame, udp)
    end = min(udp + udp_length, ip + total_length, len(frame))
    return Packet(ts, (source, source_port), (destination, destination_port),
                  bytes(frame[udp + 8:end]))


def _ipv4_checksum(header):
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _address_bytes(address):
    return bytes(int(part) for part in address.split("."))


def write_pcap(path, packets):
    with open(path, "wb") as pcap:
        pcap.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
        for identification, packet in enumerate(packets):
            udp = struct.pack("!HHHH", packet.src[1], packet.dst[1], 8 + len(packet.payload), 0)
            header = struct.pack(
                "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp) + len(packet.payload),
                identification & 0xFFFF, 0x4000, 64, IPPROTO_UDP, 0,
                _address_bytes(packet.src[0]), _address_bytes(packet.dst[0]),
            )
            header = header[:10] + struct.pack("!H", _ipv4_checksum(header)) + header[12:]
            frame = b"\x00" * 12 + b"\x08\x00" + header + udp + packet.payload
            seconds = int(packet.ts)
            micros = int(round((packet.ts - seconds) * 1e6))
            pcap.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)) + frame)


def dtmf_packets(digits, payload_type=101, ssrc=0x0D00D1E5, src=("127.0.0.1", 6000),
                 dst=("127.0.0.1", 6002), tone_ms=100, gap_ms=100, volume=10, start_ts=1.0):
    """RFC 4733 §2.3 event packets every 20 ms (8 kHz clock), one event per digit; the end
    packet is sent three times (§2.5.1.4)."""
    packets = []
    sequence = 1000
    rtp_timestamp = 16000
    now = start_ts
    for digit in digits:
        event = DTMF_EVENT_CODES[digit.upper()]
        updates = max(1, tone_ms // 20)
        for index in range(updates + 2):
            end = index >= updates - 1
            duration = min(index + 1, updates) * 160
            marker = 0x80 if index == 0 else 0
            header = struct.pack("!BBHII", 0x80, marker | payload_type, sequence & 0xFFFF,
                                 rtp_timestamp, ssrc)
            body = struct.pack("!BBH", event, (0x80 if end else 0) | volume, duration)
            packets.append(Packet(now, src, dst, header + body))
            sequence += 1
            now += 0.020
        # The next event starts after the gap, on a later RTP timestamp (§2.5.1.2).
        rtp_timestamp += (tone_ms + gap_ms + 40) * 8
        now += gap_ms / 1000.0
    return packets


def write_dtmf_pcap(path, digits, **options):
    write_pcap(path, dtmf_packets(digits, **options))
    return path


class Capture:
    def __init__(self, path, udp_ports=(), expression=None, interface="lo"):
        self.binary = require_binary("tcpdump")
        self.path = os.fspath(path)
        self.interface = interface
        if expression is None:
            expression = "udp"
            if udp_ports:
                expression += " and (" + " or ".join(f"port {port}" for port in udp_ports) + ")"
        self.expression = expression
        self.log_path = self.path + ".log"
        self._process = None

    def start(self, timeout=5.0):
        # -U: write each packet at once; --immediate-mode: without it libpcap (TPACKET_V3)
        # hands packets over a block at a time and the last block is lost at SIGINT, so short
        # captures came back empty; -Z root: keep the right to write into our temp dir.
        self._process = ManagedProcess(
            [self.binary, "-i", self.interface, "-n", "-U", "--immediate-mode", "-s", "0",
             "-Z", "root", "-w", self.path, self.expression],
            self.log_path,
        )
        self._process.start()
        if not wait_until(lambda: "listening on" in self._process.log_text()
                          or not self._process.alive, timeout):
            self.stop()
            raise RuntimeError(f"tcpdump did not start:\n{self._process.log_text()}")
        if not self._process.alive:
            raise RuntimeError(f"tcpdump failed:\n{self._process.log_text()}")
        return self

    def stop(self, timeout=5.0):
        if self._process is not None:
            self._process.stop(timeout, sig=signal.SIGINT)

    def packets(self):
        return read_pcap(self.path)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()
