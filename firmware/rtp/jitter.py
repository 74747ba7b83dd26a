"""Adaptive jitter buffer for 20 ms frames of 16-bit PCM (RFC 3550 §6.4.1 A.8 in spirit).

The buffer works on decoded PCM (signed 16-bit little-endian, mono) so that concealment does not
depend on the codec. The owner calls `get(now)` once per 20 ms tick of its own audio clock; the
playout point then advances one frame (160 samples at 8 kHz) per call.

Delay model. For every packet `transit = arrival * rate - timestamp` (in samples). The smallest
transit seen over the last ~2 s (`base`) belongs to the packets that crossed the network
fastest; `transit - base` is each packet's extra delay. The target delay is the 95th percentile
of that extra delay plus one frame of margin, clamped to [min_delay_ms, max_delay_ms]. The
current delay is how long a fastest packet waits before it is played:
`now * rate - playout_timestamp - base`.

Adaptation and drift. The current delay is kept between the target and the target plus two
frames. Above (the sender's clock runs fast, or jitter went down) the buffer drops a frame, or
skips a concealment slot, which shortens silence; below (the sender's clock is slow, or jitter
went up) it plays the previous frame again without advancing. At most one such correction per
`ADJUST_INTERVAL` frames.

Loss. A missing frame is concealed by repeating the last frame with fading gain, then silence.
Packets whose frame was already played are dropped as late; packets seen before are counted as
duplicates. A stream that jumps by more than `RESYNC_SECONDS`, or keeps arriving late, makes
the buffer start over.

Public API
- `JitterBuffer(clock_rate=8000, min_delay_ms=40, max_delay_ms=200, frame_bytes=FRAME_BYTES)`:
  `clock_rate` is the RTP clock (timestamps advance `FRAME_SAMPLES` per 20 ms frame at 8000 Hz);
  `frame_bytes` the decoded PCM of one frame, which differs when the audio is sampled faster
  than the RTP clock runs (G.722: 16 kHz audio, 8 kHz clock, 640 bytes per frame).
- `put(sequence, timestamp, pcm, now) -> PUT_ACCEPTED | PUT_LATE | PUT_DUPLICATE`; `pcm` may
  hold several 20 ms frames (they get consecutive timestamps).
- `get(now) -> bytes` (always one frame of `frame_bytes`); `reset()`; `state`
  (`BUFFERING` or `PLAYING`); `stats()` -> dict with `late`, `duplicates`, `concealed`,
  `dropped`, `inserted`, `target_ms`, `delay_ms`, `buffered_ms`.
"""

import struct

from firmware.compat import bisect_right

FRAME_SAMPLES = 160
FRAME_BYTES = 2 * FRAME_SAMPLES
SILENCE = bytes(FRAME_BYTES)
_PCM_FORMAT = "<160h"

BUFFERING = "buffering"  # waiting until the target delay has built up
PLAYING = "playing"

PUT_ACCEPTED = "accepted"
PUT_LATE = "late"
PUT_DUPLICATE = "duplicate"

WINDOW_PACKETS = 100  # ~2 s of 20 ms packets for the transit statistics
MIN_WINDOW_FOR_TARGET = 10
JITTER_QUANTILE = 0.95
ADJUST_INTERVAL = 10  # frames between two drift/target corrections
FADE_GAINS = (0.75, 0.5, 0.25)  # concealment gains, then silence
EMPTY_FRAMES_BEFORE_REBUFFER = 25  # 500 ms with nothing buffered: the talkspurt has ended
LATE_STREAK_RESYNC = 5
RESYNC_SECONDS = 2
RECENT_SEQUENCES = 64


