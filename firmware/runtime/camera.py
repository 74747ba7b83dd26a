"""The camera at run time: one capture thread while anyone needs frames, snapshots (fresh, and
one per ring into the history on disk), the shared JPEG of the newest frame for the MJPEG
streams. Made by the station only when the board has a camera and `[camera] enabled`; the
camera (and PyAV) opens at the first use, never at start (issue 14), and closes again
`IDLE_CLOSE_S` after the last user left: no frame is captured or encoded while nobody looks,
calls or snaps.

Users hold the camera with `acquire()` / `release()` (thread-safe); `wait_frame(after, timeout)`
blocks (on a worker thread) until a frame newer than `after` exists. The newest frame is the
only one kept (older ones are dropped, never queued). JPEG encoding happens at most once per
frame, whoever asks (`jpeg_of`).

For the event and MQTT side (issue 17): `latest_snapshot()` gives the newest ring snapshot's
{"id", "time", "event", "path"} or None.
"""

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from firmware.runtime.snapshots import SnapshotStore
from hal.camera import CameraError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from firmware.settings import CameraConfig
    from hal.camera import Camera, Frame, JpegEncoder

log = logging.getLogger("doorline.camera")

IDLE_CLOSE_S = 3.0  # keep capturing this long after the last user (page reloads, snapshots)
FIRST_FRAME_TIMEOUT_S = 5.0  # a camera that gives no frame this long after opening is broken
JPEG_QUALITY = 80
MAX_RING_SNAPSHOTS_PENDING = 4  # rings faster than the disk: the extra ones get no picture


