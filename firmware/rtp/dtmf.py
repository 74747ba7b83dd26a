"""DTMF over RTP (RFC 4733 telephone events) and in SIP INFO bodies.

RFC 4733 sections implemented:
- §2.3 payload format: event, E (end), R (reserved: sent 0, ignored), volume, duration.
- §2.5.1 sending: the first packet carries the marker bit (§2.5.1.2), updates every
  `update_interval` with a growing duration under the one event timestamp, the final packet sent
  three times (§2.5.1.4), and events longer than 0xFFFF units split into segments whose
  timestamp moves on by the previous segment's duration, without the marker (§2.5.1.3).
- §2.5.2 receiving: an event is identified by its RTP timestamp. A new timestamp is a new key
  press even when the marker packet was lost; packets of the current event only update it;
  packets of an event already finished, or older than it, are ignored (retransmitted end
  packets, duplicates, late arrivals). If an event's end never arrives, it ends END_TIMEOUT
  seconds after its last packet. A long press continues across segments (§2.5.1.3), and a
  duration field that wraps past 0xFFFF (some senders do) keeps counting.
- §3.2 DTMF events: codes 0-9, 10 = "*", 11 = "#", 12-15 = "A"-"D".

Public API:
    TelephoneEvent(event, end=False, volume=10, duration=0); TelephoneEvent.parse(payload)
        (raises RtpParseError); event.to_bytes() (bytes(event) on CPython);
        `.key` is the DTMF key or None.
    DtmfReceiver(clock_rate=8000):
        receive(timestamp, sequence, marker, payload, now) for telephone-event packets
        (`sequence` is accepted but not needed: §2.5.2 identifies events by timestamp, which
        also settles duplicates and reordering);
        next_event() -> Digit(key, "rfc4733") as the press starts, DigitEnd(key, duration_ms)
        when it ends, or None; handle_timer(now); get_timer() -> float or None; state;
        reset() when the stream restarts (new SSRC), since timestamps start over.
    DtmfSender(clock_rate=8000, volume=10, update_interval=0.05):
        packets(key, duration_ms, timestamp) -> list of DtmfPacket(offset, timestamp, marker,
        payload): what the RTP session sends, `offset` seconds after the first packet, with the
        telephone-event payload type and its own sequence numbers.
    parse_info_body(content_type, body) -> key or None, for SIP INFO with
        application/dtmf-relay ("Signal=5\\r\\nDuration=160") or application/dtmf ("5").
"""

from firmware.codecs.tones import Digit
from firmware.rtp.packet import RtpParseError

EVENT_KEYS = "0123456789*#ABCD"
MAX_DURATION = 0xFFFF
DEFAULT_VOLUME = 10
END_TIMEOUT = 0.5  # ten missed 50 ms updates: the end packets are lost, not late
END_REPEATS = 3
# A segment only continues a press if it reached (nearly) the 16-bit maximum; the slack allows
# for lost updates just before the segment change (4096 units = 0.5 s at 8 kHz).
SEGMENT_SLACK = 0x1000

IDLE = "idle"
ACTIVE = "active"


class TelephoneEvent:
    """One RFC 4733 §2.3 telephone-event payload block."""

    __slots__ = ("event", "end", "volume", "duration")

    def __init__(self, event: int, end: bool = False, volume: int = DEFAULT_VOLUME,
                 duration: int = 0) -> None:
        self.event = event
        self.end = end
        self.volume = volume
        self.duration = duration

    @classmethod
    def parse(cls, payload: bytes) -> "TelephoneEvent":
        if len(payload) < 4:
            raise RtpParseError("telephone-event payload shorter than 4 octets")
        return cls(
            payload[0], bool(payload[1] & 0x80), payload[1] & 0x3F, (payload[2] << 8) | payload[3]
        )

    def to_bytes(self) -> bytes:
        if not (0 <= self.event <= 255 and 0 <= self.volume <= 63):
            raise ValueError("event must fit 8 bits and volume 6 bits")
        if not 0 <= self.duration <= MAX_DURATION:
            raise ValueError("duration must fit 16 bits")
        flags = (0x80 if self.end else 0) | self.volume
        return bytes((self.event, flags, self.duration >> 8, self.duration & 0xFF))

    __bytes__ = to_bytes

    @property
    def key(self) -> str | None:
        return EVENT_KEYS[self.event] if self.event < len(EVENT_KEYS) else None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TelephoneEvent) and self.to_bytes() == other.to_bytes()

    def __repr__(self) -> str:
        end = ", end" if self.end else ""
        return f"TelephoneEvent({self.event}{end}, volume={self.volume}, duration={self.duration})"


