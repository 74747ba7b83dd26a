"""hal/room.py and tools/rooms.py: the simulated echo path is sample-exact and the rooms are
generated reproducibly."""

import wave

import numpy as np

from hal.room import Room
from hal.sim import SimAudio
from tools import rooms


def write_response(path, taps, rate=8000, length=400):
    samples = np.zeros(length)
    for index, gain in taps:
        samples[index] = gain
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def test_echo_is_the_played_frame_convolved_and_sample_timed(tmp_path):
    path = write_response(tmp_path / "ir.wav", [(3, 0.5), (200, -0.25)])
    room = Room(path, 8000)
    frames = [np.full(160, 1000 * (k + 1), "<i2") for k in range(3)]
    heard = []
    for frame in frames:
        room.play(frame.tobytes())
        heard.append(np.frombuffer(room.add_echo(bytes(320)), "<i2"))
    played = np.concatenate(frames).astype(float)
    expected = 0.5 * np.roll(played, 3) - 0.25 * np.roll(played, 200)
    expected[:3] = 0
    expected[3:200] = 0.5 * played[:197]
    got = np.concatenate(heard).astype(float)
    assert np.max(np.abs(got - np.rint(expected))) <= 2  # 16-bit rounding of the gains


def test_speaker_behind_the_microphone_plays_silence(tmp_path):
    path = write_response(tmp_path / "ir.wav", [(0, 1.0)])
    room = Room(path, 8000)
    assert not room.add_echo(bytes(320)).strip(b"\0")  # nothing played yet
    room.play(np.full(160, 500, "<i2").tobytes())
    assert np.all(np.frombuffer(room.add_echo(bytes(320)), "<i2") == 500)


def test_sim_audio_adds_the_echo_to_the_microphone(tmp_path):
    path = write_response(tmp_path / "ir.wav", [(0, 0.5)], rate=16000)
    audio = SimAudio(echo_path=path)
    stream = audio.open(rate=16000)
    stream.write_frame(np.full(320, 2000, "<i2").tobytes())
    assert np.all(np.abs(np.frombuffer(stream.read_frame(), "<i2") - 1000) <= 1)
    stream.close()


def test_rooms_are_reproducible_and_as_long_as_named(tmp_path):
    first = rooms.generate(tmp_path / "a", 16000)
    second = rooms.generate(tmp_path / "b", 16000)
    for name, seconds in (("box", 0.05), ("hallway", 0.15)):
        assert first[name].read_bytes() == second[name].read_bytes()
        with wave.open(str(first[name])) as wav:
            assert wav.getnframes() == int(seconds * 16000)
