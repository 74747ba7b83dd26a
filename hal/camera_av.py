"""PyAV (FFmpeg) for the camera role: the only module that imports `av`, and only when a camera
is opened or an encoder made (start-up budget, issue 14).

- `AvJpegEncoder`: FFmpeg's MJPEG encoder (snapshots, the MJPEG live view).
- `AvH264Encoder`: libx264, constrained baseline, no B-frames, `zerolatency` (no frame delay),
  SPS/PPS repeated before every key frame, key frames (IDR) when asked (`key=True`).
  Where the PyAV wheel has no libx264, FFmpeg's other H.264 encoders are tried in turn
  (`h264_v4l2m2m`: the Pi 4's hardware encoder; `libopenh264`).
- `H264Decoder`: FFmpeg's H.264 decoder, for received video (counts decodable frames).
- `FileCamera` (`--camera FILE`: an image or a video, looped) and `V4l2Camera` (USB/UVC cameras,
  FFmpeg's video4linux2 input), frames scaled to the configured size.

PyAV ships binary wheels with FFmpeg (and libx264) for x86_64 and aarch64 Linux (64-bit Pi OS);
on 32-bit Pi OS (armv7l) there is no wheel: install Debian's `python3-av` (docs/CAMERA.md).
"""

import fractions
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from hal.camera import Camera, CameraError, Frame, H264Encoder, JpegEncoder

if TYPE_CHECKING:
    from collections.abc import Iterator

log = logging.getLogger("doorline.camera")

H264_ENCODERS = ("libx264", "libopenh264", "h264_v4l2m2m")
# DOORLINE_H264_ENCODER=h264_v4l2m2m tries that encoder first (the Pi 3/4 and Zero 2 W hardware
# encoder through V4L2 M2M; untested here, docs/CAMERA.md), the others after it.
ENCODER_OVERRIDE = "DOORLINE_H264_ENCODER"
# The encoder's own key frames: rare. Who uses the stream asks for key frames (`key=True`):
# runtime/video.py every 2 s until the peer asks, then when the peer asks (issue 16).
ENCODER_KEY_INTERVAL_S = 600
RTP_CLOCK = 90000


def _av() -> "Any":
    try:
        import av
    except ImportError as exc:
        raise CameraError(f"PyAV is not installed ({exc}): pip install av, or on 32-bit Pi OS "
                          "apt install python3-av") from None
    return av


def to_av_frame(frame: Frame) -> "Any":
    """An av.VideoFrame (yuv420p) holding `frame`'s picture."""
    av = _av()
    picture = av.VideoFrame(frame.width, frame.height, "yuv420p")
    offset = 0
    for i, plane in enumerate(picture.planes):
        width = frame.width if i == 0 else frame.width // 2
        rows = frame.height if i == 0 else frame.height // 2
        size = width * rows
        data = frame.data[offset: offset + size]
        offset += size
        if plane.line_size == width:
            plane.update(data)
        else:  # the codec's rows are padded: copy row by row
            padded = bytearray(plane.line_size * rows)
            for row in range(rows):
                padded[row * plane.line_size: row * plane.line_size + width] = \
                    data[row * width: (row + 1) * width]
            plane.update(bytes(padded))
    return picture


def from_av_frame(picture: "Any", width: int, height: int, when: float, index: int) -> Frame:
    """A Frame of `width` x `height` from any decoded av.VideoFrame."""
    if picture.width != width or picture.height != height or picture.format.name != "yuv420p":
        picture = picture.reformat(width=width, height=height, format="yuv420p")
    parts = []
    for i, plane in enumerate(picture.planes):
        w = width if i == 0 else width // 2
        rows = height if i == 0 else height // 2
        data = bytes(plane)
        if plane.line_size == w:
            parts.append(data[: w * rows])
        else:
            parts.append(b"".join(data[r * plane.line_size: r * plane.line_size + w]
                                  for r in range(rows)))
    return Frame(b"".join(parts), width, height, when, index)


