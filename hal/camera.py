"""The `camera` role: frames in, a JPEG snapshot and an H.264 stream out.

One small interface, whatever captures the frames:

    camera = open_camera(spec)            a CameraSpec (hal.board) or a sim source; nothing is
                                          imported or opened yet (start-up budget, issue 14)
    camera.open(width, height, fps)       start capturing (the backend's library loads here)
    frame = camera.read()                 the next Frame; blocks for at most about one frame
                                          interval (None when the device gave nothing in time)
    camera.close()                        stop capturing; open() may be called again
    camera.jpeg_encoder(quality)          a JpegEncoder: encode(frame) -> JPEG bytes
    camera.h264_encoder(bitrate, level)   an H264Encoder: encode(frame, key) -> NAL units
                                          (constrained baseline, no B-frames, SPS/PPS before
                                          every key frame; `key=True` forces an IDR frame)

A Frame is one picture in I420 (planar YUV 4:2:0: Y, then U, then V, no padding) with the
monotonic time it was captured (`time`, seconds) and its number since open() (`index`).

Backends, each imported by its own module only and only when a camera of that kind is opened:
- "pattern" (hal/camera_pattern.py, no library): a moving test pattern with a frame counter and a
  clock drawn in large digits, so that tests can tell frames apart and measure delays;
- "file" (hal/camera_av.py, PyAV): an image or video file, looped;
- "v4l2" (hal/camera_av.py, PyAV/FFmpeg): a USB (UVC) camera such as /dev/video0;
- "picamera2" (hal/camera_pi.py): the Raspberry Pi camera modules through libcamera.
The encoders are PyAV's (libx264 and FFmpeg's MJPEG) for every backend.

Threads: read() is called from the runtime's capture thread, never on the event loop.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hal.board import CameraSpec

KINDS = ("picamera2", "v4l2", "pattern", "file")


class CameraError(RuntimeError):
    """The camera cannot be opened or read (missing device or library); says which and why."""


class Frame:
    """One captured picture: I420 `data` of `width` x `height`, captured at `time` (monotonic
    seconds), the `index`-th since the camera was opened."""

    __slots__ = ("data", "width", "height", "time", "index")

    def __init__(self, data: bytes, width: int, height: int, time: float, index: int) -> None:
        self.data = data
        self.width = width
        self.height = height
        self.time = time
        self.index = index

    def __repr__(self) -> str:
        return "<Frame #%d %dx%d at %.3f>" % (self.index, self.width, self.height, self.time)


def i420_size(width: int, height: int) -> int:
    return width * height * 3 // 2


class JpegEncoder:
    def encode(self, frame: Frame) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        """Free the codec."""


class H264Encoder:
    """Turns frames into H.264 NAL units (without start codes)."""

    def encode(self, frame: Frame, key: bool = False) -> "list[bytes]":
        raise NotImplementedError

    def close(self) -> None:
        """Free the codec."""


class Camera:
    """A camera of one kind; subclasses capture. The encoders default to PyAV's."""

    kind = ""

    def __init__(self, source: str = "") -> None:
        self.source = source
        self.width = 0
        self.height = 0
        self.fps = 0
        self.is_open = False

    def open(self, width: int, height: int, fps: int) -> None:
        self.width, self.height, self.fps = width, height, fps
        self.is_open = True

    def read(self) -> "Frame | None":
        raise NotImplementedError

    def close(self) -> None:
        self.is_open = False

    def jpeg_encoder(self, quality: int = 80) -> JpegEncoder:
        from hal import camera_av

        return camera_av.AvJpegEncoder(self.width, self.height, quality)

    def h264_encoder(self, bitrate: int = 600_000, level_idc: int = 0) -> H264Encoder:
        """`level_idc` (H.264 Table A-1, e.g. 31 for 3.1): the level the SPS must carry, as
        signalled in SDP; 0 lets the encoder choose."""
        from hal import camera_av

        return camera_av.AvH264Encoder(self.width, self.height, self.fps, bitrate, level_idc)

    def describe(self) -> str:
        return self.kind + (" " + self.source if self.source else "")


def sim_camera(argument: str) -> "Camera":
    """The camera of `--camera ARG` on a simulated board: `pattern` or a file path."""
    if argument == "pattern":
        from hal.camera_pattern import PatternCamera

        return PatternCamera()
    from hal.camera_av import FileCamera

    return FileCamera(argument)


def open_camera(spec: "CameraSpec") -> "Camera":
    """The camera a board file declares ([camera] kind, device). Opens nothing yet."""
    if spec.kind == "picamera2":
        from hal.camera_pi import PiCamera

        return PiCamera(spec.device)
    if spec.kind == "v4l2":
        from hal.camera_av import V4l2Camera

        return V4l2Camera(spec.device or "/dev/video0")
    return sim_camera("pattern" if spec.kind == "pattern" else spec.device)
