"""Echo cancellers compared in process (docs/AUDIO.md "Why speexdsp"):

    .venv/bin/python -m tools.bench.aec_compare

libspeexdsp through firmware/runtime/audioproc.py, and WebRTC's AEC3 through the PyPI package
`pywebrtc-audio` when it is installed (it is no dependency of the project: install it by hand to
compare). Rooms from tools/rooms.py, far end = the tests' speech-like audio, microphone = the
room's echo (plus a 1 kHz near-end tone for double talk). ERLE over the audio after 2 s; CPU is
the time per 20 ms frame spent in the canceller.
"""

import tempfile
import time

import numpy as np

from hal.room import Room
from tests.integration.test_audio_housing import far_end_speech
from tools import rooms


def _speex(rate, n, full):
    from firmware.runtime import audioproc
    from firmware.settings import AudioConfig

    processor = audioproc.AudioProcessor(rate, n, AudioConfig(True, full, full))

    def run(near, far):
        processor.playback(far.tobytes())
        return np.frombuffer(processor.capture(near.tobytes()), "<i2")
    return run


def _webrtc(rate, n, full):
    import pywebrtc_audio  # type: ignore[import-not-found]  # optional, installed by hand

    processor = pywebrtc_audio.AudioProcessor(
        sample_rate=rate, echo_cancellation=True, noise_suppression=full,
        auto_gain_control=full, ns_level=2, agc_max_gain_db=20)
    step = rate // 100  # AEC3 works on 10 ms frames

    def run(near, far):
        return np.concatenate([processor.process(near[i:i + step], far[i:i + step])
                               for i in range(0, n, step)])
    return run


def measure(make, path, rate, full, near_tone=False, seconds=4):
    n = rate // 50
    room, process = Room(path, rate), make(rate, n, full)
    far_audio = far_end_speech(48000, seconds)[::48000 // rate]
    t = np.arange(seconds * rate) / rate
    near = (0.1 * 32767 * np.sin(2 * np.pi * 1000 * t)).astype("<i2") if near_tone \
        else np.zeros(seconds * rate, "<i2")
    outs, echoes, cpu = [], [], 0.0
    for k in range(seconds * 50):
        far = (far_audio[k * n:(k + 1) * n] * 32767).astype("<i2")
        room.play(far.tobytes())
        mic = np.frombuffer(room.add_echo(near[k * n:(k + 1) * n].tobytes()), "<i2")
        began = time.perf_counter()
        outs.append(process(mic, far).astype(float))
        cpu += time.perf_counter() - began
        echoes.append(mic.astype(float) - near[k * n:(k + 1) * n])
    out, echo, start = np.concatenate(outs)[2 * rate:], np.concatenate(echoes)[2 * rate:], 2 * rate
    if near_tone:
        def band(x):
            spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
            freqs = np.fft.rfftfreq(len(x), 1 / rate)
            return spectrum[(freqs > 950) & (freqs < 1050)].sum()
        return 10 * np.log10(band(out) / band(near[start:].astype(float)))
    erle = 10 * np.log10(np.mean(echo ** 2) / max(np.mean(out ** 2), 1e-9))
    return erle, cpu / (seconds * 50) * 1e3


def main():
    makers = {"speexdsp": _speex}
    try:
        import pywebrtc_audio  # noqa: F401  # optional

        makers["webrtc-aec3"] = _webrtc
    except ImportError:
        print("pywebrtc-audio not installed: speexdsp only")
    with tempfile.TemporaryDirectory() as directory:
        paths = {rate: rooms.generate(f"{directory}/{rate}", rate) for rate in (8000, 16000)}
        for name, make in makers.items():
            for full in (True, False):
                for rate in (8000, 16000):
                    cells = []
                    for room in ("box", "hallway"):
                        erle, ms = measure(make, paths[rate][room], rate, full)
                        cells.append(f"{room} {erle:.1f} dB {ms:.2f} ms/frame")
                    talk = measure(make, paths[rate]["box"], rate, full, near_tone=True)
                    print(f"{name} {'AEC+NS+AGC' if full else 'AEC only'} {rate} Hz: "
                          f"{'; '.join(cells)}; near-end 1 kHz {talk:+.1f} dB")


if __name__ == "__main__":
    main()
