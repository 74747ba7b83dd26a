"""The microphone's and the loudspeaker's signal processing in a call: acoustic echo
cancellation, noise suppression, automatic gain, mic gain and speaker volume (issue 15).

The only importer of libspeexdsp (Debian/Raspberry Pi OS `libspeexdsp1`), through ctypes; this
module is imported by runtime/media.py when a call starts with processing on, never at start-up
(issue 14's budget).

Public API
- `AudioProcessor(rate, frame_samples, audio_cfg, digital_volume=True, reference_delay=0,
  tail_ms=ECHO_TAIL_MS)`: one call's processing at the call's audio rate (8000 or 16000) on
  frames of `frame_samples` 16-bit mono samples.
  - `playback(frame) -> frame`: what the speaker is about to play (the far end's audio and
    cues); applies the digital speaker volume (unless the board's mixer sets it:
    `digital_volume=False`) and keeps the result as the echo canceller's reference.
  - `capture(frame) -> frame`: one microphone frame captured while the last frame given to
    `playback` was playing: mic gain, then the echo canceller, then the preprocessor (noise
    suppression, AGC, residual echo suppression).
  - `reference_delay` (frames): how many frames later than `playback` the speaker really
    plays, less how much later the microphone's frame is read (ALSA's buffers on a Pi; 0 on
    pc-sim, where the simulated room adds the echo exactly when a frame is played).
  - `set_levels(mic_gain_db, speaker_volume, digital_volume=True)`: new levels mid-call.
  - `close()`; `stats() -> dict` (`erle_db`: the canceller's own estimate of the echo removed
    over the last second, input power over output power).
- `available() -> bool`: whether libspeexdsp loads here.
- The digital gain rules (`gain_factor`, `volume_factor`, `apply_gain`) live in
  runtime/gain.py, which loads no library (cues outside a call use them too).

Choices
- libspeexdsp's MDF canceller and preprocessor: maintained, in Debian and Raspberry Pi OS, a C
  API (so a small ctypes binding, no compiler on the Pi) and cheap; measured against the
  alternatives in docs/AUDIO.md.
- The echo tail is `ECHO_TAIL_MS` (200 ms): covers the hallway room (150 ms) plus the ALSA
  delay margin; the canceller's cost grows with it.
- The speaker volume is linear in amplitude: `volume/100`, so 50 is -6 dB of 100.
"""

import array
import collections
import ctypes
import math
import sys

from firmware.runtime.clib import open_library
from firmware.runtime.gain import apply_gain, gain_factor, volume_factor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.settings import AudioConfig

ECHO_TAIL_MS = 200
NOISE_SUPPRESS_DB = -25  # the preprocessor's largest noise attenuation
ECHO_SUPPRESS_DB = -40  # residual echo attenuation, far end alone
ECHO_SUPPRESS_ACTIVE_DB = -15  # residual echo attenuation while the near end talks too
AGC_LEVEL = 8000.0  # the AGC's target (RMS of speech, 16-bit scale)
AGC_MAX_GAIN_DB = 20
STATS_FRAMES = 50  # the ERLE estimate covers one second of 20 ms frames
# The AGC is held while the far end talks (and for a room's tail after): it would take the
# canceller's residual echo for a quiet talker and raise it (measured: ERLE 37 -> 20 dB at
# 16 kHz in the box with speexdsp's AGC left running, docs/AUDIO.md).
FAR_END_ACTIVE_POWER = 10.0 ** (-50 / 10) * 32768.0 ** 2  # -50 dBFS mean square
FAR_END_HANGOVER_FRAMES = 15  # 300 ms

# libspeexdsp's request numbers (speex/speex_echo.h, speex/speex_preprocess.h)
SPEEX_ECHO_SET_SAMPLING_RATE = 24
SPEEX_PREPROCESS_SET_DENOISE = 0
SPEEX_PREPROCESS_SET_AGC = 2
SPEEX_PREPROCESS_SET_AGC_LEVEL = 6
SPEEX_PREPROCESS_SET_DEREVERB = 8
SPEEX_PREPROCESS_SET_NOISE_SUPPRESS = 18
SPEEX_PREPROCESS_SET_ECHO_SUPPRESS = 20
SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE = 22
SPEEX_PREPROCESS_SET_ECHO_STATE = 24
SPEEX_PREPROCESS_SET_AGC_MAX_GAIN = 30

