"""H.264 video in calls with a real baresip 1.0 (Debian's avcodec module; fakevideo as its camera
and screenless display; its snapshot module writes what it received), issue 16.

One call per case between the station (pc-sim, `--camera pattern`, 320x240 at 15 fps) and
baresip, directly by IP: the station calls when its call button is pressed (our offer with
m=video), or baresip calls the station (baresip's offer, answered by the station). Two cases, a
pairwise design: each direction once, SRTP off and mandatory once. In each:
- baresip receives decodable H.264: two of its snapshots a second apart both show the pattern
  (the frame counter's box is dark with light digits) and the counter region changed;
- baresip's own video reaches the station: the station decodes frames of baresip's size;
- with SRTP (SDES, mandatory), audio and video each with their own key.
"""

import json
import pathlib
import time

import pytest

from hal.camera_pattern import counter_box
from tests.integration.helpers import Firmware, station_config
from tests.integration.test_calls_baresip import (
    ADMIN_PASSWORD,
    _web_request,
    press_call_button,
)
from tests.integration.test_calls_sipp import free_rtp_range
from tests.peers.baresip import Baresip
from tests.peers.process import wait_until

pytestmark = pytest.mark.peers

WIDTH, HEIGHT, FPS = 320, 240, 15


def start_station(workdir, phone, srtp="off"):
    workdir = pathlib.Path(workdir)
    config = station_config(None)
    low = free_rtp_range()
    config["media"] = {"srtp": srtp, "srtp_requires_tls": False,
                       "rtp_ports": f"{low}-{low + 19}"}
    config["buttons"] = [{"role": "call", "targets": [phone.contact_uri]}]
    config["calls"] = {"max_duration_s": 60}
    config["answer"] = {"mode": "auto", "allow": [f"sip:{phone.user}@127.0.0.1"],
                        "max_duration_s": 60}
    config["camera"] = {"width": WIDTH, "height": HEIGHT, "fps": FPS}
    firmware = Firmware(workdir / "station", config,
                        extra_args=("--camera", "pattern")).start()
    try:
        firmware.wait_log(r"web page on", timeout=10)
    except AssertionError:
        firmware.kill()
        raise
    return firmware


def read_png_luma(path):
    import av

    with av.open(str(path)) as container:
        picture = next(container.decode(video=0)).reformat(format="gray")
    plane = picture.planes[0]
    raw = bytes(plane)
    return picture.width, picture.height, b"".join(
        raw[r * plane.line_size: r * plane.line_size + picture.width]
        for r in range(picture.height))


def box_mean(luma, width, box):
    x, y, w, h = box
    total = sum(luma[row * width + col] for row in range(y, y + h) for col in range(x, x + w))
    return total / (w * h)


def box_difference(a, b, width, box):
    x, y, w, h = box
    total = sum(abs(a[row * width + col] - b[row * width + col])
                for row in range(y, y + h) for col in range(x, x + w))
    return total / (w * h)


def snapshot(phone, directory, name):
    """baresip's snapshot of the next received frame, as a PNG path."""
    path = directory / name  # written as given (PNG data, no suffix added)
    response = phone.command("snapshot_recv", str(path))
    assert response.get("ok"), response
    assert wait_until(lambda: f"png: wrote {path}" in phone.log, 5.0, 0.05), \
        f"no snapshot written:\n{phone.log[-3000:]}"
    return path


def station_video_stats(firmware):
    status, text = _web_request(firmware, "GET", "/api/status")
    assert status == 200, text
    calls = json.loads(text)["calls"]
    return calls[0]["stats"].get("video", {}) if calls else {}


@pytest.mark.parametrize("direction,srtp", [("outgoing", "off"), ("incoming", "mandatory")])
def test_video_call_both_ways(tmp_path, direction, srtp):
    phone = Baresip(tmp_path / "phone", video=True, srtp=srtp == "mandatory").start()
    firmware = start_station(tmp_path, phone, srtp)
    try:
        since = len(phone.events)
        if direction == "outgoing":
            press_call_button(firmware)
        else:
            status, _ = _web_request(firmware, "POST", "/api/setup",
                                     {"password": ADMIN_PASSWORD}, auth=False)
            assert status == 200
            phone.dial(f"sip:door@127.0.0.1:{firmware.port}")
        phone.wait_event("CALL_ESTABLISHED", 10, since=since)
        shots = tmp_path / "shots"
        shots.mkdir()
        time.sleep(1.5)
        first = snapshot(phone, shots, "a")
        time.sleep(1.0)
        second = snapshot(phone, shots, "b")
        assert wait_until(lambda: station_video_stats(firmware).get("frames_decoded", 0) >= 10,
                          5.0, 0.2), station_video_stats(firmware)
        stats = station_video_stats(firmware)
    finally:
        phone.stop()
        firmware.stop()
    width, height, a = read_png_luma(first)
    assert (width, height) == (WIDTH, HEIGHT)
    _, _, b = read_png_luma(second)
    box = counter_box(WIDTH, HEIGHT)
    # the pattern: the counter's box is dark with light digits on a lighter gradient
    x, y, w, h = box
    assert 20 < box_mean(a, width, box) < 120, box_mean(a, width, box)
    assert box_difference(a, b, width, box) > 3.0, "the frame counter did not change"
    assert stats["frames_sent"] >= 20 and stats["key_frames_sent"] >= 1, stats
    assert stats["frames_decoded"] >= 10 and stats["received_size"] == [320, 240], stats
    assert stats["capture_to_rtp_ms"]["median"] < 100, stats
