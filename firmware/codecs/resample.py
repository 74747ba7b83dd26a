"""Sample-rate conversion between the sound card (48, 44.1 or 16 kHz) and G.711's 8 kHz.

One rational polyphase resampler covers every pair: up-sample by L, low-pass, down-sample by M,
with L/M = out_rate/in_rate in lowest terms (48k→8k is 1/6, 16k→8k 1/2, 44.1k→8k 80/441, and
the inverses). Only the products that survive decimation are computed, so each output sample
costs one dot product of TAPS-per-phase coefficients.

The low-pass is a Kaiser-windowed sinc (beta 5.65, about 60 dB stop band) cut off at
CUTOFF_FRACTION of the lower Nyquist frequency, with its length chosen for TRANSITION_FRACTION
of the lower rate as transition band: for 8 kHz the pass band reaches 3.4 kHz (the telephone
band) and everything above 4.6 kHz, which would alias below 3.4 kHz, is at least 60 dB down.

Public API:
    Resampler(in_rate, out_rate): process(pcm: bytes) -> bytes, 16-bit LE mono in and out.
        Stateful: feeding a signal in pieces of any size gives the same output as feeding it
        at once, so frame boundaries cannot click. Output lags input by the filter's group delay
        (`delay` seconds). Equal rates pass the input through unchanged.
"""

import math

from firmware.codecs.tones import pcm_to_samples, samples_to_pcm

try:
    from operator import mul
except ImportError:  # MicroPython ships without `operator`.

    def mul(a: int, b: int) -> int:  # type: ignore[misc]  # operator.mul's stand-in
        return a * b


KAISER_BETA = 5.65
STOPBAND_DB = 60.0
CUTOFF_FRACTION = 1.0  # cut-off at the lower Nyquist frequency (4 kHz for 8 kHz)
TRANSITION_FRACTION = 0.15  # total transition band, as a fraction of the lower rate (1.2 kHz)


def _gcd(a: int, b: int) -> int:
    while b:
        a, b = b, a % b
    return a


def _bessel_i0(x: float) -> float:
    """Modified Bessel function of the first kind, order 0 (power series)."""
    total = term = 1.0
    k = 1
    while term > 1e-12 * total:
        term *= (x / (2 * k)) ** 2
        total += term
        k += 1
    return total


def _phase_filters(up: int, taps: int, cutoff: float) -> list[list[float]]:
    """Split a Kaiser-windowed sinc of `up * taps` coefficients into `up` phases.

    `cutoff` is relative to the up-sampled rate (0.5 = its Nyquist). Each phase is reversed so
    that it lines up with input samples in time order, and scaled to unity DC gain.
    """
    length = up * taps
    middle = (length - 1) / 2
    prototype = []
    for n in range(length):
        t = n - middle
        sinc = 2 * cutoff if t == 0 else math.sin(2 * math.pi * cutoff * t) / (math.pi * t)
        ratio = 2 * n / (length - 1) - 1 if length > 1 else 0.0
        window = _bessel_i0(KAISER_BETA * math.sqrt(max(0.0, 1 - ratio * ratio)))
        prototype.append(sinc * window)
    gain = up / sum(prototype)
    return [[prototype[k * up + phase] * gain for k in range(taps)][::-1] for phase in range(up)]


class Resampler:
    """Streaming rational resampler for 16-bit mono PCM."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        common = _gcd(in_rate, out_rate)
        self._up = out_rate // common
        self._down = in_rate // common
        if self._up == self._down:
            self._filters, self._taps = None, 1
            self.delay = 0.0
            return
        lower = min(in_rate, out_rate)
        # Kaiser's estimate of the length for STOPBAND_DB over the transition band, measured in
        # input samples (the span of one phase).
        span = (STOPBAND_DB - 8) / (2.285 * 2 * math.pi * TRANSITION_FRACTION * lower / in_rate)
        self._taps = int(math.ceil(span)) + 1
        cutoff = CUTOFF_FRACTION * lower / 2 / (in_rate * self._up)
        self._filters = _phase_filters(self._up, self._taps, cutoff)
        self.delay = (self._up * self._taps - 1) / 2 / (in_rate * self._up)
        # The history holds the last taps-1 input samples; `_position` is the time of the next
        # output sample in up-sampled units, counted from the start of the history.
        self._history = [0] * (self._taps - 1)
        self._position = self._up * (self._taps - 1)

    def process(self, pcm: bytes) -> bytes:
        if self._filters is None:
            return bytes(pcm)
        buffer = self._history + list(pcm_to_samples(pcm))
        taps, up, filters = self._taps, self._up, self._filters
        output = []
        position = self._position
        while position < up * len(buffer):
            newest, phase = divmod(position, up)
            window = buffer[newest - taps + 1 : newest + 1]
            output.append(sum(map(mul, filters[phase], window)))
            position += self._down
        kept = max(0, len(buffer) - (taps - 1))
        self._history = buffer[kept:]
        self._position = position - up * kept
        return samples_to_pcm(output)