class DigitEnd:
    """A key press reported earlier by Digit is over; `duration_ms` as the sender measured it."""

    __slots__ = ("digit", "duration_ms")

    def __init__(self, digit: str, duration_ms: int) -> None:
        self.digit = digit
        self.duration_ms = duration_ms

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DigitEnd) and (self.digit, self.duration_ms) == (
            other.digit,
            other.duration_ms,
        )

    def __repr__(self) -> str:
        return f"DigitEnd({self.digit!r}, {self.duration_ms} ms)"


def _is_newer(timestamp: int, reference: int) -> bool:
    """RTP timestamp order with 32-bit wrap-around (RFC 3550 §5.1)."""
    return 0 < (timestamp - reference) & 0xFFFFFFFF < 0x80000000


class DtmfReceiver:
    """Turns telephone-event packets into exactly one Digit per key press (sans-I/O)."""

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self._events: list[Digit | DigitEnd] = []
        self.reset()

    def reset(self) -> None:
        self.state = IDLE
        self._newest_timestamp: int | None = None
        # None while IDLE; ACTIVE (the only state that reads them) comes with a value
        self._key: str = None  # type: ignore[assignment]
        self._segment_timestamp: int = None  # type: ignore[assignment]
        self._segment_duration = 0
        self._earlier_duration = 0  # from finished segments and duration wraps
        self._last_packet_at: float = None  # type: ignore[assignment]

    def receive(self, timestamp: int, sequence: int, marker: bool, payload: bytes,
                now: float) -> None:
        try:
            block = TelephoneEvent.parse(payload)
        except RtpParseError:
            return
        if block.key is None:
            return
        if self.state == ACTIVE and timestamp == self._segment_timestamp:
            if block.key == self._key:
                self._update(block, now)
            return
        if self._newest_timestamp is not None and not _is_newer(timestamp, self._newest_timestamp):
            return
        self._newest_timestamp = timestamp
        if self.state == ACTIVE and self._continues_press(block, timestamp, marker):
            self._earlier_duration += (timestamp - self._segment_timestamp) & 0xFFFFFFFF
        else:
            if self.state == ACTIVE:
                self._finish()
            self.state, self._key, self._earlier_duration = ACTIVE, block.key, 0
            self._events.append(Digit(block.key, "rfc4733"))
        self._segment_timestamp, self._segment_duration = timestamp, 0
        self._update(block, now)

    def _continues_press(self, block: "TelephoneEvent", timestamp: int, marker: bool) -> bool:
        """§2.5.1.3: the next segment of a long press starts where the previous one ended."""
        gap = (timestamp - self._segment_timestamp) & 0xFFFFFFFF
        return (
            block.key == self._key
            and not marker
            and self._segment_duration >= MAX_DURATION - SEGMENT_SLACK
            and self._segment_duration <= gap <= MAX_DURATION
        )

    def _update(self, block: "TelephoneEvent", now: float) -> None:
        self._last_packet_at = now
        if block.duration >= self._segment_duration:
            self._segment_duration = block.duration
        elif self._segment_duration - block.duration > 0x8000:
            # The 16-bit duration wrapped; a merely late update differs far less.
            self._earlier_duration += 0x10000
            self._segment_duration = block.duration
        if block.end:
            self._finish()

    def _finish(self) -> None:
        total = self._earlier_duration + self._segment_duration
        self._events.append(DigitEnd(self._key, total * 1000 // self.clock_rate))
        self.state = IDLE

    def get_timer(self) -> float | None:
        return self._last_packet_at + END_TIMEOUT if self.state == ACTIVE else None

    def handle_timer(self, now: float) -> None:
        if self.state == ACTIVE and now >= self._last_packet_at + END_TIMEOUT:
            self._finish()

    def next_event(self) -> "Digit | DigitEnd | None":
        return self._events.pop(0) if self._events else None


class DtmfPacket:
    """An instruction for the RTP session: send `payload` at `offset` seconds."""

    __slots__ = ("offset", "timestamp", "marker", "payload")

    def __init__(self, offset: float, timestamp: int, marker: bool, payload: bytes) -> None:
        self.offset = offset
        self.timestamp = timestamp
        self.marker = marker
        self.payload = payload

    def __repr__(self) -> str:
        marker = ", marker" if self.marker else ""
        return f"DtmfPacket(+{self.offset:.3f}s, ts={self.timestamp}{marker}, {self.payload.hex()})"


class DtmfSender:
    """Builds the RFC 4733 §2.5.1 packet sequence for one key press."""

    def __init__(self, clock_rate: int = 8000, volume: int = DEFAULT_VOLUME,
                 update_interval: float = 0.05) -> None:
        self.clock_rate = clock_rate
        self.volume = volume
        self.update_interval = update_interval

    def packets(self, key: str, duration_ms: int, timestamp: int) -> "list[DtmfPacket]":
        if len(key) != 1 or key.upper() not in EVENT_KEYS:
            raise ValueError(f"not a DTMF key: {key!r}")
        event = EVENT_KEYS.index(key.upper())
        total = duration_ms * self.clock_rate // 1000
        step = max(1, round(self.update_interval * self.clock_rate))
        packets: list[DtmfPacket] = []
        segment_start = 0

        def add(at: float, duration: int, end: bool = False) -> None:
            block = TelephoneEvent(event, end, self.volume, duration)
            packets.append(
                DtmfPacket(
                    at / self.clock_rate,
                    (timestamp + segment_start) & 0xFFFFFFFF,
                    not packets,
                    block.to_bytes(),
                )
            )

        elapsed = 0
        while elapsed < total:
            if elapsed - segment_start >= MAX_DURATION:
                # §2.5.1.3: report the segment's maximum, then go on in a new segment.
                add(segment_start + MAX_DURATION, MAX_DURATION)
                segment_start += MAX_DURATION
                continue
            add(elapsed, elapsed - segment_start)
            elapsed += step
        while total - segment_start > MAX_DURATION:
            add(segment_start + MAX_DURATION, MAX_DURATION)
            segment_start += MAX_DURATION
        for repeat in range(END_REPEATS):
            add(total + repeat * step, total - segment_start, end=True)
        return packets


def parse_info_body(content_type: str, body: bytes | str) -> str | None:
    """The key in a SIP INFO DTMF body, or None if there is none we understand."""
    if isinstance(body, (bytes, bytearray)):
        # Latin-1 by hand: MicroPython decodes UTF-8 only, and a stray byte must not raise.
        body = "".join(chr(octet) for octet in body)
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "application/dtmf-relay":
        for line in body.replace("\r", "\n").split("\n"):
            name, _, value = line.partition("=")
            if name.strip().lower() == "signal":
                return _info_key(value.strip())
        return None
    if media_type == "application/dtmf":
        return _info_key(body.strip())
    return None


def _info_key(value: str) -> str | None:
    """A key written as itself ("5", "*", "a") or as its event code ("10" for "*")."""
    if len(value) == 1 and value.upper() in EVENT_KEYS:
        return value.upper()
    # Only ASCII digits: str.isdigit() also accepts "²", which int() refuses.
    if value and all("0" <= c <= "9" for c in value) and int(value) < len(EVENT_KEYS):
        return EVENT_KEYS[int(value)]
    return None