SONAMES = ("libspeexdsp.so.1",)

UNAVAILABLE = "echo cancellation needs libspeexdsp (Debian package libspeexdsp1)"
_lib: "ctypes.CDLL | None" = None


class SpeexUnavailable(RuntimeError):
    """libspeexdsp is not installed: calls run without echo cancellation and preprocessing."""


def _load() -> "ctypes.CDLL":
    global _lib
    if _lib is not None:
        return _lib
    lib = open_library(SONAMES, "speexdsp")
    if lib is None:
        raise SpeexUnavailable(UNAVAILABLE)
    lib.speex_echo_state_init.restype = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                            ctypes.c_char_p, ctypes.c_char_p]
    lib.speex_preprocess_state_init.restype = ctypes.c_void_p
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_run.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.speex_preprocess_run.restype = ctypes.c_int
    _lib = lib
    return lib


def available() -> bool:
    try:
        _load()
    except SpeexUnavailable:
        return False
    return True


def _power(frame: bytes) -> float:
    samples = array.array("h", frame)
    return float(sum(s * s for s in samples)) / max(1, len(samples))


class AudioProcessor:
    """One call's microphone and speaker processing; see the module docstring."""

    def __init__(self, rate: int, frame_samples: int, audio_cfg: "AudioConfig",
                 digital_volume: bool = True, reference_delay: int = 0,
                 tail_ms: int = ECHO_TAIL_MS) -> None:
        if sys.byteorder != "little":
            raise SpeexUnavailable("the speexdsp binding assumes a little-endian machine")
        self.rate = rate
        self.frame_samples = frame_samples
        self.frame_bytes = 2 * frame_samples
        self.cfg = audio_cfg
        self._mic_gain = gain_factor(audio_cfg.mic_gain_db)
        self._speaker_gain = volume_factor(audio_cfg.speaker_volume) if digital_volume else 1.0
        self._echo = None
        self._pre = None
        self._lib: ctypes.CDLL | None = None
        silence = bytes(self.frame_bytes)
        # reference frames waiting to be paired with the microphone (delay + the current one)
        self._reference: collections.deque[bytes] = collections.deque(
            [silence] * (reference_delay + 1), maxlen=reference_delay + 1)
        self._out = ctypes.create_string_buffer(self.frame_bytes)
        self._in_power = 0.0
        self._out_power = 0.0
        self._frames = 0
        # held from the start until the far end has been quiet for a while (a call usually
        # opens with the far end's audio and the canceller not yet converged)
        self._far_hangover = FAR_END_HANGOVER_FRAMES
        self._agc_running = False
        self.erle_db: float | None = None
        if audio_cfg.processing():
            self._open(tail_ms)

    def _open(self, tail_ms: int) -> None:
        lib = self._lib = _load()
        n = self.frame_samples
        if self.cfg.echo_cancel:
            tail = max(n, (self.rate * tail_ms // 1000) // n * n)
            self._echo = lib.speex_echo_state_init(n, tail)
            self._ctl_echo(SPEEX_ECHO_SET_SAMPLING_RATE, self.rate)
        self._pre = lib.speex_preprocess_state_init(n, self.rate)
        self._ctl(SPEEX_PREPROCESS_SET_DENOISE, int(self.cfg.noise_suppress))
        self._ctl(SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, NOISE_SUPPRESS_DB)
        self._ctl(SPEEX_PREPROCESS_SET_AGC, int(self.cfg.agc and self._echo is None))
        self._agc_running = bool(self.cfg.agc and self._echo is None)
        if self.cfg.agc:
            level = ctypes.c_float(AGC_LEVEL)
            lib.speex_preprocess_ctl(self._pre, SPEEX_PREPROCESS_SET_AGC_LEVEL,
                                     ctypes.byref(level))
            self._ctl(SPEEX_PREPROCESS_SET_AGC_MAX_GAIN, AGC_MAX_GAIN_DB)
        self._ctl(SPEEX_PREPROCESS_SET_DEREVERB, 0)
        if self._echo is not None:
            lib.speex_preprocess_ctl(self._pre, SPEEX_PREPROCESS_SET_ECHO_STATE,
                                     ctypes.c_void_p(self._echo))
            self._ctl(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, ECHO_SUPPRESS_DB)
            self._ctl(SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, ECHO_SUPPRESS_ACTIVE_DB)

    def _ctl(self, request: int, value: int) -> None:
        assert self._lib is not None and self._pre is not None
        number = ctypes.c_int(value)
        self._lib.speex_preprocess_ctl(self._pre, request, ctypes.byref(number))

    def _ctl_echo(self, request: int, value: int) -> None:
        assert self._lib is not None and self._echo is not None
        number = ctypes.c_int(value)
        self._lib.speex_echo_ctl(self._echo, request, ctypes.byref(number))

    def set_levels(self, mic_gain_db: "int | float", speaker_volume: int,
                   digital_volume: bool = True) -> None:
        """New mic gain and speaker volume during the call (the page's sliders)."""
        self._mic_gain = gain_factor(mic_gain_db)
        self._speaker_gain = volume_factor(speaker_volume) if digital_volume else 1.0

    @property
    def processing(self) -> bool:
        return self._pre is not None

    def playback(self, frame: bytes) -> bytes:
        frame = apply_gain(frame, self._speaker_gain)
        if self._echo is not None:
            self._reference.append(frame)
        return frame

    def capture(self, frame: bytes) -> bytes:
        if len(frame) != self.frame_bytes:
            frame = bytes(frame[:self.frame_bytes]).ljust(self.frame_bytes, b"\0")
        frame = apply_gain(frame, self._mic_gain)
        if self._pre is None:
            return frame
        lib = self._lib
        assert lib is not None
        if self._echo is not None:
            reference = self._reference[0]
            if self.cfg.agc:
                self._hold_agc_while_far_end_talks(reference)
            lib.speex_echo_cancellation(self._echo, frame, reference, self._out)
            cleaned = self._out.raw
            self._measure(frame, cleaned)
        else:
            cleaned = frame
        buffer = ctypes.create_string_buffer(cleaned, self.frame_bytes)
        lib.speex_preprocess_run(self._pre, buffer)
        return buffer.raw

    def _hold_agc_while_far_end_talks(self, reference: bytes) -> None:
        if _power(reference) > FAR_END_ACTIVE_POWER:
            self._far_hangover = FAR_END_HANGOVER_FRAMES
        elif self._far_hangover:
            self._far_hangover -= 1
        run = self._far_hangover == 0
        if run != self._agc_running:
            self._agc_running = run
            self._ctl(SPEEX_PREPROCESS_SET_AGC, int(run))

    def _measure(self, before: bytes, after: bytes) -> None:
        self._in_power += _power(before)
        self._out_power += _power(after)
        self._frames += 1
        if self._frames >= STATS_FRAMES:
            if self._in_power > 0:
                self.erle_db = round(10 * math.log10(self._in_power / max(self._out_power, 1.0)),
                                     1)
            self._in_power = self._out_power = 0.0
            self._frames = 0

    def stats(self) -> "dict[str, float | None]":
        return {"erle_db": self.erle_db}

    def close(self) -> None:
        lib = self._lib
        if lib is None:
            return
        if self._pre is not None:
            lib.speex_preprocess_state_destroy(self._pre)
            self._pre = None
        if self._echo is not None:
            lib.speex_echo_state_destroy(self._echo)
            self._echo = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


__all__ = ["AudioProcessor", "SpeexUnavailable", "apply_gain", "available", "gain_factor",
           "volume_factor"]
