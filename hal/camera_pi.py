"""The Raspberry Pi camera modules (board files: `[camera] kind = "picamera2"`), through
picamera2/libcamera: the only module that imports `picamera2`, and only when the camera opens.

On Raspberry Pi OS picamera2 comes from apt (`python3-picamera2`; tools/install/install.sh), not
from PyPI. Frames are asked for in YUV420 at the configured size and rate and handed on as I420;
the JPEG and H.264 encoders are PyAV's software ones (hal/camera_av.py) on every Pi: the Pi 5
has no hardware H.264 encoder, and the hardware encoders of the older Pis work on picamera2's own
pipeline, not on single frames (see docs/CAMERA.md for what this costs).

UNTESTED: written against the picamera2 manual (create_video_configuration, capture_array);
there is no Pi camera on the machines that run the tests.
"""

import time
from typing import Any

from hal.camera import Camera, CameraError, Frame


class PiCamera(Camera):
    kind = "picamera2"

    def __init__(self, device: str = "") -> None:
        super().__init__(device)
        self._camera: Any = None
        self._index = 0

    def open(self, width: int, height: int, fps: int) -> None:
        try:
            from picamera2 import Picamera2  # type: ignore[import-not-found,unused-ignore]
        except ImportError as exc:
            raise CameraError(f"picamera2 is missing ({exc}); on Raspberry Pi OS: "
                              "apt install python3-picamera2") from None
        super().open(width, height, fps)
        try:
            camera = Picamera2(int(self.source or "0"))
            config = camera.create_video_configuration(
                main={"size": (width, height), "format": "YUV420"},
                controls={"FrameRate": float(fps)}, buffer_count=2)
            camera.configure(config)
            camera.start()
        except Exception as exc:  # libcamera's errors are RuntimeError, IndexError...
            self.is_open = False
            raise CameraError(f"cannot open the Pi camera {self.source or '0'}: {exc}") from None
        self._camera = camera
        self._index = 0

    def read(self) -> "Frame | None":
        if self._camera is None:
            return None
        array = self._camera.capture_array("main")  # (height * 3 / 2, stride) bytes
        when = time.monotonic()
        rows, stride = array.shape[0], array.shape[1]
        if stride == self.width:
            data = array.tobytes()
        else:  # padded rows: Y rows are `width` wide, U and V rows half that, two per row
            y = array[: self.height, : self.width].tobytes()
            chroma = array[self.height: rows].reshape(-1, stride // 2)[:, : self.width // 2]
            data = y + chroma.tobytes()
        frame = Frame(data, self.width, self.height, when, self._index)
        self._index += 1
        return frame

    def close(self) -> None:
        super().close()
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            finally:
                self._camera = None
