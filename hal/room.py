"""A simulated room between the station's loudspeaker and its microphone (pc-sim `--echo-path`).

The only importer of numpy, loaded only when a simulated board is given an impulse response.

    Room(path, rate)       the impulse response from `path` (a 16-bit WAV, any rate, mono or
                           stereo, downmixed), converted to `rate`
      .play(pcm)           the speaker plays this frame now (16-bit mono at `rate`)
      .echo(nbytes)        the echo that reaches the microphone in the next `nbytes` of
                           capture: the played audio convolved with the impulse response

Timing: both sides count samples. Audio played at sample time t is heard from t on (the
response's own delay, e.g. its direct path, comes on top); the microphone's frame read right
after a frame was played starts at that frame's first sample, as a sound card running capture
and playback from one clock does. A speaker that fell behind the microphone has played silence
meanwhile; one more than `MAX_LEAD_FRAMES` ahead loses its oldest audio (bounded memory).
"""

import wave
from typing import TYPE_CHECKING

import numpy as np

from hal.pcm import RateConverter, downmix

if TYPE_CHECKING:
    import pathlib

MAX_SECONDS = 2.0  # longest impulse response accepted
MAX_LEAD_FRAMES = 10


def load_impulse_response(path: "str | pathlib.Path", rate: int) -> "np.ndarray":
    """The response as float samples at `rate` (full scale 1.0); ValueError when unusable."""
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels = wav.getsampwidth(), wav.getnchannels()
            file_rate, frames = wav.getframerate(), wav.getnframes()
            data = wav.readframes(frames)
    except (OSError, wave.Error, EOFError) as error:
        raise ValueError(f"echo path WAV {path}: {error}") from None
    if width != 2 or channels not in (1, 2) or frames == 0:
        raise ValueError(f"echo path WAV {path}: need 16-bit mono or stereo samples")
    if frames > MAX_SECONDS * file_rate:
        raise ValueError(f"echo path WAV {path}: longer than {MAX_SECONDS} s")
    mono = downmix(data, channels)
    # RateConverter keeps the 16-bit scale; a response's peak is scaled by its writer so
    # that 32767 stands for a gain of 1.0.
    converted = RateConverter(file_rate, rate).convert(mono + bytes(64))
    return np.frombuffer(converted, dtype="<i2").astype(np.float64) / 32768.0


class Room:
    def __init__(self, path: "str | pathlib.Path", rate: int) -> None:
        self.rate = rate
        self.response = load_impulse_response(path, rate)
        self._acc = np.zeros(0)  # echo still to come, from the microphone's position on
        self._lead = 0  # samples the speaker has played beyond the microphone's position

    def play(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if self._lead > MAX_LEAD_FRAMES * len(samples):
            self._acc = self._acc[len(samples):]
            self._lead -= len(samples)
        echo = np.convolve(samples, self.response)
        end = self._lead + len(echo)
        if len(self._acc) < end:
            self._acc = np.concatenate((self._acc, np.zeros(end - len(self._acc))))
        self._acc[self._lead:end] += echo
        self._lead += len(samples)

    def echo(self, nbytes: int) -> "np.ndarray":
        count = nbytes // 2
        out = self._acc[:count]
        if len(out) < count:
            out = np.concatenate((out, np.zeros(count - len(out))))
        self._acc = self._acc[count:]
        self._lead = max(0, self._lead - count)
        return out

    def add_echo(self, pcm: bytes) -> bytes:
        """`pcm` (the microphone's own frame) with the room's echo added, clipped."""
        mixed = np.frombuffer(pcm, dtype="<i2").astype(np.float64) + self.echo(len(pcm))
        return np.clip(np.rint(mixed), -32768, 32767).astype("<i2").tobytes()
