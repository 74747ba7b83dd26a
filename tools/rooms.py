"""Generate the impulse responses of the simulated rooms for pc-sim's `--echo-path` (issue 15).

    python tools/rooms.py DIR [--rate 16000]      writes DIR/box.wav, DIR/hallway.wav

Each response is generated, not recorded: a direct path (the loudspeaker a few centimetres
from the microphone in one housing), a handful of early reflections (the housing's walls, a
door frame), and a diffuse tail of seeded noise decaying exponentially so that it has fallen
by 60 dB at the room's length. Same seed, same file: tests may make them at test time.

Rooms (`ROOMS`): `box` (a small flush-mounted box, 50 ms) and `hallway` (an entrance hall,
150 ms). Samples are 16-bit mono; 32767 stands for a gain of 1.0.
"""

import argparse
import math
import pathlib
import random
import struct
import wave

RATE = 16000


class RoomSpec:
    def __init__(self, name: str, length_ms: int, direct_gain: float, direct_ms: float,
                 reflections: "list[tuple[float, float]]", tail_gain: float, seed: int) -> None:
        self.name = name
        self.length_ms = length_ms
        self.direct_gain = direct_gain
        self.direct_ms = direct_ms
        self.reflections = reflections  # (delay ms, gain)
        self.tail_gain = tail_gain  # RMS of the tail's first millisecond
        self.seed = seed


ROOMS = {
    "box": RoomSpec("box", 50, 0.5, 0.25, [(1.2, -0.25), (2.9, 0.15), (5.5, -0.1)], 0.08, 15),
    "hallway": RoomSpec("hallway", 150, 0.35, 0.25,
                        [(3.1, 0.2), (7.4, -0.15), (12.8, 0.12), (21.0, -0.08)], 0.06, 150),
}


def response(spec: RoomSpec, rate: int = RATE) -> "list[float]":
    """The response's samples as gains."""
    count = rate * spec.length_ms // 1000
    rng = random.Random(spec.seed)
    decay = math.log(1000.0) / (spec.length_ms / 1000.0)  # -60 dB at the end
    start = int(spec.direct_ms * rate / 1000)
    samples = [0.0] * count
    for i in range(start + 1, count):
        samples[i] = spec.tail_gain * rng.gauss(0.0, 1.0) * math.exp(-decay * (i - start) / rate)
    samples[start] += spec.direct_gain
    for delay_ms, gain in spec.reflections:
        index = start + int(delay_ms * rate / 1000)
        if index < count:
            samples[index] += gain
    return samples


def write(path: "pathlib.Path", samples: "list[float]", rate: int = RATE) -> None:
    pcm = struct.pack("<%dh" % len(samples),
                      *[max(-32768, min(32767, round(s * 32767))) for s in samples])
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)


def generate(directory: "str | pathlib.Path", rate: int = RATE) -> "dict[str, pathlib.Path]":
    """Write every room's response into `directory`; returns {name: path}."""
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, spec in ROOMS.items():
        path = out / f"{name}.wav"
        write(path, response(spec, rate), rate)
        paths[name] = path
    return paths


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory")
    parser.add_argument("--rate", type=int, default=RATE)
    args = parser.parse_args(argv)
    for name, path in generate(args.directory, args.rate).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