class AvJpegEncoder(JpegEncoder):
    def __init__(self, width: int, height: int, quality: int = 80) -> None:
        av = _av()
        self._codec = av.CodecContext.create("mjpeg", "w")
        self._codec.width, self._codec.height = width, height
        self._codec.pix_fmt = "yuvj420p"
        self._codec.time_base = fractions.Fraction(1, 25)
        # FFmpeg's qscale 2 (best) .. 31 (worst) from a 1..100 quality
        qscale = max(2, min(31, round(31 - (quality / 100) * 29)))
        # as codec options (not attributes): the same on Debian's older python3-av
        self._codec.options = {"qmin": str(qscale), "qmax": str(qscale)}
        self._codec.open()
        self._count = 0

    def encode(self, frame: Frame) -> bytes:
        picture = to_av_frame(frame).reformat(format="yuvj420p")
        picture.pts = self._count  # the codec wants rising timestamps, whatever the frame
        self._count += 1
        return b"".join(bytes(packet) for packet in self._codec.encode(picture))

    def close(self) -> None:
        self._codec = None


def split_annexb(data: bytes) -> "list[bytes]":
    """NAL units of an Annex B byte stream (start codes 00 00 01 / 00 00 00 01 removed)."""
    units = []
    start = -1
    i = 0
    n = len(data)
    while i + 3 <= n:
        if data[i] == 0 and data[i + 1] == 0 and data[i + 2] == 1:
            if start >= 0:
                end = i
                while end > start and data[end - 1] == 0:  # the 4-byte code's zero, padding
                    end -= 1
                units.append(data[start:end])
            start = i + 3
            i += 3
        else:
            i += 1
    if start >= 0 and start < n:
        end = n
        while end > start and data[end - 1] == 0:  # trailing_zero_8bits (H.264 B.1)
            end -= 1
        units.append(data[start:end])
    return [u for u in units if u]