class CameraService:
    def __init__(self, camera: "Camera", cfg: "CameraConfig", state_dir: str) -> None:
        self.camera = camera
        self.cfg = cfg
        self.store = SnapshotStore(os.path.join(state_dir, "snapshots"), cfg.history)
        self._cond = threading.Condition()
        self._users = 0
        self._thread: threading.Thread | None = None
        self._latest: Frame | None = None
        self._idle_since: float | None = None
        self._error: str | None = None
        self._jpeg_lock = threading.Lock()
        self._jpeg: JpegEncoder | None = None
        self._jpeg_cache: tuple[int, int, bytes] | None = None  # (generation, index, JPEG)
        self._generation = 0  # counts camera openings: frame indexes restart at each
        self._workers = concurrent.futures.ThreadPoolExecutor(2, "doorline-camera")
        self._pending_rings = 0
        self.frames_captured = 0
        self.jpegs_encoded = 0

    # -- users and the capture thread ---------------------------------------------------------
    def acquire(self) -> None:
        with self._cond:
            self._users += 1
            self._idle_since = None
            if self._thread is None:  # (a capture thread about to end has set it to None)
                self._error = None
                self._thread = threading.Thread(target=self._capture, name="doorline-capture",
                                                daemon=True)
                self._thread.start()

    def release(self) -> None:
        with self._cond:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._idle_since = time.monotonic()
            self._cond.notify_all()

    @property
    def capturing(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _capture(self) -> None:
        """The capture thread: runs the camera while it has users; someone who came while it
        was closing gets it opened again (the decision to end is taken under the lock, and
        `_thread` is cleared there, so acquire() starts a new thread after it)."""
        while True:
            self._run_camera()
            with self._cond:
                if self._error is not None or self._users == 0:
                    self._thread = None
                    self._cond.notify_all()
                    return

    def _run_camera(self) -> None:
        cfg = self.cfg
        try:
            self.camera.open(cfg.width, cfg.height, cfg.fps)
        except (CameraError, OSError) as exc:
            log.error("camera %s: %s", self.camera.describe(), exc)
            with self._cond:
                self._error = str(exc)
                self._cond.notify_all()
            return
        log.info("camera %s: capturing %dx%d at %d fps", self.camera.describe(), cfg.width,
                 cfg.height, cfg.fps)
        with self._cond:
            self._generation += 1
            self._latest = None
        last_frame = time.monotonic()
        try:
            while True:
                with self._cond:
                    if self._users == 0 and self._idle_since is not None and \
                            time.monotonic() - self._idle_since >= IDLE_CLOSE_S:
                        break
                try:
                    frame = self.camera.read()
                except Exception as exc:  # a backend's failure must not kill the station
                    log.error("camera %s: %s", self.camera.describe(), exc)
                    with self._cond:
                        self._error = str(exc)
                    break
                if frame is None:  # nothing this time: wait a frame; give up after a while
                    if time.monotonic() - last_frame > FIRST_FRAME_TIMEOUT_S:
                        log.error("camera %s: no picture for %.0f s; stopping it",
                                  self.camera.describe(), FIRST_FRAME_TIMEOUT_S)
                        with self._cond:
                            self._error = "the camera gives no pictures"
                        break
                    time.sleep(1.0 / max(cfg.fps, 1))
                    continue
                last_frame = frame.time
                with self._cond:
                    self._latest = frame
                    self.frames_captured += 1
                    self._cond.notify_all()
        finally:
            self.camera.close()
            with self._cond:
                self._latest = None
                self._cond.notify_all()
            log.info("camera %s: stopped (nobody uses it)", self.camera.describe())

    def wait_frame(self, after: float, timeout: "float | None" = None) -> "Frame | None":
        """The newest frame captured after monotonic time `after` (blocks up to `timeout`,
        default FIRST_FRAME_TIMEOUT_S; the caller holds the camera). None on timeout or when
        the camera failed."""
        deadline = time.monotonic() + (FIRST_FRAME_TIMEOUT_S if timeout is None else timeout)
        with self._cond:
            while True:
                frame = self._latest
                if frame is not None and frame.time > after:
                    return frame
                if self._error is not None:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    @property
    def error(self) -> "str | None":
        return self._error

    # -- JPEG -----------------------------------------------------------------------------------
    def jpeg_of(self, frame: "Frame") -> bytes:
        """`frame` as JPEG, encoded once whoever asks (blocking: a worker thread's job)."""
        with self._jpeg_lock:
            key = (self._generation, frame.index)
            if self._jpeg_cache is not None and self._jpeg_cache[:2] == key:
                return self._jpeg_cache[2]
            if self._jpeg is None:
                self._jpeg = self.camera.jpeg_encoder(JPEG_QUALITY)
            data = self._jpeg.encode(frame)
            self.jpegs_encoded += 1
            self._jpeg_cache = (key[0], key[1], data)
            return data

    def snapshot_blocking(self, after: "float | None" = None) -> "bytes | None":
        """A JPEG of a frame captured after `after` (default: now)."""
        start = time.monotonic() if after is None else after
        self.acquire()
        try:
            frame = self.wait_frame(start)
            return None if frame is None else self.jpeg_of(frame)
        finally:
            self.release()

    async def snapshot(self) -> "bytes | None":
        """A fresh JPEG (None when the camera gives no picture)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._workers, self.snapshot_blocking,
                                          time.monotonic())

    async def mjpeg(self, max_frames: "int | None" = None) -> "AsyncIterator[bytes]":
        """JPEGs of successive frames at the camera's rate while the consumer reads."""
        loop = asyncio.get_running_loop()
        self.acquire()
        try:
            after = time.monotonic() - 1.0 / max(self.cfg.fps, 1)
            sent = 0
            while max_frames is None or sent < max_frames:
                frame = await loop.run_in_executor(self._workers, self.wait_frame, after)
                if frame is None:
                    return
                after = frame.time
                yield await loop.run_in_executor(self._workers, self.jpeg_of, frame)
                sent += 1
        finally:
            self.release()

    # -- ring snapshots -------------------------------------------------------------------------
    def ring_snapshot(self, event: "dict[str, Any]") -> "str | None":
        """Take a picture for `event` (a button press) into the history; returns its id at once
        (the JPEG reaches the disk shortly after) or None when none will be taken."""
        with self._cond:
            if not self.cfg.snapshot_on_ring or self.cfg.history == 0 or \
                    self._pending_rings >= MAX_RING_SNAPSHOTS_PENDING:
                return None
            self._pending_rings += 1
        wall, pressed = time.time(), time.monotonic()
        ident = self.store.new_id(wall)
        self._workers.submit(self._ring_job, ident, wall, pressed, dict(event))
        return ident

    def _ring_job(self, ident: str, wall: float, pressed: float, event: "dict[str, Any]"
                  ) -> None:
        try:
            # a frame from the moment of the press: the one just before it, if it is fresh
            with self._cond:
                latest = self._latest
            frame_after = pressed - 1.0 / max(self.cfg.fps, 1) if latest is not None else pressed
            jpeg = self.snapshot_blocking(frame_after)
            if jpeg is None:
                log.warning("snapshot %s: the camera gave no picture (%s)", ident,
                            self._error or "timeout")
                self.store.add_failed(ident)
                return
            self.store.add(ident, jpeg, wall, event)
        except Exception:
            log.exception("snapshot %s failed", ident)
            self.store.add_failed(ident)
        finally:
            with self._cond:
                self._pending_rings -= 1

    def latest_snapshot(self) -> "dict[str, Any] | None":
        return self.store.latest()

    def update_config(self, cfg: "CameraConfig") -> None:
        """New settings: size, rate and history apply from the next opening of the camera."""
        self.cfg = cfg
        self.store.set_limit(cfg.history)
        with self._jpeg_lock:
            if self._jpeg is not None:
                self._jpeg.close()
            self._jpeg = None
            self._jpeg_cache = None

    def status(self) -> "dict[str, Any]":
        return {"camera": self.camera.describe(), "capturing": self.capturing,
                "users": self._users, "error": self._error,
                "width": self.cfg.width, "height": self.cfg.height, "fps": self.cfg.fps}

    def close(self) -> None:
        with self._cond:
            self._users = 0
            self._idle_since = 0.0  # long ago: the capture thread stops at its next frame
            self._cond.notify_all()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=2.0)
        self._workers.shutdown(wait=False, cancel_futures=True)
