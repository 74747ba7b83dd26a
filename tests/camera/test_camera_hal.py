"""The camera role without the station: the test pattern, the PyAV encoders and decoder, the
board file's [camera], and the snapshot history on disk."""

import json
import os
import time

import pytest

import hal
from firmware.runtime.snapshots import SnapshotStore, is_id
from hal import camera_av
from hal.board import BoardError, CameraSpec, parse_board
from hal.camera import Frame, i420_size, open_camera
from hal.camera_pattern import PatternCamera, counter_box
from tests.camera.helpers import jpeg_size, region_difference


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


def pattern(width=320, height=240, fps=10):
    clock = FakeClock()
    camera = PatternCamera(clock=clock, sleep=clock.sleep, wall=lambda: 1_700_000_000.0)
    camera.open(width, height, fps)
    return camera, clock


def test_pattern_frames_are_paced_numbered_and_differ():
    camera, clock = pattern()
    frames = [camera.read() for _ in range(4)]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert all(len(f.data) == i420_size(320, 240) for f in frames)
    assert [round(f.time - 100.0, 3) for f in frames] == [0.0, 0.1, 0.2, 0.3]
    assert clock.slept == pytest.approx([0.1, 0.1, 0.1])
    assert len({f.data for f in frames}) == 4, "every frame looks different"
    camera.close()
    assert camera.read() is None


def test_pattern_counter_region_changes_and_jpeg_has_the_size():
    camera, _ = pattern()
    a, b = camera.read(), camera.read()
    jpeg = camera.jpeg_encoder()
    ja, jb = jpeg.encode(a), jpeg.encode(b)
    assert jpeg_size(ja) == (320, 240)
    x, y, w, h = counter_box(320, 240)
    assert region_difference(ja, jb, (x, y, w, h)) > 2.0
    # the same frame twice: nothing differs
    assert region_difference(ja, jpeg.encode(a), (x, y, w, h)) < 0.5


def test_h264_first_frame_is_a_key_frame_with_sps_pps_and_decodes():
    camera, _ = pattern()
    encoder = camera.h264_encoder()
    first = encoder.encode(camera.read())
    types = [u[0] & 0x1F for u in first]
    assert types[:2] == [7, 8] and 5 in types, types  # SPS, PPS, IDR
    assert first[0][1] == 0x42, "baseline profile"
    second = encoder.encode(camera.read())
    assert 5 not in [u[0] & 0x1F for u in second]
    forced = encoder.encode(camera.read(), key=True)
    assert [u[0] & 0x1F for u in forced][:2] == [7, 8] and 5 in [u[0] & 0x1F for u in forced]
    leveled = camera.h264_encoder(600_000, 13).encode(camera.read())
    assert leveled[0][1:4] == bytes([0x42, 0xC0, 13]), "the SPS carries the level asked for"
    decoder = camera_av.H264Decoder()
    assert decoder.decode(first) + decoder.decode(second) + decoder.decode(forced) == 3
    assert decoder.size == (320, 240) and decoder.errors == 0


def test_split_annexb():
    stream = b"\x00\x00\x00\x01\x67\x42\x00\x00\x01\x68\xce\x00\x00\x00\x01\x65\x88\x00"
    assert camera_av.split_annexb(stream) == [b"\x67\x42", b"\x68\xce", b"\x65\x88"]


def test_file_camera_loops_a_still_image(tmp_path):
    camera, _ = pattern()
    path = tmp_path / "door.jpg"
    path.write_bytes(camera.jpeg_encoder().encode(camera.read()))
    still = open_camera(CameraSpec(kind="file", device=str(path)))
    still.open(160, 120, 30)
    try:
        frames = [still.read() for _ in range(3)]
    finally:
        still.close()
    assert [f.index for f in frames] == [0, 1, 2]
    assert all(f.width == 160 and len(f.data) == i420_size(160, 120) for f in frames)


def test_board_camera_section():
    base = {"schema_version": 1, "name": "x", "kind": "pi", "header": "40pin",
            "buttons": {"call": {"pin": 17}}, "leds": {"status": {"pin": 24}},
            "relays": {"door": {"pin": 23}},
            "audio": {"capture": "default", "playback": "default", "rate": 48000}}
    assert parse_board(base).camera is None
    spec = parse_board({**base, "camera": {"kind": "v4l2", "device": "/dev/video2"}})
    assert spec.camera == CameraSpec(kind="v4l2", device="/dev/video2")
    with pytest.raises(BoardError) as error:
        parse_board({**base, "camera": {"kind": "webcam", "pin": 3}})
    assert any("camera.kind" in p for p in error.value.problems)
    assert any("camera.pin" in p for p in error.value.problems)


