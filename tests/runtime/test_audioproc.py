"""runtime/audioproc.py (libspeexdsp through ctypes) and runtime/g722.py (libspandsp) in
process, with the simulated room of hal/room.py: fast checks of what the call tests measure
through baresip (tests/integration/test_audio_housing.py)."""

import array
import math

import numpy as np
import pytest

from firmware.runtime import audioproc, g722
from firmware.settings import AudioConfig
from hal.room import Room
from tools import rooms

pytestmark = pytest.mark.skipif(not audioproc.available() or not g722.available(),
                                reason="libspeexdsp1 and libspandsp2 are not installed")


def far_end(rate, seconds, seed=3):
    rng = np.random.default_rng(seed)
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3 * np.arange(int(seconds * rate)) / rate)
    return 4000 * rng.standard_normal(int(seconds * rate)) * envelope


def run_room(room_path, rate, cfg, seconds=3.0, near=None):
    """(echo dB, output dB) after 2 s: the far end played into `room_path`, mic = echo."""
    n = rate // 50
    room = Room(room_path, rate)
    processor = audioproc.AudioProcessor(rate, n, cfg)
    far = far_end(rate, seconds)
    echoes, outputs = [], []
    for k in range(int(seconds * 50)):
        frame = np.clip(far[k * n:(k + 1) * n], -32768, 32767).astype("<i2").tobytes()
        room.play(processor.playback(frame))
        mic = bytes(2 * n) if near is None else near[k * n:(k + 1) * n].astype("<i2").tobytes()
        heard = room.add_echo(mic)
        echoes.append(np.frombuffer(heard, "<i2").astype(float))
        outputs.append(np.frombuffer(processor.capture(heard), "<i2").astype(float))
    processor.close()
    start = 2 * rate
    echo, out = np.concatenate(echoes)[start:], np.concatenate(outputs)[start:]
    return 10 * math.log10(np.mean(echo ** 2)), 10 * math.log10(max(np.mean(out ** 2), 1e-9))


@pytest.fixture(scope="module")
def room_paths(tmp_path_factory):
    base = tmp_path_factory.mktemp("rooms")
    return {rate: rooms.generate(base / str(rate), rate) for rate in (8000, 16000)}


@pytest.mark.parametrize("rate", [8000, 16000])
def test_canceller_removes_the_rooms_echo(room_paths, rate):
    echo, out = run_room(room_paths[rate]["box"], rate, AudioConfig())
    off_echo, off_out = run_room(room_paths[rate]["box"], rate, AudioConfig(False, False, False))
    assert echo - out >= 25, (echo, out)
    assert abs(off_echo - off_out) < 1  # nothing on: the echo goes through unchanged


def test_agc_does_not_raise_the_residual_echo(room_paths):
    """The AGC is held while the far end talks (else it lifts the residual: see audioproc)."""
    echo, out = run_room(room_paths[16000]["hallway"], 16000, AudioConfig())
    no_agc_echo, no_agc_out = run_room(room_paths[16000]["hallway"], 16000,
                                       AudioConfig(True, True, False))
    assert out <= no_agc_out + 3, (out, no_agc_out)


def test_gain_and_volume_factors():
    assert audioproc.gain_factor(6) == pytest.approx(1.995, abs=1e-3)
    assert audioproc.volume_factor(50) == 0.5 and audioproc.volume_factor(120) == 1.0
    frame = np.full(160, 1000, "<i2").tobytes()
    assert np.frombuffer(audioproc.apply_gain(frame, 2.0), "<i2")[0] == 2000
    assert np.frombuffer(audioproc.apply_gain(frame, 100.0), "<i2")[0] == 32767  # clipped
    processor = audioproc.AudioProcessor(8000, 160, AudioConfig(False, False, False, 6, 50))
    assert not processor.processing  # gain and volume alone load no DSP
    assert np.frombuffer(processor.playback(frame), "<i2")[0] == 500
    assert np.frombuffer(processor.capture(frame), "<i2")[0] == 1995


def test_g722_round_trip_keeps_wideband_tones():
    codec = g722.G722Codec()
    t = np.arange(16000) / 16000
    for freq in (1000, 6000):
        pcm = (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2").tobytes()
        decoded = b"".join(codec.decode(codec.encode(pcm[i:i + 640]))
                           for i in range(0, len(pcm), 640))
        assert len(decoded) == len(pcm)
        out = np.frombuffer(decoded, "<i2").astype(float)[1600:]
        spectrum = np.abs(np.fft.rfft(out)) ** 2
        peak = np.fft.rfftfreq(len(out), 1 / 16000)[np.argmax(spectrum)]
        assert abs(peak - freq) < 20
        assert 0.5 < np.sqrt(np.mean(out ** 2)) / (8000 / math.sqrt(2)) < 1.5
    assert len(codec.encode(bytes(640))) == 160  # 64 kbit/s: 160 bytes per 20 ms
    codec.close()


def test_g722_bit_exact_with_a_second_implementation():
    """Our libspandsp binding against libg722 (PyPI `G722`, packaged separately by Sippy
    Software): the same bitstream from the same 16 kHz PCM, and the same PCM from it."""
    other_module = pytest.importorskip("G722")
    rng = np.random.default_rng(1)
    t = np.arange(2 * 16000) / 16000
    sweep = 6000 * np.sin(2 * np.pi * np.cumsum(np.linspace(100, 7500, len(t))) / 16000)
    pcm = np.clip(sweep + 2000 * rng.standard_normal(len(t)), -32768, 32767).astype("<i2")
    ours, other = g722.G722Codec(), other_module.G722(16000, 64000, use_numpy=False)
    encoded = b"".join(ours.encode(pcm[i:i + 320].tobytes()) for i in range(0, len(pcm), 320))
    assert encoded == bytes(other.encode(array.array("h", pcm.tolist())))
    decoded = b"".join(ours.decode(encoded[i:i + 160]) for i in range(0, len(encoded), 160))
    assert decoded == other.decode(encoded).tobytes()
    ours.close()
