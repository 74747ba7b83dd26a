"""The camera API over a real Station with the simulated board's test pattern (issue 16):
snapshots of the configured size that change, the MJPEG stream's rate, the ring history
(bounded, carried by `button` events, surviving a restart), the phone URL's token and rate
limit, and the admin login on everything else."""

import asyncio
import json
import time

import pytest
from microdot.test_client import TestClient

import hal
from firmware import config as configuration
from firmware.runtime.station import Station
from firmware.web.app import create_app
from hal.camera_pattern import counter_box
from tests.camera.helpers import jpeg_size, region_difference
from tests.peers.process import free_port
from tests.web.test_api import JSON, PASSWORD, basic

WIDTH, HEIGHT, FPS = 320, 240, 10


class Running:
    def __init__(self, tmp_path, camera_cfg):
        self.tmp_path = tmp_path
        self.loop = asyncio.new_event_loop()
        self.cfg = configuration.validate({
            "sip": {"listen": f"127.0.0.1:{free_port(('udp', 'tcp'))}"},
            "web": {"hostnames": ["example.com"]},
            "camera": {"width": WIDTH, "height": HEIGHT, "fps": FPS, **camera_cfg}})
        self.config_path = str(tmp_path / "doorline.toml")
        configuration.save_atomic(self.config_path, self.cfg)
        self.start()
        assert self.request("POST", "/api/setup", {"password": PASSWORD},
                            JSON).status_code == 200

    def start(self):
        cfg = configuration.load(self.config_path)
        self.board = hal.open_board("pc-sim", camera="pattern")
        self.station = Station(cfg, self.board, config_path=self.config_path,
                               state_dir=str(self.tmp_path), loop=self.loop)
        self.loop.run_until_complete(self.station.start())
        self.client = TestClient(create_app(self.station, self.config_path, str(self.tmp_path)))

    def stop(self):
        self.loop.run_until_complete(self.station.stop())

    def request(self, method, path, body=None, headers=None):
        data = None if body is None else json.dumps(body)
        return self.loop.run_until_complete(
            self.client.request(method, path, headers=dict(headers or {}), body=data))

    def get(self, path, auth=True):
        return self.request("GET", path, headers=basic() if auth else {})

    def run_for(self, seconds):
        self.loop.run_until_complete(asyncio.sleep(seconds))

    def wait(self, predicate, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.run_for(0.05)
        return predicate()


@pytest.fixture
def running(tmp_path):
    env = Running(tmp_path, {"history": 3})
    yield env
    env.stop()
    env.loop.close()


def test_snapshot_is_a_jpeg_of_the_configured_size_and_changes(running):
    first = running.get("/api/camera/snapshot")
    assert first.status_code == 200, first.body
    assert first.headers["Content-Type"] == "image/jpeg"
    assert jpeg_size(first.body) == (WIDTH, HEIGHT)
    running.run_for(1.0)
    second = running.get("/api/camera/snapshot")
    assert second.status_code == 200
    assert region_difference(first.body, second.body, counter_box(WIDTH, HEIGHT)) > 2.0


def test_mjpeg_stream_runs_at_about_the_configured_rate(running):
    start = time.monotonic()
    res = running.get("/api/camera/stream?frames=15")
    elapsed = time.monotonic() - start
    assert res.status_code == 200
    assert res.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary=")
    body = res.body
    parts = body.split(b"--doorlineframe\r\n")[1:]
    assert len(parts) == 15
    for part in parts:
        head, _, jpeg = part.partition(b"\r\n\r\n")
        assert b"Content-Type: image/jpeg" in head
        assert jpeg_size(jpeg) == (WIDTH, HEIGHT)
    # 15 frames at 10 fps: about 1.4 s after the first (camera start included); wide margins
    assert 0.9 < elapsed < 5.0, elapsed
    assert running.get("/api/camera/stream?frames=0").status_code == 400


def test_camera_stops_when_nobody_uses_it(running, monkeypatch):
    from firmware.runtime import camera as camera_module

    service = running.station.camera_service()
    assert service is not None and not service.capturing, "capturing before anyone asked"
    monkeypatch.setattr(camera_module, "IDLE_CLOSE_S", 0.2)
    assert running.get("/api/camera/snapshot").status_code == 200
    assert running.wait(lambda: not service.capturing, 3.0), "still capturing after use"
    encoded = service.jpegs_encoded
    running.run_for(0.5)
    assert service.jpegs_encoded == encoded


def test_ring_snapshots_are_bounded_carried_by_events_and_survive_a_restart(running):
    ids = []
    for _ in range(5):
        before = len(running.station.events())
        running.board.press("call", 50)
        assert running.wait(lambda n=before: any(e["type"] == "button"
                                                 for e in running.station.events()[n:]))
        event = [e for e in running.station.events()[before:] if e["type"] == "button"][0]
        assert "snapshot" in event, event
        ids.append(event["snapshot"])
        path = f"/api/snapshots/{ids[-1]}"
        assert running.wait(lambda p=path: running.get(p).status_code == 200)
        running.run_for(0.3)
    listed = running.get("/api/snapshots").json["snapshots"]
    assert [s["id"] for s in listed] == ids[:-4:-1], (listed, ids)
    assert all(s["event"]["role"] == "call" for s in listed)
    picture = running.get(f"/api/snapshots/{ids[-1]}")
    assert picture.headers["Content-Type"] == "image/jpeg"
    assert jpeg_size(picture.body) == (WIDTH, HEIGHT)
    assert running.get(f"/api/snapshots/{ids[0]}").status_code == 404, "oldest not deleted"
    assert running.get("/api/snapshots/..%2Fdoorline.toml").status_code == 404

    running.stop()
    running.start()
    again = running.get("/api/snapshots").json["snapshots"]
    assert [s["id"] for s in again] == [s["id"] for s in listed]
    assert running.get(f"/api/snapshots/{ids[-1]}").body == picture.body


def test_phone_url_needs_the_token_and_is_rate_limited(running):
    assert running.get("/camera.jpg?token=", auth=False).status_code == 404, "on by default"
    info = running.get("/api/camera").json
    assert info["phone_token"] == "" and info["present"] is True
    res = running.request("POST", "/api/camera/token", {"enabled": True}, {**JSON, **basic()})
    assert res.status_code == 200, res.body
    token = res.json["phone_token"]
    assert len(token) >= 16 and res.json["phone_url"] == "/camera.jpg?token=" + token
    assert configuration.load(running.config_path).camera.phone_token == token
    assert configuration.redacted(running.station.config)["camera"]["phone_token"] == "(set)"

    assert running.get("/camera.jpg?token=wrong-token-123456", auth=False).status_code == 403
    assert running.get("/camera.jpg", auth=False).status_code == 403
    ok = running.get(f"/camera.jpg?token={token}", auth=False)
    assert ok.status_code == 200 and jpeg_size(ok.body) == (WIDTH, HEIGHT)
    statuses = [running.get(f"/camera.jpg?token={token}", auth=False).status_code
                for _ in range(6)]
    assert 429 in statuses, statuses
    assert any(e["type"] == "auth_failed" and e.get("via") == "camera_token"
               for e in running.station.events())

    renewed = running.request("POST", "/api/camera/token", {"enabled": True},
                              {**JSON, **basic()}).json["phone_token"]
    assert renewed != token
    running.run_for(1.0)  # the rate limit refills
    assert running.get(f"/camera.jpg?token={token}", auth=False).status_code == 403
    running.request("POST", "/api/camera/token", {"enabled": False}, {**JSON, **basic()})
    assert running.get(f"/camera.jpg?token={renewed}", auth=False).status_code == 404


def test_camera_urls_need_the_admin_login(running):
    for path in ("/api/camera", "/api/camera/snapshot", "/api/camera/stream?frames=1",
                 "/api/snapshots", "/api/snapshots/20260101-000000-000"):
        res = running.get(path, auth=False)
        assert res.status_code == 401, (path, res.status_code)
    res = running.request("POST", "/api/camera/token", {"enabled": True}, JSON)
    assert res.status_code == 401


def test_a_station_without_camera_has_no_camera_urls(tmp_path):
    loop = asyncio.new_event_loop()
    cfg = configuration.validate({"web": {"hostnames": ["example.com"]},
                                  "sip": {"listen": f"127.0.0.1:{free_port(('udp', 'tcp'))}"}})
    board = hal.open_board("pc-sim")
    station = Station(cfg, board, state_dir=str(tmp_path), loop=loop)
    station.prepare()
    client = TestClient(create_app(station, str(tmp_path / "c.toml"), str(tmp_path)))
    loop.run_until_complete(client.post("/api/setup", body={"password": PASSWORD}))
    res = loop.run_until_complete(client.get("/api/camera/snapshot", headers=basic()))
    assert res.status_code == 404
    assert station.camera_service() is None
    board.press("call", 20)
    loop.run_until_complete(asyncio.sleep(0.2))
    assert all("snapshot" not in e for e in station.events() if e["type"] == "button")
    loop.run_until_complete(station.stop())
    loop.close()


def test_video_port_only_when_video_is_offered_and_latest_snapshot(running):
    station = running.station
    station._port_pool()
    port = station._open_video_pair("call-a")
    assert port is not None and "call-a" in station._video_pairs
    for sock in station._video_pairs.pop("call-a"):
        sock.close()
    assert station.latest_snapshot() is None
    running.board.press("call", 20)
    assert running.wait(lambda: station.latest_snapshot() is not None)
    latest = station.latest_snapshot()
    with open(latest["path"], "rb") as f:
        assert jpeg_size(f.read()) == (WIDTH, HEIGHT)
    assert latest["event"]["role"] == "call"

    res = running.request("PUT", "/api/config", {"camera": {"video": "off"}},
                          {**JSON, **basic()})
    assert res.status_code == 200, res.body
    assert station._open_video_pair("call-b") is None and station._video_pairs == {}