def _scaled(pcm: bytes, gain: float) -> bytes:
    form = _PCM_FORMAT if len(pcm) == FRAME_BYTES else "<%dh" % (len(pcm) // 2)
    samples = struct.unpack(form, pcm)
    return struct.pack(form, *[int(sample * gain) for sample in samples])


class JitterBuffer:
    def __init__(self, clock_rate: int = 8000, min_delay_ms: int = 40,
                 max_delay_ms: int = 200, frame_bytes: int = FRAME_BYTES) -> None:
        self.clock_rate = clock_rate
        self.frame_bytes = frame_bytes
        self._silence = bytes(frame_bytes)
        self._min_target = min_delay_ms * clock_rate // 1000
        self._max_target = max_delay_ms * clock_rate // 1000
        self._target = max(self._min_target, min(self._max_target, 3 * FRAME_SAMPLES))
        self.late = 0
        self.duplicates = 0
        self.concealed = 0
        self.dropped = 0
        self.inserted = 0
        self.reset()

    def reset(self) -> None:
        """Forget the stream (e.g. on an SSRC change); counters and the target are kept."""
        self.state = BUFFERING
        self._frames: dict[int, bytes] = {}  # extended timestamp -> PCM frame
        self._next_ts: int | None = None  # extended timestamp of the next frame to play
        self._last_raw_ts: int | None = None
        self._last_ext_ts = 0
        self._transits: list[float] = []
        self._ordered: list[float] = []  # the same values, sorted
        self._base = 0.0
        self._recent_sequences: list[int] = []
        self._recent_set: set[int] = set()
        self._last_frame = self._silence
        self._conceal_run = 0
        self._empty_run = 0
        self._late_streak = 0
        self._since_adjust = 0
        self._delay = 0.0

    def _restart(self) -> None:
        self.state = BUFFERING
        self._frames = {}
        self._next_ts = None
        self._transits = []
        self._ordered = []
        self._late_streak = 0

    def put(self, sequence: int, timestamp: int, pcm: bytes, now: float) -> str:
        # A set answers "seen?" touching one entry; the list only says which one leaves next
        # (scanning a list of 64 numbers reads 64 objects: issue 14, cold caches).
        if sequence in self._recent_set:
            self.duplicates += 1
            return PUT_DUPLICATE
        self._recent_set.add(sequence)
        self._recent_sequences.append(sequence)
        if len(self._recent_sequences) > RECENT_SEQUENCES:
            self._recent_set.discard(self._recent_sequences.pop(0))

        # the extended timestamp (32-bit wrap unfolded), inline (issue 14: a frame less)
        if self._last_raw_ts is None:
            ts = timestamp
        else:
            step = (timestamp - self._last_raw_ts) & 0xFFFFFFFF  # as a signed 32-bit step
            ts = self._last_ext_ts + (step - 0x100000000 if step & 0x80000000 else step)
        self._last_raw_ts = timestamp
        self._last_ext_ts = ts
        if self._next_ts is not None:
            ahead = ts - self._next_ts
            if abs(ahead) > RESYNC_SECONDS * self.clock_rate:
                self._restart()
            elif ahead < 0 and self.state == PLAYING:
                self.late += 1
                self._late_streak += 1
                if self._late_streak < LATE_STREAK_RESYNC:
                    return PUT_LATE
                self._restart()
        self._late_streak = 0
        self._observe_transit(now * self.clock_rate - ts)

        size = self.frame_bytes
        if len(pcm) == size:  # one frame per packet (the usual case): kept as it is, no copy
            self._frames[ts] = bytes(pcm)
        else:
            for offset in range(0, len(pcm), size):
                frame = bytes(pcm[offset : offset + size])
                if len(frame) < size:
                    frame += bytes(size - len(frame))
                self._frames[ts + offset // size * FRAME_SAMPLES] = frame
        if self.state == BUFFERING and (self._next_ts is None or ts < self._next_ts):
            self._next_ts = ts
        return PUT_ACCEPTED

    def _observe_transit(self, transit: float) -> None:
        """The window kept twice: in arrival order (which value leaves next) and sorted (base
        and quantile), the sorted one updated in place, not sorted again per packet
        (issue 14: sorting 100 floats per packet touched every one of them)."""
        transits, ordered = self._transits, self._ordered
        transits.append(transit)
        ordered.insert(bisect_right(ordered, transit), transit)
        if len(transits) > WINDOW_PACKETS:
            # where the oldest value sits: found by bisection, so only ~7 of the 100 values are
            # read (list.remove would compare them one by one)
            ordered.pop(bisect_right(ordered, transits.pop(0)) - 1)
        self._base = ordered[0]
        if len(ordered) >= MIN_WINDOW_FOR_TARGET:
            spread = ordered[int(JITTER_QUANTILE * (len(ordered) - 1))] - self._base
            self._target = int(
                max(self._min_target, min(self._max_target, spread + FRAME_SAMPLES))
            )

    def get(self, now: float) -> bytes:
        if self._next_ts is None:
            return self._silence
        self._delay = now * self.clock_rate - self._next_ts - self._base
        if self.state == BUFFERING:
            if self._delay < self._target:
                return self._silence
            self.state = PLAYING
            self._since_adjust = 0

        self._since_adjust += 1
        if self._since_adjust >= ADJUST_INTERVAL:
            if self._delay > self._target + 2 * FRAME_SAMPLES:
                # Too much audio waiting: discard one frame (or one slot of silence). The band
                # kept is two frames wide, so one correction never lands outside it on the
                # other side (a one-frame band flip-flops between drop and insert).
                self._frames.pop(self._next_ts, None)
                self._next_ts += FRAME_SAMPLES
                self.dropped += 1
                self._since_adjust = 0
            elif self._delay < self._target:
                # Too little: stretch by playing the previous frame once more.
                self.inserted += 1
                self._since_adjust = 0
                return self._last_frame

        frame = self._frames.pop(self._next_ts, None)
        self._next_ts += FRAME_SAMPLES
        if frame is not None:
            self._conceal_run = 0
            self._empty_run = 0
            self._last_frame = frame
            return frame
        return self._conceal()

    def _conceal(self) -> bytes:
        self.concealed += 1
        self._conceal_run += 1
        if self._frames:
            self._empty_run = 0
        else:
            self._empty_run += 1
            if self._empty_run >= EMPTY_FRAMES_BEFORE_REBUFFER:
                self._restart()
                self._empty_run = 0
        if self._conceal_run <= len(FADE_GAINS):
            return _scaled(self._last_frame, FADE_GAINS[self._conceal_run - 1])
        self._last_frame = self._silence
        return self._silence

    @property
    def buffered_ms(self) -> float:
        if not self._frames or self._next_ts is None:
            return 0.0
        newest = max(self._frames)
        return max(0, newest + FRAME_SAMPLES - self._next_ts) * 1000.0 / self.clock_rate

    def stats(self) -> dict[str, float]:
        return {
            "late": self.late,
            "duplicates": self.duplicates,
            "concealed": self.concealed,
            "dropped": self.dropped,
            "inserted": self.inserted,
            "target_ms": self._target * 1000.0 / self.clock_rate,
            "delay_ms": self._delay * 1000.0 / self.clock_rate,
            "buffered_ms": self.buffered_ms,
        }
