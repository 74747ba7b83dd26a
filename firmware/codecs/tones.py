"""Tones, feedback cues and DTMF detection on 16-bit PCM at 8 kHz.

Tone plans follow ITU-T E.180 / ETSI ES 201 970 (the EU 425 Hz plan, not the US 440+480 Hz one),
because the station is sold in Europe; change `CUES` to localise. DTMF frequencies and the
detector limits follow ITU-T Q.23 / Q.24.

Public API (PCM is signed 16-bit little-endian bytes; samples are sequences of ints):
    RATE = 8000, FRAME_SAMPLES = 160 (one 20 ms frame)
    pcm_to_samples(pcm) -> array("h");  samples_to_pcm(samples) -> bytes (rounded, clipped)
    ToneGenerator(frequencies, amplitude=8000, rate=8000, frame_samples=160):
        phase-continuous sum of sines, peak `amplitude`; `samples(count) -> bytes`;
        iterating it yields endless frames.
    Cue(name, segments, repeat): segments are (frequencies, milliseconds); () is silence.
    CUES: "ringback", "busy", "failure", "door_open", "auto_answer", "unavailable".
    cue_frames(cue, amplitude=8000, rate=8000, frame_samples=160): generator of frames; ends after
        one pass (the last frame padded with silence) unless `cue.repeat`.
    goertzel_power(samples, freq, rate) -> float: power of the `freq` component as a mean square
        (a sine of amplitude A gives A*A/2, comparable with `mean_square(samples)`).
    mean_square(samples) -> float: the average power of `samples`.
    Digit(digit, source): a detected key ("0"-"9", "*", "#", "A"-"D"); source "inband",
        "rfc4733" or "info".
    InbandDtmfDetector(rate=8000): `feed(pcm) -> list of Digit`, one Digit per key press;
        `classify(samples) -> key or None` judges one block on its own (Q.24 limits below).
"""

import math
import sys
from array import array

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from collections.abc import Iterator

RATE = 8000
FRAME_SAMPLES = 160
DEFAULT_AMPLITUDE = 8000

ROW_FREQUENCIES = (697, 770, 852, 941)
COLUMN_FREQUENCIES = (1209, 1336, 1477, 1633)
KEYPAD = ("123A", "456B", "789C", "*0#D")


def pcm_to_samples(pcm: bytes) -> "array":
    samples = array("h", pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def samples_to_pcm(samples: "list[int] | array | list[float]") -> bytes:
    clipped = array("h", (max(-32768, min(32767, round(x))) for x in samples))
    if sys.byteorder == "big":
        clipped.byteswap()
    return bytes(clipped)


class ToneGenerator:
    """A sum of equal-level sines whose phase carries over from one call to the next."""

    def __init__(self, frequencies: "list[int] | tuple[int, ...]",
                 amplitude: float = DEFAULT_AMPLITUDE, rate: int = RATE,
                 frame_samples: int = FRAME_SAMPLES) -> None:
        self.frequencies = tuple(frequencies)
        self.frame_samples = frame_samples
        # Each component gets an equal share so the sum never exceeds `amplitude`.
        self._component_amplitude = amplitude / len(self.frequencies) if self.frequencies else 0
        self._steps = [2 * math.pi * f / rate for f in self.frequencies]
        self._phases = [0.0] * len(self.frequencies)

    def samples(self, count: int) -> bytes:
        values = [0.0] * count
        for index, step in enumerate(self._steps):
            phase = self._phases[index]
            for n in range(count):
                values[n] += math.sin(phase + n * step)
            self._phases[index] = (phase + count * step) % (2 * math.pi)
        scale = self._component_amplitude
        return samples_to_pcm([v * scale for v in values])

    def __iter__(self) -> "ToneGenerator":
        return self

    def __next__(self) -> bytes:
        return self.samples(self.frame_samples)


class Cue:
    """A named tone pattern: `segments` is a tuple of (frequencies, milliseconds)."""

    __slots__ = ("name", "segments", "repeat")

    def __init__(self, name: str, segments: "tuple[tuple[tuple[int, ...], int], ...]",
                 repeat: bool) -> None:
        self.name = name
        self.segments = segments
        self.repeat = repeat

    def __repr__(self) -> str:
        return f"Cue({self.name!r}, {len(self.segments)} segments, repeat={self.repeat})"


CUES = {
    # ETSI ES 201 970 / ITU-T E.180: ringing tone 425 Hz, 1 s on, 4 s off.
    "ringback": Cue("ringback", (((425,), 1000), ((), 4000)), True),
    # Busy tone 425 Hz, 0.5 s on, 0.5 s off.
    "busy": Cue("busy", (((425,), 500), ((), 500)), True),
    # Special information tone (ITU-T E.180 §8): 950, 1400, 1800 Hz, 330 ms each, 1 s pause.
    "failure": Cue("failure", (((950,), 330), ((1400,), 330), ((1800,), 330), ((), 1000)), True),
    # Our own short cues: a rising two-note chirp when the door opens, one beep on auto-answer.
    "door_open": Cue("door_open", (((880,), 120), ((), 40), ((1320,), 180)), False),
    "auto_answer": Cue("auto_answer", (((1000,), 150),), False),
    # Quiet hours (issue 17): a falling three-note "nobody is available" instead of ringing.
    "unavailable": Cue("unavailable", (((1320,), 250), ((), 50), ((990,), 250), ((), 50),
                                       ((660,), 400)), False),
    # the page's "test the speaker" button (issue 15): a scale of three tones, 1.2 s
    "speaker_test": Cue("speaker_test", (((523,), 400), ((659,), 400), ((784,), 400)), False),
}


def cue_frames(cue: "Cue", amplitude: int = DEFAULT_AMPLITUDE, rate: int = RATE,
               frame_samples: int = FRAME_SAMPLES) -> "Iterator[bytes]":
    """Yield the cue as PCM frames of `frame_samples` samples."""
    frame_bytes = 2 * frame_samples
    pending = b""
    while True:
        for frequencies, milliseconds in cue.segments:
            count = rate * milliseconds // 1000
            pending += ToneGenerator(frequencies, amplitude, rate).samples(count)
            whole = len(pending) - len(pending) % frame_bytes
            for start in range(0, whole, frame_bytes):
                yield pending[start : start + frame_bytes]
            pending = pending[whole:]
        if not cue.repeat:
            break
    if pending:
        yield pending + bytes(frame_bytes - len(pending))


def goertzel_power(samples: "list[int] | array", freq: int, rate: int) -> float:
    """Mean-square power of the `freq` component of `samples` (generalised Goertzel)."""
    coefficient = 2 * math.cos(2 * math.pi * freq / rate)
    previous = before = 0.0
    for x in samples:
        previous, before = x + coefficient * previous - before, previous
    count = len(samples)
    magnitude = previous * previous + before * before - coefficient * previous * before
    return 2 * magnitude / (count * count) if count else 0.0


def mean_square(samples: "array") -> float:
    return sum(x * x for x in samples) / len(samples) if len(samples) else 0.0


class Digit:
    """One key press reported once, as soon as it is recognised."""

    __slots__ = ("digit", "source")

    def __init__(self, digit: str, source: str) -> None:
        self.digit = digit
        self.source = source

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Digit) and (self.digit, self.source) == (other.digit, other.source)

    def __repr__(self) -> str:
        return f"Digit({self.digit!r}, {self.source!r})"


