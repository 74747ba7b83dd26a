"""The simulated camera `--camera pattern`: a moving test pattern, no library needed.

Each frame shows, on a grey gradient, a white bar that moves 1/64 of the width per frame, the
frame counter (six digits, top left) and the wall clock (HHMMSS and hundredths, below it) in large
seven-segment digits, so that a test (or a person) can tell frames apart, see the picture move and
read the delay from capture to display. The digit boxes are fixed: `DIGIT_BOXES(width, height)`
says where they are, for tests that compare one region between two pictures.

Frames come at the configured rate: read() sleeps until the next frame is due.
"""

import time
from typing import TYPE_CHECKING

from hal.camera import Camera, Frame

if TYPE_CHECKING:
    from collections.abc import Callable

# segments a..g of a seven-segment digit, per digit
SEGMENTS = ("abcdef", "bc", "abdeg", "abcdg", "bcfg", "acdfg", "acdefg", "abc", "abcdefg",
            "abcdfg")
COUNTER_DIGITS = 6
BAR_STEPS = 64


def digit_size(height: int) -> "tuple[int, int, int]":
    """(cell width, cell height, stroke) of one digit for a picture `height` lines high."""
    h = max(height // 6, 10)
    return h * 3 // 5, h, max(h // 8, 1)


def counter_box(width: int, height: int) -> "tuple[int, int, int, int]":
    """(x, y, w, h) of the frame counter's digits."""
    cell_w, cell_h, stroke = digit_size(height)
    margin = cell_h // 4
    return margin, margin, COUNTER_DIGITS * (cell_w + stroke * 2), cell_h


class PatternCamera(Camera):
    kind = "pattern"

    def __init__(self, clock: "Callable[[], float]" = time.monotonic,
                 sleep: "Callable[[float], None]" = time.sleep,
                 wall: "Callable[[], float]" = time.time) -> None:
        super().__init__("")
        self._clock = clock
        self._sleep = sleep
        self._wall = wall
        self._index = 0
        self._start = 0.0
        self._background = b""
        self._chroma = b""

    def open(self, width: int, height: int, fps: int) -> None:
        super().open(width, height, fps)
        self._index = 0
        self._start = self._clock()
        row = bytes(16 + (x * 200) // width for x in range(width))
        self._background = row * height
        cw, ch = width // 2, height // 2
        u_row = bytes(64 + (x * 128) // cw for x in range(cw))
        self._chroma = u_row * ch + bytes([160]) * (cw * ch)
        self._glyphs = [self._glyph(value) for value in range(10)]

    def _glyph(self, value: int) -> "list[bytes]":
        """The rows of one digit cell (the digit light on dark, with the gap to the next)."""
        w, h, s = digit_size(self.height)
        pitch = w + 2 * s
        cell = bytearray(b"\x10" * (pitch * h))
        half = h // 2
        rects = {"a": (0, 0, w, s), "b": (w - s, 0, s, half), "c": (w - s, half, s, h - half),
                 "d": (0, h - s, w, s), "e": (0, half, s, h - half), "f": (0, 0, s, half),
                 "g": (0, half - s // 2, w, s)}
        for segment in SEGMENTS[value]:
            x, top, rw, rh = rects[segment]
            for row in range(top, top + rh):
                cell[row * pitch + x: row * pitch + x + rw] = b"\xeb" * rw
        return [bytes(cell[row * pitch: (row + 1) * pitch]) for row in range(h)]

    def read(self) -> "Frame | None":
        if not self.is_open:
            return None
        due = self._start + self._index / self.fps
        now = self._clock()
        if due > now:
            self._sleep(due - now)
            now = due
        frame = Frame(self.render(self._index, self._wall()),
                      self.width, self.height, now, self._index)
        self._index += 1
        return frame

    def render(self, index: int, wall: float) -> bytes:
        """The I420 picture of frame `index` with the clock at `wall` (seconds since the epoch,
        shown as local time)."""
        width, height = self.width, self.height
        y = bytearray(self._background)
        bar_w = max(width // BAR_STEPS * 2, 2)
        x0 = (index % BAR_STEPS) * width // BAR_STEPS
        x1 = min(x0 + bar_w, width)
        white = b"\xeb" * (x1 - x0)
        for row in range(height * 3 // 4, height):
            y[row * width + x0: row * width + x1] = white
        cell_w, cell_h, stroke = digit_size(height)
        x, top, _, _ = counter_box(width, height)
        self._box(y, x - stroke, top - stroke,
                  COUNTER_DIGITS * (cell_w + 2 * stroke) + stroke, cell_h + 2 * stroke, 0x10)
        self._number(y, x, top, "%06d" % (index % 10 ** COUNTER_DIGITS), cell_w, cell_h, stroke)
        local = time.localtime(wall)
        clock = "%02d%02d%02d%02d" % (local.tm_hour, local.tm_min, local.tm_sec,
                                      int(wall * 100) % 100)
        self._number(y, x, top + cell_h + cell_h // 2, clock, cell_w, cell_h, stroke)
        return bytes(y) + self._chroma

    def _number(self, y: bytearray, x: int, top: int, digits: str, cell_w: int, cell_h: int,
                stroke: int) -> None:
        """One line of digits: a row at a time (a slice per row, not per segment: the pattern
        is made in Python and holds the GIL meanwhile)."""
        width = self.width
        glyphs = [self._glyphs[int(char)] for char in digits]
        room = max(0, width - x)
        for row in range(min(cell_h, self.height - top)):
            line = b"".join(glyph[row] for glyph in glyphs)[:room]
            start = (top + row) * width + x
            y[start: start + len(line)] = line

    def _box(self, y: bytearray, x: int, top: int, w: int, h: int, luma: int) -> None:
        width, height = self.width, self.height
        x, top = max(x, 0), max(top, 0)
        w, h = min(w, width - x), min(h, height - top)
        if w <= 0 or h <= 0:
            return
        fill = bytes([luma]) * w
        for row in range(top, top + h):
            y[row * width + x: row * width + x + w] = fill
