"""The camera's page API (issue 16; docs/API.md "Camera"):

- `GET /api/camera`: what the page shows: the camera, its settings, `phone_token` and the URL
  for phones; `POST /api/camera/token {"enabled": true|false}` issues a new random token (or
  turns the phone URL off) and saves it in the configuration.
- `GET /api/camera/snapshot`: a fresh JPEG; `GET /api/camera/stream`: MJPEG
  (multipart/x-mixed-replace) at the camera's rate, for STREAM_MAX_S seconds per request (the
  page reconnects; every request has a bounded life, firmware/web/limits.py); `?frames=N`
  ends it after N pictures.
- `GET /api/snapshots`, `GET /api/snapshots/<id>`: the ring history.
- `GET /camera.jpg?token=...`: the one image URL without login, for phones; off while the token is
  empty, read-only, rate-limited (PHONE_RATE per second, PHONE_BURST at once, for all clients
  together), wrong tokens count as failed logins (the same back-off).
Everything under /api/ needs the admin login (firmware/web/app.py's guard).
"""

import time
from typing import TYPE_CHECKING

from microdot import Request, Response

from firmware.compat import compare_digest
from firmware.web.sessions import token_urlsafe

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from typing import Any

    from microdot import Microdot

    from firmware.runtime.camera import CameraService
    from firmware.runtime.station import Station
    from firmware.web.app import _Web

STREAM_MAX_S = 8.0  # below the request timeout (10 s): the stream ends cleanly, the page reloads
BOUNDARY = "doorlineframe"
PHONE_RATE, PHONE_BURST = 2.0, 4  # /camera.jpg: pictures per second, and at once
TOKEN_BYTES = 18  # 24 URL-safe characters


def _error(status: int, message: str, headers: "dict[str, str] | None" = None) -> "Response":
    return Response({"error": message}, status, headers)  # type: ignore[arg-type]  # JSON


def _jpeg(data: bytes) -> "Response":
    return Response(data, 200, {"Content-Type": "image/jpeg", "Cache-Control": "no-store"})


class TokenBucket:
    def __init__(self, rate: float, burst: int, clock: "Callable[[], float]") -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self.tokens = float(burst)
        self.at = clock()

    def take(self) -> float:
        """0 when allowed (a token is used), else the seconds until the next token."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


def add_routes(app: "Microdot", web: "_Web", station: "Station",
               clock: "Callable[[], float]" = time.monotonic) -> None:
    phone_bucket = TokenBucket(PHONE_RATE, PHONE_BURST, clock)

    def service() -> "CameraService | None":
        return station.camera_service()

    def no_camera() -> "Response":
        return _error(404, "this station has no camera (or [camera] enabled is false)")

    def camera_info(camera: "CameraService | None") -> "dict[str, Any]":
        cfg = station.config.camera
        token = cfg.phone_token
        return {"present": camera is not None, "enabled": cfg.enabled,
                "status": camera.status() if camera is not None else None,
                "width": cfg.width, "height": cfg.height, "fps": cfg.fps,
                "snapshot_on_ring": cfg.snapshot_on_ring, "history": cfg.history,
                "video": cfg.video, "phone_token": token,
                "phone_url": "/camera.jpg?token=" + token if token else ""}

    @app.get("/api/camera")
    async def api_camera(request: "Request") -> "Any":
        return camera_info(service())

    @app.post("/api/camera/token")
    async def api_camera_token(request: "Request") -> "Any":
        from firmware.web.app import ApiError, _json_body

        try:
            body = _json_body(request, required=False)
        except ApiError as exc:
            return _error(exc.status, exc.message)
        enabled = body.get("enabled", True)
        if not isinstance(enabled, bool):
            return _error(400, "enabled must be true or false")
        token = token_urlsafe(TOKEN_BYTES) if enabled else ""
        result = await web.put_config({"camera": {"phone_token": token}})
        if isinstance(result, Response) and result.status_code != 200:
            return result  # the error, as PUT /api/config gives it
        station.log_event("camera_token", enabled=enabled)
        return camera_info(service())

    @app.get("/api/camera/snapshot")
    async def api_camera_snapshot(request: "Request") -> "Any":
        camera = service()
        if camera is None:
            return no_camera()
        data = await camera.snapshot()
        if data is None:
            return _error(503, "the camera gave no picture: %s" % (camera.error or "timeout"))
        return _jpeg(data)

    @app.get("/api/camera/stream")
    async def api_camera_stream(request: "Request") -> "Any":
        camera = service()
        if camera is None:
            return no_camera()

        frames = request.args.get("frames")
        if frames is not None and not (frames.isascii() and frames.isdigit() and
                                       1 <= int(frames) <= 1000):
            return _error(400, "frames must be a whole number from 1 to 1000")

        async def parts() -> "AsyncIterator[bytes]":
            end = clock() + STREAM_MAX_S
            async for data in camera.mjpeg(int(frames) if frames else None):
                yield (b"--" + BOUNDARY.encode() + b"\r\nContent-Type: image/jpeg\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(data)) + data + b"\r\n"
                if clock() >= end:
                    break

        return Response(parts(), 200, {  # type: ignore[arg-type]  # microdot streams iterators
            "Content-Type": "multipart/x-mixed-replace; boundary=" + BOUNDARY,
            "Cache-Control": "no-store"})

    @app.get("/api/snapshots")
    async def api_snapshots(request: "Request") -> "Any":
        camera = service()
        return {"snapshots": camera.store.list() if camera is not None else []}

    @app.get("/api/snapshots/<ident>")
    async def api_snapshot(request: "Request", ident: str) -> "Any":
        camera = service()
        if camera is None:
            return no_camera()
        data = camera.store.read(ident)
        if data is None:
            return _error(404, "no snapshot %r" % ident[:40])
        return Response(data, 200, {"Content-Type": "image/jpeg",
                                    "Cache-Control": "private, max-age=86400"})

    @app.get("/camera.jpg")
    async def phone_picture(request: "Request") -> "Any":
        from firmware.web.app import _client

        expected = station.config.camera.phone_token
        camera = service()
        if not expected or camera is None:
            return _error(404, "not found")
        client = _client(request)
        wait = web.throttle.retry_after(client)
        if wait > 0:
            return _error(429, "too many wrong tokens; try again later",
                          {"Retry-After": str(int(wait) + 1)})
        given = request.args.get("token") or ""
        if not compare_digest(given.encode(), expected.encode()):
            web.throttle.failed(client)
            station.log_event("auth_failed", client=client, via="camera_token",
                              path=request.path)
            return _error(403, "wrong token")
        wait = phone_bucket.take()
        if wait > 0:
            return _error(429, "too many requests", {"Retry-After": str(int(wait) + 1)})
        data = await camera.snapshot()
        if data is None:
            return _error(503, "the camera gave no picture")
        return _jpeg(data)
