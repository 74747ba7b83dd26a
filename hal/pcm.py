"""PCM plumbing shared by the Pi and simulated audio: channel mixing, rate conversion, framing.

All PCM here is signed 16-bit little-endian, interleaved when it has two channels.

    downmix(pcm, channels) -> mono bytes       average of the channels
    upmix(pcm, channels) -> interleaved bytes  mono copied to every channel
    RateConverter(in_rate, out_rate).convert(pcm) -> bytes
        streaming; wraps firmware.codecs.resample.Resampler (imported only when the rates differ)
    FrameQueue(frame_bytes): push(pcm); pop() -> one frame or None; .buffer: the bytes queued
                             (read only; empty is falsy without a call)
"""

import sys
from array import array


def _samples(pcm: "bytes | memoryview") -> "array":
    samples = array("h")
    samples.frombytes(pcm[: len(pcm) - len(pcm) % 2])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def _to_bytes(samples: "array") -> bytes:
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def downmix(pcm: "bytes | memoryview", channels: int) -> bytes:
    if channels == 1:
        return bytes(pcm)
    samples = _samples(pcm)
    frames = len(samples) // channels
    mono = array("h", (sum(samples[i * channels:(i + 1) * channels]) // channels
                       for i in range(frames)))
    return _to_bytes(mono)


def upmix(pcm: bytes, channels: int) -> bytes:
    if channels == 1:
        return bytes(pcm)
    mono = _samples(pcm)
    wide = array("h", bytes(len(mono) * channels * 2))
    for channel in range(channels):
        wide[channel::channels] = mono
    return _to_bytes(wide)


class RateConverter:
    """Streaming sample-rate conversion; a pass-through when both rates are equal."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._resampler = None
        if in_rate != out_rate:
            # Imported here so the HAL loads before the codecs package is complete.
            from firmware.codecs.resample import Resampler

            self._resampler = Resampler(in_rate, out_rate)

    def convert(self, pcm: bytes) -> bytes:
        if self._resampler is None:
            return bytes(pcm)
        return self._resampler.process(bytes(pcm))


class FrameQueue:
    """Cuts a byte stream into fixed-size frames (a resampler's output length varies)."""

    def __init__(self, frame_bytes: int, max_frames: int = 50) -> None:
        self.frame_bytes = frame_bytes
        self._limit = frame_bytes * max_frames
        self.buffer = bytearray()

    def push(self, pcm: "bytes | memoryview") -> None:
        self.buffer += pcm
        # Bounded: if the consumer stalls, keep the newest audio, not an ever-growing delay.
        excess = len(self.buffer) - self._limit
        if excess > 0:
            del self.buffer[: excess + (-excess) % self.frame_bytes]

    def pop(self) -> bytes | None:
        if len(self.buffer) < self.frame_bytes:
            return None
        frame = bytes(self.buffer[: self.frame_bytes])
        del self.buffer[: self.frame_bytes]
        return frame

    def __len__(self) -> int:
        return len(self.buffer)