# Q.24-style acceptance limits. A component must reach about -36 dBFS (sine amplitude 500).
MIN_COMPONENT_POWER = 500 * 500 / 2
# Cable loss attenuates the high (column) group, so the row may be louder by more than the column.
NORMAL_TWIST_DB = 8.0
REVERSE_TWIST_DB = 4.0
# The strongest row/column must stand this far above the others in its group (rejects speech).
MIN_PEAK_RATIO_DB = 6.0
# The two tones must carry most of the frame's energy (rejects noise and speech).
MIN_TONE_FRACTION = 0.6
MIN_DURATION_MS = 40
MIN_GAP_MS = 40


def _ratio(decibels: float) -> float:
    return 10 ** (decibels / 10)


class InbandDtmfDetector:
    """Detects DTMF in PCM frames; a key must last MIN_DURATION_MS, and MIN_GAP_MS without it must
    pass before the same or another key counts again, so one press gives exactly one Digit."""

    def __init__(self, rate: int = RATE) -> None:
        self.rate = rate
        self._min_duration = rate * MIN_DURATION_MS // 1000
        self._min_gap = rate * MIN_GAP_MS // 1000
        self._candidate: str | None = None
        self._candidate_samples = 0
        self._key_down: str | None = None
        self._gap_samples = 0

    def feed(self, pcm: bytes) -> "list[Digit]":
        samples = pcm_to_samples(pcm)
        heard = self.classify(samples)
        count = len(samples)
        if self._key_down is not None:
            if heard == self._key_down:
                self._gap_samples = 0
                return []
            self._gap_samples += count
            if self._gap_samples < self._min_gap:
                return []
            self._key_down = None
            self._candidate = None
        if heard is None or heard != self._candidate:
            self._candidate, self._candidate_samples = heard, 0
        if heard is None:
            return []
        self._candidate_samples += count
        if self._candidate_samples < self._min_duration:
            return []
        self._key_down, self._gap_samples = heard, 0
        self._candidate = None
        return [Digit(heard, "inband")]

    def classify(self, samples: "array") -> str | None:
        """The key whose two tones dominate `samples`, or None."""
        energy = mean_square(samples)
        if energy < 2 * MIN_COMPONENT_POWER:
            return None
        rows = [goertzel_power(samples, f, self.rate) for f in ROW_FREQUENCIES]
        columns = [goertzel_power(samples, f, self.rate) for f in COLUMN_FREQUENCIES]
        row, column = _strongest(rows), _strongest(columns)
        if row is None or column is None:
            return None
        row_power, column_power = rows[row], columns[column]
        if min(row_power, column_power) < MIN_COMPONENT_POWER:
            return None
        if row_power > column_power * _ratio(NORMAL_TWIST_DB):
            return None
        if column_power > row_power * _ratio(REVERSE_TWIST_DB):
            return None
        if row_power + column_power < MIN_TONE_FRACTION * energy:
            return None
        return KEYPAD[row][column]


def _strongest(powers: list[float]) -> int | None:
    """Index of the clear maximum of `powers`, or None if another one comes too close."""
    best = powers.index(max(powers))
    limit = powers[best] / _ratio(MIN_PEAK_RATIO_DB)
    if any(p > limit for i, p in enumerate(powers) if i != best):
        return None
    return best