class AvH264Encoder(H264Encoder):
    def __init__(self, width: int, height: int, fps: int, bitrate: int = 600_000,
                 level_idc: int = 0) -> None:
        av = _av()
        errors = []
        first = os.environ.get(ENCODER_OVERRIDE, "")
        order = ((first,) if first else ()) + tuple(n for n in H264_ENCODERS if n != first)
        for name in order:
            if name not in av.codecs_available:
                continue
            try:
                self._codec = self._create(av, name, width, height, fps, bitrate, level_idc)
                self.name = name
                break
            except Exception as exc:  # av.FFmpegError and friends: try the next encoder
                errors.append(f"{name}: {exc}")
        else:
            raise CameraError("no H.264 encoder in this FFmpeg (%s)" % ("; ".join(errors)
                                                                     or "none built in"))
        if errors or first:
            log.info("H.264 encoder: %s%s", self.name,
                     " (%s)" % "; ".join(errors) if errors else "")
        self._key_type = av.video.frame.PictureType.I
        self._start: float | None = None
        self._parameter_sets: dict[int, bytes] = {}  # NAL type 7 (SPS), 8 (PPS) → the last

    @staticmethod
    def _create(av: "Any", name: str, width: int, height: int, fps: int, bitrate: int,
                level_idc: int) -> "Any":
        codec = av.CodecContext.create(name, "w")
        codec.width, codec.height = width, height
        codec.pix_fmt = "yuv420p"
        codec.framerate = fractions.Fraction(fps, 1)
        codec.time_base = fractions.Fraction(1, RTP_CLOCK)
        codec.bit_rate = bitrate
        codec.gop_size = fps * ENCODER_KEY_INTERVAL_S
        codec.max_b_frames = 0
        if name == "libx264":
            params = "repeat-headers=1:keyint=%d:bframes=0:sliced-threads=0:threads=1" % (
                fps * ENCODER_KEY_INTERVAL_S)
            if level_idc:
                params += ":level=%d.%d" % (level_idc // 10, level_idc % 10)
            codec.options = {"preset": "ultrafast", "tune": "zerolatency",
                             "profile": "baseline", "forced-idr": "1", "x264-params": params}
        codec.open()
        return codec

    def encode(self, frame: Frame, key: bool = False) -> "list[bytes]":
        picture = to_av_frame(frame)
        if self._start is None:
            self._start = frame.time
            key = True
        picture.pts = int((frame.time - self._start) * RTP_CLOCK)
        if key:
            picture.pict_type = self._key_type
        units: list[bytes] = []
        for packet in self._codec.encode(picture):
            units.extend(split_annexb(bytes(packet)))
        return self._with_parameter_sets(units)

    def _with_parameter_sets(self, units: "list[bytes]") -> "list[bytes]":
        """SPS and PPS before every IDR frame, whatever the encoder does (libx264 repeats
        them; hardware encoders may send them once): the last ones seen are put back."""
        types = [unit[0] & 0x1F for unit in units]
        for unit, kind in zip(units, types, strict=True):
            if kind in (7, 8):
                self._parameter_sets[kind] = unit
        if 5 in types and not (7 in types and 8 in types) and len(self._parameter_sets) == 2:
            first = types.index(5)
            units = units[:first] + [self._parameter_sets[7], self._parameter_sets[8]] + \
                units[first:]
        return units

    def close(self) -> None:
        self._codec = None


class H264Decoder:
    """Decodes received NAL units; `decode(access_unit)` gives the decoded pictures."""

    def __init__(self) -> None:
        av = _av()
        self._codec = av.CodecContext.create("h264", "r")
        self._packet = av.Packet
        self.frames = 0
        self.errors = 0
        self.last: Any = None
        self.size: tuple[int, int] | None = None

    def decode(self, units: "list[bytes]") -> int:
        """Feed one access unit (its NAL units); returns the number of pictures decoded."""
        data = b"".join(b"\x00\x00\x00\x01" + u for u in units)
        try:
            pictures = self._codec.decode(self._packet(data))
        except Exception:  # av.InvalidDataError: a broken or incomplete frame
            self.errors += 1
            return 0
        for picture in pictures:
            self.frames += 1
            self.last = picture
            self.size = (picture.width, picture.height)
        return len(pictures)


class _AvCapture(Camera):
    """Frames from an FFmpeg input (a file or a V4L2 device)."""

    format: str | None = None
    loop = False

    def __init__(self, source: str) -> None:
        super().__init__(source)
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._index = 0
        self._next_due = 0.0
        self._last: Any = None  # the last picture: a still image repeats it

    def _options(self) -> "dict[str, str]":
        return {}

    def open(self, width: int, height: int, fps: int) -> None:
        av = _av()
        super().open(width, height, fps)
        try:
            self._container = av.open(self.source, format=self.format, options=self._options())
        except (OSError, getattr(av, "FFmpegError", OSError)) as exc:
            self.is_open = False
            raise CameraError(f"cannot open camera {self.source}: {exc}") from None
        self._frames = self._container.decode(video=0)
        self._index = 0
        self._next_due = time.monotonic()

    def _next_picture(self) -> "Any":
        assert self._frames is not None
        try:
            self._last = next(self._frames)
            return self._last
        except StopIteration:
            if not self.loop:
                return None
        try:
            self._container.seek(0)
            self._frames = self._container.decode(video=0)
            self._last = next(self._frames)
        except Exception:  # a still image cannot seek (or ends at once): show it again
            pass
        return self._last

    def read(self) -> "Frame | None":
        if not self.is_open:
            return None
        if self.loop:  # a file: pace it like a camera
            now = time.monotonic()
            if self._next_due > now:
                time.sleep(self._next_due - now)
            self._next_due = max(self._next_due, now) + 1 / self.fps
        try:
            picture = self._next_picture()
        except Exception as exc:  # av errors: the device went away
            log.warning("camera %s: %s", self.source, exc)
            return None
        if picture is None:
            return None
        frame = from_av_frame(picture, self.width, self.height, time.monotonic(), self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        super().close()
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None


class FileCamera(_AvCapture):
    """`--camera FILE` on a simulated board: an image or video file, looped at the frame rate."""

    kind = "file"
    loop = True


class V4l2Camera(_AvCapture):
    """A USB (UVC) camera through FFmpeg's video4linux2 input. Untested here (no camera)."""

    kind = "v4l2"
    format = "video4linux2"

    def _options(self) -> "dict[str, str]":
        return {"video_size": f"{self.width}x{self.height}", "framerate": str(self.fps)}

