"""The simulated board: observable devices, WAV microphone and per-call speaker files."""

import math
import threading
import time
import wave
from array import array

import pytest

import hal

WAIT_S = 3.0


def write_wav(path, rate, samples, channels=1, width=2):
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(array("h", samples).tobytes() if width == 2 else bytes(samples))


def tone(rate, freq, seconds, amplitude=8000):
    count = int(rate * seconds)
    return [int(amplitude * math.sin(2 * math.pi * freq * n / rate)) for n in range(count)]


def samples_of(pcm):
    values = array("h")
    values.frombytes(pcm)
    return values


def dominant_frequency_hz(samples, rate, candidates):
    """The candidate frequency with the most energy (single-bin DFT)."""
    def power(freq):
        re = sum(s * math.cos(2 * math.pi * freq * n / rate) for n, s in enumerate(samples))
        im = sum(s * math.sin(2 * math.pi * freq * n / rate) for n, s in enumerate(samples))
        return re * re + im * im
    return max(candidates, key=power)


@pytest.fixture
def board():
    opened = hal.open_board("pc-sim")
    yield opened
    opened.close()


def test_press_fires_pressed_then_released(board):
    events = []
    released = threading.Event()
    button = board.buttons["call"]
    button.when_pressed = lambda: events.append("pressed")
    button.when_released = lambda: (events.append("released"), released.set())
    started = time.monotonic()
    board.press("call", 80)
    assert events == ["pressed"] and board.snapshot()["buttons"]["call"] is True
    assert released.wait(WAIT_S)
    assert time.monotonic() - started >= 0.07
    assert events == ["pressed", "released"]
    assert board.snapshot()["buttons"]["call"] is False


def test_long_press_is_held_before_release(board):
    events = []
    done = threading.Event()
    button = board.buttons["hangup"]
    button.hold_ms = 50
    button.when_held = lambda: events.append("held")
    button.when_released = lambda: (events.append("released"), done.set())
    board.press("hangup", 150)
    assert done.wait(WAIT_S)
    assert events == ["held", "released"]


def test_short_press_is_not_held(board):
    held = threading.Event()
    released = threading.Event()
    board.buttons["call"].when_held = held.set
    board.buttons["call"].when_released = released.set
    board.press("call", 50)  # pc-sim's hold_ms is 2000
    assert released.wait(WAIT_S) and not held.is_set()


def test_press_unknown_role_or_bad_length(board):
    with pytest.raises(KeyError, match="call, call2, hangup"):
        board.press("doorbell")
    with pytest.raises(ValueError):
        board.press("call", 0)


def test_relay_history_and_snapshot(board):
    relay = board.relays["door"]
    relay.pulse(60)
    assert board.snapshot()["relays"] == {"door": "open", "gate": "closed"}
    deadline = time.monotonic() + WAIT_S
    while relay.is_active and time.monotonic() < deadline:
        time.sleep(0.005)
    assert board.snapshot()["relays"] == {"door": "closed", "gate": "closed"}
    (opened_at, first), (closed_at, second) = relay.history
    assert (first, second) == ("open", "closed")
    assert 0.05 <= closed_at - opened_at < 1.5


def test_led_patterns_and_inputs(board):
    board.leds["status"].set_pattern("blink_slow")
    board.leds["door"].set_pattern("on")
    assert board.snapshot()["leds"] == {"status": "blink_slow", "call": "off", "door": "on",
                                        "gate": "off"}
    assert list(board.leds["door"].history) == ["on"]
    changes = []
    board.inputs["door_contact"].when_activated = lambda: changes.append("closed")
    board.inputs["door_contact"].when_deactivated = lambda: changes.append("opened")
    assert board.inputs["door_contact"].is_active  # at rest the door is shut
    board.set_input("door_contact", True)  # no change, no event
    board.set_input("door_contact", False)
    board.set_input("door_contact", True)
    assert changes == ["opened", "closed"]


def test_mic_without_file_is_silence(board):
    stream = board.audio.open()
    assert stream.read_frame() == bytes(320)
    assert board.audio.paced is False


def test_mic_44k1_wav_is_looped_and_resampled_to_8k(tmp_path):
    mic = tmp_path / "mic.wav"
    write_wav(mic, 44100, tone(44100, 1000, 0.25))  # 250 ms, looped
    board = hal.open_board("pc-sim", mic=mic)
    try:
        stream = board.audio.open(rate=8000, frame_ms=20)
        frames = [stream.read_frame() for _ in range(40)]  # 800 ms: more than three loops
    finally:
        board.close()
    assert all(len(frame) == 320 for frame in frames)
    audio = samples_of(b"".join(frames))
    assert len(audio) == 6400
    # The tone survives conversion (and the loops): 1 kHz, not a neighbouring frequency.
    window = list(audio[3200:4000])
    assert dominant_frequency_hz(window, 8000, [500, 1000, 2000, 3000]) == 1000
    assert max(abs(s) for s in window) > 4000


def test_mic_stereo_is_downmixed_and_rate_kept(tmp_path):
    mic = tmp_path / "stereo.wav"
    left_right = []
    for n in range(800):
        left_right += [1000 + n % 7, 3000]
    write_wav(mic, 8000, left_right, channels=2)
    stream = hal.open_board("pc-sim", mic=mic).audio.open()
    first = samples_of(stream.read_frame())
    assert list(first[:3]) == [2000, 2000, 2001]


def test_mic_must_be_16_bit(tmp_path):
    mic = tmp_path / "8bit.wav"
    write_wav(mic, 8000, [128] * 800, width=1)
    with pytest.raises(ValueError, match="16-bit"):
        hal.open_board("pc-sim", mic=mic).audio.open()


def test_speaker_writes_one_wav_per_call(tmp_path):
    board = hal.open_board("pc-sim", speaker_dir=tmp_path / "out")
    stream = board.audio.open()
    stream.write_frame(bytes([1, 0]) * 160)  # before any call: discarded
    board.audio.begin_call("a84b4c76e66710@pc33.example.com")
    ramp = array("h", range(160)).tobytes()
    for _ in range(5):
        stream.write_frame(ramp)
    board.audio.end_call()
    board.audio.begin_call("call/../two")
    stream.write_frame(ramp)
    board.close()
    first = tmp_path / "out" / "a84b4c76e66710@pc33.example.com.wav"
    with wave.open(str(first), "rb") as recorded:
        assert (recorded.getnchannels(), recorded.getsampwidth(), recorded.getframerate()) == (
            1, 2, 8000)
        assert recorded.readframes(10000) == ramp * 5
    second = tmp_path / "out" / "call_.._two.wav"
    with wave.open(str(second), "rb") as recorded:
        assert recorded.getnframes() == 160
