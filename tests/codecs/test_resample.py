"""The polyphase resampler: pass band, stop band, streaming continuity."""

import math
import random

import pytest

from firmware.codecs.resample import Resampler
from firmware.codecs.tones import ToneGenerator, goertzel_power, mean_square, pcm_to_samples

PAIRS = [(48000, 8000), (44100, 8000), (16000, 8000), (8000, 48000), (8000, 44100), (8000, 16000)]
AMPLITUDE = 10000


def _tone(frequency, rate, seconds=0.5):
    return ToneGenerator([frequency], AMPLITUDE, rate=rate).samples(int(rate * seconds))


def _in_frames(resampler, pcm, rate):
    frame = 2 * (rate // 50)  # 20 ms
    return b"".join(resampler.process(pcm[i : i + frame]) for i in range(0, len(pcm), frame))


def _settled(pcm, rate):
    """Drop the first 50 ms, where the filter is still filling."""
    return pcm_to_samples(pcm)[rate // 20 :]


@pytest.mark.parametrize("in_rate, out_rate", PAIRS)
def test_1khz_keeps_frequency_and_amplitude(in_rate, out_rate):
    out = _settled(
        _in_frames(Resampler(in_rate, out_rate), _tone(1000, in_rate), in_rate), out_rate
    )
    at_1k = goertzel_power(out, 1000, out_rate)
    assert 10 * math.log10(at_1k / (AMPLITUDE**2 / 2)) == pytest.approx(0, abs=0.2)
    assert at_1k > 0.99 * mean_square(out)
    for elsewhere in (900, 1100):
        assert goertzel_power(out, elsewhere, out_rate) < at_1k / 100


@pytest.mark.parametrize("in_rate", [48000, 44100, 16000])
@pytest.mark.parametrize("frequency", [4600, 6000])
def test_tones_above_4khz_are_removed_before_decimation(in_rate, frequency):
    out = _settled(_in_frames(Resampler(in_rate, 8000), _tone(frequency, in_rate), in_rate), 8000)
    attenuation_db = 10 * math.log10(mean_square(out) / (AMPLITUDE**2 / 2))
    assert attenuation_db < -55


@pytest.mark.parametrize("in_rate", [48000, 44100, 16000])
def test_telephone_band_edge_is_passed(in_rate):
    out = _settled(_in_frames(Resampler(in_rate, 8000), _tone(3400, in_rate), in_rate), 8000)
    assert 10 * math.log10(mean_square(out) / (AMPLITUDE**2 / 2)) == pytest.approx(0, abs=0.5)


@pytest.mark.parametrize("in_rate, out_rate", PAIRS)
def test_any_framing_gives_the_same_output(in_rate, out_rate):
    pcm = _tone(1000, in_rate, seconds=0.2)
    whole = Resampler(in_rate, out_rate).process(pcm)
    rng = random.Random(in_rate + out_rate)
    resampler, pieces, start = Resampler(in_rate, out_rate), [], 0
    while start < len(pcm):
        size = 2 * rng.randint(0, 700)
        pieces.append(resampler.process(pcm[start : start + size]))
        start += size
    assert b"".join(pieces) == whole
    assert len(pcm_to_samples(whole)) == pytest.approx(len(pcm) // 2 * out_rate / in_rate, abs=1)


@pytest.mark.parametrize("in_rate, out_rate", PAIRS)
def test_no_clicks_at_frame_boundaries(in_rate, out_rate):
    out = _settled(
        _in_frames(Resampler(in_rate, out_rate), _tone(1000, in_rate), in_rate), out_rate
    )
    # A 1 kHz sine of amplitude A never moves more than 2*pi*1000*A/rate between samples.
    largest_step = max(abs(b - a) for a, b in zip(out[:-1], out[1:], strict=True))
    assert largest_step <= 2 * math.pi * 1000 * AMPLITUDE / out_rate * 1.01


def test_output_frame_sizes_for_20ms_input():
    resampler = Resampler(44100, 8000)
    sizes = [len(resampler.process(bytes(2 * 882))) // 2 for _ in range(10)]
    assert sizes == [160] * 10
    assert [len(Resampler(48000, 8000).process(bytes(1920))) // 2] == [160]


def test_round_trip_8k_48k_8k_keeps_the_tone():
    tone = _tone(697, 8000)
    back = Resampler(48000, 8000).process(Resampler(8000, 48000).process(tone))
    out = _settled(back, 8000)
    assert goertzel_power(out, 697, 8000) == pytest.approx(AMPLITUDE**2 / 2, rel=0.05)


def test_equal_rates_pass_through():
    pcm = _tone(1000, 8000, seconds=0.02)
    assert Resampler(8000, 8000).process(pcm) == pcm
