"""Tone generation, feedback cues, Goertzel and the in-band DTMF detector."""

import random

import pytest

from firmware.codecs.tones import (
    COLUMN_FREQUENCIES,
    CUES,
    FRAME_SAMPLES,
    KEYPAD,
    RATE,
    ROW_FREQUENCIES,
    Digit,
    InbandDtmfDetector,
    ToneGenerator,
    cue_frames,
    goertzel_power,
    mean_square,
    pcm_to_samples,
    samples_to_pcm,
)

ALL_KEYS = "".join(KEYPAD)


def _key_frequencies(key):
    for row, keys in enumerate(KEYPAD):
        if key in keys:
            return ROW_FREQUENCIES[row], COLUMN_FREQUENCIES[keys.index(key)]
    raise KeyError(key)


def _dtmf(key, milliseconds, amplitude=12000):
    count = RATE * milliseconds // 1000
    return pcm_to_samples(ToneGenerator(_key_frequencies(key), amplitude).samples(count))


def _silence(milliseconds):
    return [0] * (RATE * milliseconds // 1000)


def _detect(samples, detector=None, noise=0, seed=1):
    detector = detector or InbandDtmfDetector()
    rng = random.Random(seed)
    samples = [s + rng.gauss(0, noise) for s in samples] if noise else list(samples)
    digits = []
    for start in range(0, len(samples), FRAME_SAMPLES):
        digits += detector.feed(samples_to_pcm(samples[start : start + FRAME_SAMPLES]))
    return "".join(d.digit for d in digits)


@pytest.mark.parametrize("frequency", [425, 697, 1000, 1633, 3000])
def test_generator_frequency_checked_by_goertzel(frequency):
    samples = pcm_to_samples(ToneGenerator([frequency], amplitude=10000).samples(800))
    at_tone = goertzel_power(samples, frequency, RATE)
    assert at_tone == pytest.approx(10000**2 / 2, rel=0.02)
    assert mean_square(samples) == pytest.approx(at_tone, rel=0.02)
    for offset in (-150, 150):
        assert goertzel_power(samples, frequency + offset, RATE) < at_tone / 100


def test_generator_is_phase_continuous_across_frames():
    framed = ToneGenerator([425, 1000], amplitude=9000)
    whole = ToneGenerator([425, 1000], amplitude=9000).samples(10 * FRAME_SAMPLES)
    frames = b"".join(next(framed) for _ in range(10))
    assert len(frames) == 2 * 10 * FRAME_SAMPLES
    difference = [
        abs(a - b) for a, b in zip(pcm_to_samples(frames), pcm_to_samples(whole), strict=True)
    ]
    assert max(difference) <= 1


def test_generator_peak_stays_within_amplitude():
    samples = pcm_to_samples(ToneGenerator([697, 1209], amplitude=20000).samples(8000))
    assert 19000 < max(abs(s) for s in samples) <= 20000


def test_goertzel_of_silence_and_empty_input():
    assert goertzel_power([0] * 160, 1000, RATE) == 0.0
    assert goertzel_power([], 1000, RATE) == 0.0


def _tone_intervals(frames, frequency):
    """(start_ms, end_ms) runs of frames in which `frequency` dominates."""
    runs, start = [], None
    for index, frame in enumerate(frames + [bytes(2 * FRAME_SAMPLES)]):
        samples = pcm_to_samples(frame)
        on = goertzel_power(samples, frequency, RATE) > 0.5 * mean_square(samples) > 0
        if on and start is None:
            start = index
        elif not on and start is not None:
            runs.append((start * 20, index * 20))
            start = None
    return runs


def test_ringback_is_425hz_one_second_on_four_off():
    frames = cue_frames(CUES["ringback"])
    ten_seconds = [next(frames) for _ in range(500)]
    assert _tone_intervals(ten_seconds, 425) == [(0, 1000), (5000, 6000)]


def test_busy_cadence():
    frames = cue_frames(CUES["busy"])
    assert _tone_intervals([next(frames) for _ in range(100)], 425) == [
        (0, 500),
        (1000, 1500),
    ]


def test_failure_is_the_three_rising_special_information_tones():
    frames = cue_frames(CUES["failure"])
    first_second = [next(frames) for _ in range(50)]
    onsets = [_tone_intervals(first_second, f)[0][0] for f in (950, 1400, 1800)]
    assert onsets == sorted(onsets) and onsets[0] == 0


@pytest.mark.parametrize("name", ["door_open", "auto_answer"])
def test_short_cues_end_and_fill_whole_frames(name):
    frames = list(cue_frames(CUES[name]))
    assert 1 <= len(frames) <= 25
    assert all(len(f) == 2 * FRAME_SAMPLES for f in frames)
    assert any(mean_square(pcm_to_samples(f)) > 1e6 for f in frames)


@pytest.mark.parametrize("key", list(ALL_KEYS))
def test_detects_every_key(key):
    assert _detect(_silence(60) + list(_dtmf(key, 100)) + _silence(60)) == key


@pytest.mark.parametrize("key", list(ALL_KEYS))
def test_detects_every_key_in_noise(key):
    # Noise 20 dB below each tone component.
    signal = _silence(40) + list(_dtmf(key, 80)) + _silence(40)
    assert _detect(signal, noise=600, seed=ord(key)) == key


def test_digit_event_carries_key_and_source():
    detector = InbandDtmfDetector()
    events = []
    for start in range(0, 800, FRAME_SAMPLES):
        events += detector.feed(samples_to_pcm(_dtmf("7", 100)[start : start + FRAME_SAMPLES]))
    assert events == [Digit("7", "inband")]


def test_long_press_gives_one_digit():
    assert _detect(list(_dtmf("5", 2000)) + _silence(100)) == "5"


def test_same_key_twice_after_a_gap_gives_two_digits():
    press = list(_dtmf("5", 80))
    assert _detect(press + _silence(60) + press + _silence(60)) == "55"


def test_short_dropout_inside_a_press_does_not_repeat_the_digit():
    press = list(_dtmf("9", 200))
    assert _detect(press + _silence(20) + press) == "9"


def test_too_short_tone_is_ignored():
    assert _detect(_silence(40) + list(_dtmf("1", 20)) + _silence(60)) == ""


def test_door_code_sequence():
    signal = []
    for key in "1984#":
        signal += list(_dtmf(key, 70)) + _silence(50)
    assert _detect(signal) == "1984#"


def test_rejects_single_tones_and_noise():
    single = pcm_to_samples(ToneGenerator([697], 12000).samples(1600))
    assert _detect(single) == ""
    assert _detect(_silence(400), noise=3000) == ""


def _twisted_one(row_louder_db):
    row, column = _key_frequencies("1")
    column_amplitude = 8000 / 10 ** (row_louder_db / 20)
    row_tone = pcm_to_samples(ToneGenerator([row], 8000).samples(800))
    column_tone = pcm_to_samples(ToneGenerator([column], column_amplitude).samples(800))
    return [a + b for a, b in zip(row_tone, column_tone, strict=True)]


@pytest.mark.parametrize("row_louder_db, expected", [(6, "1"), (10, ""), (-3, "1"), (-6, "")])
def test_twist_limits(row_louder_db, expected):
    assert _detect(_twisted_one(row_louder_db)) == expected


def test_quiet_tones_below_threshold_are_ignored():
    assert _detect(list(_dtmf("3", 200, amplitude=400))) == ""
    assert _detect(list(_dtmf("3", 200, amplitude=2000))) == "3"


def test_not_confused_by_ringback():
    frames = cue_frames(CUES["ringback"])
    detector = InbandDtmfDetector()
    assert [d for _ in range(100) for d in detector.feed(next(frames))] == []


def test_two_rows_at_once_are_ambiguous():
    chord = pcm_to_samples(ToneGenerator([697, 770, 1209], amplitude=15000).samples(1600))
    assert _detect(chord) == ""


def test_tones_under_louder_broadband_sound_are_not_accepted():
    # Talk-off protection: the key's two tones must carry most of the frame's energy.
    assert _detect(list(_dtmf("6", 200, amplitude=4000)), noise=3000) == ""
    assert _detect(list(_dtmf("6", 200, amplitude=4000)), noise=300) == "6"


def test_inband_dtmf_at_16khz():
    """A G.722 call detects in-band DTMF at its 16 kHz audio rate (issue 15)."""
    from firmware.codecs.tones import InbandDtmfDetector, ToneGenerator

    detector = InbandDtmfDetector(16000)
    tone = ToneGenerator([770, 1336], rate=16000, frame_samples=320)  # "5"
    digits = []
    for _ in range(5):
        digits += detector.feed(next(tone))
    silence = bytes(640)
    for _ in range(5):
        digits += detector.feed(silence)
    assert [d.digit for d in digits] == ["5"]
