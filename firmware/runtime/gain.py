"""Digital gain and volume for 16-bit PCM frames (issue 15): the microphone's `mic_gain_db`
and, where the board has no mixer, the speaker's `speaker_volume`. Loads no library, so cues
outside a call and calls without processing use it without the DSP (runtime/audioproc.py).

    gain_factor(db) -> float             10 ** (db / 20)
    volume_factor(percent) -> float      percent / 100, clamped to 0..1 (linear in amplitude)
    apply_gain(frame, factor) -> bytes   the frame scaled and clipped (native byte order)
"""

import array


def gain_factor(db: float) -> float:
    return float(10.0 ** (db / 20.0))


def volume_factor(percent: int) -> float:
    return max(0, min(100, percent)) / 100.0


def apply_gain(frame: bytes, factor: float) -> bytes:
    """`frame` (16-bit PCM, native order) times `factor`, clipped."""
    if factor == 1.0:
        return frame
    samples = array.array("h", frame)
    if factor == 0.0:
        return bytes(len(frame))
    for i, value in enumerate(samples):
        scaled = int(value * factor)
        samples[i] = 32767 if scaled > 32767 else -32768 if scaled < -32768 else scaled
    return samples.tobytes()
