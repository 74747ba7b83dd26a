"""Audio checks for tests, in pure Python (no numpy).

Public API:
- `read_wav(path) -> (samples, rate)`: PCM 8/16/24/32-bit integer or 32/64-bit float WAV, any
  channel count (WAVE_FORMAT_EXTENSIBLE included), mixed down to mono floats in [-1, 1].
  A data chunk whose size was never patched (a recorder still writing) is read to the end.
- `tone_power_ratio(samples, rate, freq) -> float`: the share of the signal's energy at
  `freq`, via the Goertzel recurrence evaluated at exactly `freq`; about 1.0 for a pure tone,
  near 0.0 for silence or other frequencies.
- `dominant_frequency(samples, rate, candidates) -> freq`: the candidate with most power.
- `has_tone(wav_path, freq, min_ratio=0.5, skip_seconds=0.2) -> bool`.
- `write_tone_wav(path, freq, seconds=1.0, rate=8000, amplitude=0.5, channels=1)`:
  16-bit PCM test signal (e.g. a microphone input).
- `rms(samples) -> float`.
"""

import array
import math
import struct
import sys
import wave

WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def _chunks(data):
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        body_start = offset + 8
        yield chunk_id, body_start, size
        offset = body_start + size + (size & 1)


def read_wav(path):
    with open(path, "rb") as wav_file:
        data = wav_file.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError(f"{path}: not a RIFF/WAVE file")
    fmt = None
    pcm = None
    for chunk_id, start, size in _chunks(data):
        if chunk_id == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", data, start)
            if fmt[0] == WAVE_FORMAT_EXTENSIBLE and size >= 40:
                # The real format tag is the first two bytes of the sub-format GUID.
                (sub_format,) = struct.unpack_from("<H", data, start + 24)
                fmt = (sub_format,) + fmt[1:]
        elif chunk_id == b"data":
            if size == 0 or start + size > len(data):
                size = len(data) - start
            pcm = data[start:start + size]
            break
    if fmt is None or pcm is None:
        raise ValueError(f"{path}: missing fmt or data chunk")
    format_tag, channels, rate, _, block_align, bits = fmt
    pcm = pcm[: len(pcm) - len(pcm) % block_align]
    values = _decode(pcm, format_tag, bits, path)
    if channels == 1:
        return values, rate
    mono = [
        sum(values[index:index + channels]) / channels
        for index in range(0, len(values), channels)
    ]
    return mono, rate


def _decode(pcm, format_tag, bits, path):
    if format_tag == WAVE_FORMAT_IEEE_FLOAT:
        samples = array.array("f" if bits == 32 else "d", pcm)
        return _native(samples).tolist()
    if format_tag != WAVE_FORMAT_PCM:
        raise ValueError(f"{path}: unsupported WAV format tag {format_tag:#x}")
    if bits == 8:  # unsigned, centred on 128
        return [(byte - 128) / 128.0 for byte in pcm]
    if bits == 16:
        return [value / 32768.0 for value in _native(array.array("h", pcm))]
    if bits == 24:
        return [
            int.from_bytes(pcm[index:index + 3], "little", signed=True) / 8388608.0
            for index in range(0, len(pcm), 3)
        ]
    if bits == 32:
        return [value / 2147483648.0 for value in _native(array.array("i", pcm))]
    raise ValueError(f"{path}: unsupported sample width {bits}")


def _native(samples):
    # WAV is little-endian; array uses the machine order.
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def rms(samples):
    if not samples:
        return 0.0
    return math.sqrt(sum(value * value for value in samples) / len(samples))


def _goertzel_power(samples, rate, freq):
    coefficient = 2.0 * math.cos(2.0 * math.pi * freq / rate)
    previous = before_previous = 0.0
    for value in samples:
        previous, before_previous = value + coefficient * previous - before_previous, previous
    return previous * previous + before_previous * before_previous - (
        coefficient * previous * before_previous
    )


def tone_power_ratio(samples, rate, freq):
    energy = sum(value * value for value in samples)
    if energy <= 0.0:
        return 0.0
    # A sine of amplitude A over N samples: |X(f)|^2 = (A N / 2)^2 and energy = A^2 N / 2,
    # so dividing by N/2 * energy normalises a pure tone to 1.
    return _goertzel_power(samples, rate, freq) / (len(samples) / 2.0 * energy)


def dominant_frequency(samples, rate, candidates):
    return max(candidates, key=lambda freq: _goertzel_power(samples, rate, freq))


def has_tone(wav_path, freq, min_ratio=0.5, skip_seconds=0.2):
    """True if, after `skip_seconds` of start-up, `freq` carries at least `min_ratio` of
    the energy and the signal is not silence."""
    samples, rate = read_wav(wav_path)
    samples = samples[int(skip_seconds * rate):]
    if rms(samples) < 1e-3:
        return False
    return tone_power_ratio(samples, rate, freq) >= min_ratio


def write_tone_wav(path, freq, seconds=1.0, rate=8000, amplitude=0.5, channels=1):
    count = int(seconds * rate)
    frames = array.array("h")
    for index in range(count):
        value = int(round(amplitude * 32767 * math.sin(2.0 * math.pi * freq * index / rate)))
        frames.extend([value] * channels)
    _native(frames)
    with wave.open(str(path), "wb") as wav_file:
        wav_file.setnchannels(channels)
        wav_file.setsampwidth(2)
        wav_file.setframerate(rate)
        wav_file.writeframes(frames.tobytes())
    return path