def test_sim_board_takes_camera_from_the_command_line_and_imports_no_av():
    import sys

    board = hal.open_board("pc-sim", camera="pattern")
    try:
        assert board.camera is not None and board.camera.kind == "pattern"
    finally:
        board.close()
    assert hal.open_board("pc-sim").camera is None
    # the pattern backend needs no PyAV (checked in a fresh interpreter: this one has it)
    import subprocess

    code = ("import sys, hal; b = hal.open_board('pc-sim', camera='pattern'); "
            "b.camera.open(160, 120, 15); b.camera.read(); "
            "print('av' in sys.modules, 'firmware.runtime.camera' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, cwd=os.path.dirname(os.path.dirname(hal.__file__)))
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_snapshot_store_is_bounded_atomic_and_survives_a_restart(tmp_path):
    store = SnapshotStore(str(tmp_path / "snapshots"), limit=3)
    ids = []
    for i in range(5):
        ident = store.new_id(1_700_000_000.0)  # the same millisecond: suffixes keep them apart
        assert is_id(ident), ident
        store.add(ident, b"\xff\xd8jpeg%d" % i, 1_700_000_000.0, {"type": "button", "n": i})
        ids.append(ident)
    assert len(set(ids)) == 5
    listed = store.list()
    assert [s["event"]["n"] for s in listed] == [4, 3, 2]
    assert sorted(os.listdir(tmp_path / "snapshots")) == sorted(
        [s["id"] + ".jpg" for s in listed] + [s["id"] + ".json" for s in listed])
    (tmp_path / "snapshots" / "x.jpg.tmp.1.2").write_bytes(b"half")  # a write killed mid-way
    again = SnapshotStore(str(tmp_path / "snapshots"), limit=2)
    assert [s["id"] for s in again.list()] == [s["id"] for s in listed[:2]]
    assert again.read(listed[0]["id"]) == b"\xff\xd8jpeg4"
    assert again.latest()["id"] == listed[0]["id"]
    assert not any(".tmp." in n for n in os.listdir(tmp_path / "snapshots"))
    meta = json.loads((tmp_path / "snapshots" / (listed[0]["id"] + ".json")).read_text())
    assert meta["event"] == {"type": "button", "n": 4}
    for bad in ("../admin", "20231114-221320-000/../../x", "", "a" * 30):
        assert again.read(bad) is None


def test_frame_repr():
    assert "#3" in repr(Frame(b"", 2, 2, 1.0, 3))


def test_file_camera_loops_a_video(tmp_path):
    import av

    path = tmp_path / "door.mp4"
    source, _ = pattern(160, 128, 10)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 160, 128, "yuv420p"
        for _ in range(5):
            picture = camera_av.to_av_frame(source.read())
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    video = open_camera(CameraSpec(kind="file", device=str(path)))
    video.open(160, 128, 30)
    try:
        frames = [video.read() for _ in range(12)]
    finally:
        video.close()
    assert all(f is not None and len(f.data) == i420_size(160, 128) for f in frames)
    # five different pictures, then the same five again (decoding is deterministic)
    assert len({f.data for f in frames[:5]}) == 5
    assert [f.data for f in frames[5:10]] == [f.data for f in frames[:5]], "no loop"
    assert [f.index for f in frames] == list(range(12))


class FakeArray:
    """The little of a numpy array that hal/camera_pi.py uses: shape, 2-D slicing, reshape,
    tobytes (there is no numpy here, and no Pi camera: this stands in for picamera2)."""

    def __init__(self, rows):
        self.rows = rows

    @property
    def shape(self):
        return len(self.rows), len(self.rows[0])

    def __getitem__(self, index):
        rows, cols = index if isinstance(index, tuple) else (index, slice(None))
        return FakeArray([row[cols] for row in self.rows[rows]])

    def reshape(self, _, width):
        data = self.tobytes()
        return FakeArray([data[i:i + width] for i in range(0, len(data), width)])

    def tobytes(self):
        return b"".join(self.rows)


def test_picamera2_backend_against_a_stand_in(monkeypatch):
    import sys
    import types

    from hal.camera_pi import PiCamera

    width, height, stride = 32, 4, 64  # rows padded to 64 bytes, as libcamera may
    y = [bytes([r * 10 + 1]) * width + b"\xee" * (stride - width) for r in range(height)]
    chroma_rows = []  # U then V: height/2 rows of width/2 bytes, each padded to stride/2
    for value in (0x50, 0x60):
        for r in range(height // 2):
            padding = b"\xee" * ((stride - width) // 2)
            chroma_rows.append(bytes([value + r]) * (width // 2) + padding)
    packed = b"".join(chroma_rows)
    chroma = [packed[i:i + stride] for i in range(0, len(packed), stride)]
    calls = []

    class Picamera2:
        def __init__(self, number):
            calls.append(("camera", number))

        def create_video_configuration(self, main, controls, buffer_count):
            calls.append(("config", main, controls))
            return {"main": main}

        def configure(self, config):
            calls.append(("configure",))

        def start(self):
            calls.append(("start",))

        def capture_array(self, name):
            return FakeArray(y + chroma)

        def stop(self):
            calls.append(("stop",))

        def close(self):
            calls.append(("close",))

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=Picamera2))
    camera = PiCamera("1")
    camera.open(width, height, 15)
    frame = camera.read()
    camera.close()
    assert calls[0] == ("camera", 1)
    assert calls[1] == ("config", {"size": (width, height), "format": "YUV420"},
                        {"FrameRate": 15.0})
    assert len(frame.data) == i420_size(width, height)
    assert frame.data[:width * height] == b"".join(row[:width] for row in y)
    assert frame.data[width * height:] == (b"\x50" * 16 + b"\x51" * 16 +
                                           b"\x60" * 16 + b"\x61" * 16)
    assert calls[-2:] == [("stop",), ("close",)]


def test_a_pi_board_file_with_a_camera_gets_its_backend_unopened(tmp_path):
    from gpiozero.pins.mock import MockFactory

    from hal.board import BOARDS_DIR

    text = (BOARDS_DIR / "rpi4.toml").read_text().replace(
        "# [camera]\n# kind = \"v4l2\"\n# device = \"/dev/video0\"",
        "[camera]\nkind = \"v4l2\"\ndevice = \"/dev/video9\"")
    path = tmp_path / "rpi4-camera.toml"
    path.write_text(text)
    board = hal.open_board(str(path), pin_factory=MockFactory())
    try:
        assert board.camera is not None and board.camera.kind == "v4l2"
        assert board.camera.source == "/dev/video9" and not board.camera.is_open
    finally:
        board.close()
    with pytest.raises(BoardError):  # --camera is for simulated boards
        hal.open_board(str(path), camera="pattern", pin_factory=MockFactory())


def test_a_camera_that_gives_nothing_is_stopped_not_spun(tmp_path, monkeypatch):
    from firmware.runtime import camera as camera_module
    from firmware.runtime.camera import CameraService
    from firmware.settings import CameraConfig
    from hal.camera import Camera

    class Silent(Camera):
        kind = "silent"
        reads = 0

        def read(self):
            Silent.reads += 1
            return None

    monkeypatch.setattr(camera_module, "FIRST_FRAME_TIMEOUT_S", 0.5)
    service = CameraService(Silent(), CameraConfig(width=160, height=128, fps=10),
                            str(tmp_path))
    try:
        assert service.snapshot_blocking() is None
        deadline = time.monotonic() + 3
        while service.capturing and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not service.capturing and service.error == "the camera gives no pictures"
        assert Silent.reads <= 10, f"{Silent.reads} reads in 0.5 s: spinning"
    finally:
        service.close()


def test_sps_and_pps_are_put_before_an_idr_that_lacks_them():
    camera, _ = pattern()
    encoder = camera.h264_encoder()
    first = encoder.encode(camera.read())
    sps, pps = first[0], first[1]
    idr_alone = [bytes([0x65, 0x88, 0x80])]
    assert encoder._with_parameter_sets(idr_alone) == [sps, pps, idr_alone[0]]
    p_frame = [bytes([0x41, 0x9A])]
    assert encoder._with_parameter_sets(p_frame) == p_frame


def test_an_encoder_asked_for_first_and_a_fallback(monkeypatch):
    camera, _ = pattern()
    monkeypatch.setenv("DOORLINE_H264_ENCODER", "no_such_encoder")
    assert camera.h264_encoder().name == "libx264"  # not in this FFmpeg: the usual one
    monkeypatch.setenv("DOORLINE_H264_ENCODER", "libx264")
    assert camera.h264_encoder().name == "libx264"


def test_a_user_who_comes_while_the_camera_closes_gets_it_again(tmp_path, monkeypatch):
    import threading

    from firmware.runtime import camera as camera_module
    from firmware.runtime.camera import CameraService
    from firmware.settings import CameraConfig

    closing = threading.Event()

    class SlowToClose(PatternCamera):
        def close(self):
            closing.set()
            time.sleep(0.3)  # a user arrives meanwhile
            super().close()

    monkeypatch.setattr(camera_module, "IDLE_CLOSE_S", 0.1)
    service = CameraService(SlowToClose(), CameraConfig(width=160, height=128, fps=10),
                            str(tmp_path))
    try:
        assert service.snapshot_blocking() is not None
        assert closing.wait(2), "the idle camera was not closed"
        started = time.monotonic()
        assert service.snapshot_blocking() is not None
        assert time.monotonic() - started < 2.0, "waited for a camera nobody reopened"
    finally:
        service.close()
