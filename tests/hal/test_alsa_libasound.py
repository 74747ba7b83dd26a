"""hal.pi audio against the real libasound (hal/libasound.py, ctypes), no sound card: ALSA
`file` plugins over `null` stand in for a 48 kHz USB codec, from a config the test writes
(ALSA_CONFIG_PATH).

Checks the C conversion path (libasound2-plugins' `speexrate`, issue 14): the stream says it uses
it, a 1 kHz tone written at 8 kHz reaches the "device" at 48 kHz at the right frequency and level,
and the converter the HAL names meets the resampler's quality bar in both directions (pass band
to 3.4 kHz flat within 0.5 dB, >= 60 dB alias/image rejection) at a fraction of the pure-Python
Resampler's CPU.

The 48 kHz -> 8 kHz direction is measured through playback into an 8 kHz file with the same
converter: libasound 1.2.8's `file` plugin reads its `infile` ahead in mmap_begin, so capture
under a rate plugin skips input (a limit of the test device, not of a real card).
"""

import math
import os
import pathlib
import shutil
import subprocess
import time

import pytest

from firmware.codecs.tones import ToneGenerator, goertzel_power, mean_square, pcm_to_samples
from hal import libasound
from hal.board import AudioSpec
from hal.pi import C_CONVERTER, AlsaAudio, converting_device

try:
    libasound.library()
except libasound.AlsaError as _missing:
    pytest.skip(f"libasound is not usable here: {_missing}", allow_module_level=True)

AMPLITUDE = 10000
ALSA_CONF = pathlib.Path(os.environ.get("ALSA_CONFIG_DIR", "/usr/share/alsa")) / "alsa.conf"


def _use_config(monkeypatch, tmp_path, text):
    if not ALSA_CONF.exists():
        pytest.skip(f"no {ALSA_CONF}: libasound's own configuration is missing")
    conf = tmp_path / "asound.conf"
    conf.write_text(text)
    monkeypatch.setenv("ALSA_CONFIG_PATH", f"{ALSA_CONF}:{conf}")
    if not libasound.has_pcm("speexrate"):
        pytest.skip("libasound has no `speexrate` PCM: install libasound2-plugins")


@pytest.fixture
def card(monkeypatch, tmp_path):
    """A mono 48 kHz 'card': playback goes to out.raw, capture is silence."""
    out = tmp_path / "out.raw"
    _use_config(monkeypatch, tmp_path, f"""
pcm.testcard_play {{ type file slave.pcm "null" file "{out}" format "raw" }}
pcm.testcard_cap {{ type file slave.pcm "null" file "/dev/null" format "raw" }}
""")
    return out


def _rewrite(path, text):
    """Replace an ALSA configuration file by a new inode: libasound reloads its configuration
    when a file's device, inode or mtime changed, and mtime has only 1 s resolution there."""
    new = path.with_suffix(".new")
    new.write_text(text)
    os.replace(new, path)


def _db(power):
    return 10 * math.log10(max(power, 1e-12) / (AMPLITUDE**2 / 2))


def _tone(frequency, rate, seconds=0.6):
    return ToneGenerator([frequency], AMPLITUDE, rate=rate).samples(int(rate * seconds))


def test_pi_stream_converts_in_libasound_and_a_tone_reaches_the_48k_device(card):
    spec = AudioSpec(capture="testcard_cap", playback="testcard_play", rate=48000)
    audio = AlsaAudio(spec)
    stream = audio.open(rate=8000, frame_ms=20)
    try:
        assert stream.conversion == f"libasound {C_CONVERTER} (C)"
        tone = _tone(1000, 8000, seconds=1.0)
        for start in range(0, len(tone), 320):
            stream.write_frame(tone[start:start + 320])
        captured = [stream.read_frame() for _ in range(5)]
        assert all(frame is not None and len(frame) == 320 for frame in captured)
        assert stream.stats["dropped"] == 0
    finally:
        audio.close()
    samples = pcm_to_samples(card.read_bytes())
    assert len(samples) == pytest.approx(48000, abs=2 * 960)  # 1 s at 48 kHz, mono
    settled = samples[4800:]
    at_1k = goertzel_power(settled, 1000, 48000)
    assert _db(at_1k) == pytest.approx(0, abs=0.5)
    assert at_1k > 0.99 * mean_square(settled)


def _through_converter(monkeypatch, tmp_path, frequency, in_rate, out_rate):
    """Play a tone at in_rate into a file at out_rate through the HAL's converter name."""
    out = tmp_path / f"conv-{frequency}-{in_rate}.raw"
    _use_config(monkeypatch, tmp_path,
                f'pcm.conv_out {{ type file slave.pcm "null" file "{out}" format "raw" }}\n')
    pcm = libasound.open_pcm(converting_device("conv_out", out_rate), False, in_rate,
                             in_rate // 50, 4, channels=(1,))
    tone = _tone(frequency, in_rate)
    frame = in_rate // 50 * 2
    started = time.process_time()
    for start in range(0, len(tone), frame):
        pcm.write(tone[start:start + frame])
    cpu = (time.process_time() - started) / (len(tone) // frame)
    pcm.close()
    return pcm_to_samples(out.read_bytes())[out_rate // 10:], cpu


@pytest.mark.parametrize("in_rate, out_rate", [(48000, 8000), (8000, 48000)])
@pytest.mark.parametrize("frequency", [300, 1000, 3400])
def test_c_converter_pass_band_is_flat_to_3400hz(monkeypatch, tmp_path, in_rate, out_rate,
                                                  frequency):
    out, _ = _through_converter(monkeypatch, tmp_path, frequency, in_rate, out_rate)
    assert _db(goertzel_power(out, frequency, out_rate)) == pytest.approx(0, abs=0.5)


@pytest.mark.parametrize("frequency", [4600, 6000, 12000])
def test_c_converter_rejects_aliases_by_60db(monkeypatch, tmp_path, frequency):
    out, _ = _through_converter(monkeypatch, tmp_path, frequency, 48000, 8000)
    assert _db(mean_square(out)) < -60


def test_c_converter_images_are_60db_down_when_upsampling(monkeypatch, tmp_path):
    out, _ = _through_converter(monkeypatch, tmp_path, 1000, 8000, 48000)
    for image in (7000, 9000, 15000, 17000):
        assert _db(goertzel_power(out, image, 48000)) < -60


def test_c_converter_costs_a_fraction_of_the_python_resampler(monkeypatch, tmp_path):
    from firmware.codecs.resample import Resampler

    _, c_cpu = _through_converter(monkeypatch, tmp_path, 1000, 48000, 8000)
    resampler = Resampler(48000, 8000)
    tone = _tone(1000, 48000, seconds=0.2)
    started = time.process_time()
    for start in range(0, len(tone), 1920):
        resampler.process(tone[start:start + 1920])
    python_cpu = (time.process_time() - started) / (len(tone) // 1920)
    assert c_cpu < python_cpu / 5, (c_cpu, python_cpu)


def test_python_fallback_is_named_and_still_plays_at_48k(card, monkeypatch):
    monkeypatch.setenv("DOORLINE_ALSA_RESAMPLER", "python")
    spec = AudioSpec(capture="testcard_cap", playback="testcard_play", rate=48000)
    audio = AlsaAudio(spec)
    stream = audio.open(rate=8000, frame_ms=20)
    try:
        assert stream.conversion.startswith("python")
        tone = _tone(1000, 8000, seconds=0.5)
        for start in range(0, len(tone), 320):
            stream.write_frame(tone[start:start + 320])
        assert stream.read_frame() is not None
    finally:
        audio.close()
    settled = pcm_to_samples(card.read_bytes())[4800:]
    assert _db(goertzel_power(settled, 1000, 48000)) == pytest.approx(0, abs=0.5)


# -- the whole firmware on the Pi HAL and the real libasound, in a call -----------------------

@pytest.mark.peers
def test_two_way_srtp_call_through_libasound(tmp_path, kamailio, baresip_factory):
    """The firmware with a Pi board whose sound card is libasound's `file` plugin at 48 kHz
    (converting in C): baresip calls it through Kamailio with SRTP; the station's 1 kHz
    microphone is in baresip's recording (the dominant frequency, at a clear level), baresip's
    440 Hz in what the station played (>= 80 % of the 100 ms windows dominated by it)."""
    from tests.hal.alsa_card import call_both_ways, write_card
    from tests.integration.helpers import Firmware, station_config

    if not ALSA_CONF.exists():
        pytest.skip(f"no {ALSA_CONF}: libasound's own configuration is missing")
    card = tmp_path / "card"
    env = write_card(card, rate=48000, mic_hz=1000, seconds=15)
    config = station_config(kamailio)
    config["media"] = {"srtp": "mandatory", "srtp_requires_tls": False}
    config["answer"] = {"mode": "auto", "allow": ["sip:flat1@127.0.0.1"]}
    config["audio"] = {**config.get("audio", {}), "echo_cancel": False}
    phone = baresip_factory("flat1", registrar=kamailio, srtp=True, tone_hz=440)
    phone.wait_registered(10)
    station = Firmware(tmp_path / "station", config, board=card / "board.toml", env=env).start()
    try:
        station.wait_log(r"registration registered", timeout=15)
        figures = call_both_ways(station, phone, kamailio, card, talk_s=3.0)
        print(f"libasound call: {figures}")
        assert "conversion: libasound speexrate_medium (C)" in station.log
        assert figures["encrypted"], "baresip reported no media encryption"
        assert figures["phone_windows"] >= 20 and figures["station_windows"] >= 20, figures
        # the microphone direction: see tests/hal/alsa_card.py for why not the window share
        assert abs(figures["phone_heard_peak_hz"] - 1000) <= 20, figures
        assert figures["phone_heard_rms"] > 0.05, figures
        assert figures["station_heard_share"] >= 0.8, figures
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-4000:]}")


# -- period sizes and latency, as the HAL asks for them ---------------------------------------

@pytest.mark.parametrize("python_path", [False, True], ids=["c-path", "python-path"])
@pytest.mark.parametrize("period_ms, buffer_ms, frame_ms", [(20, 80, 20), (10, 30, 20),
                                                            (40, 200, 20), (20, 80, 10)])
def test_period_and_buffer_are_what_the_config_asks_for(card, monkeypatch, period_ms, buffer_ms,
                                                         frame_ms, python_path):
    """`[audio] period_ms` / `buffer_ms` (AlsaAudio.set_buffering) reach libasound: it grants
    that period and buffer_ms // period_ms periods in both directions, at the call rate on the
    C path and at the device's rate on the Python path, whatever the call's frame length; and
    frames still come and go whole when a period holds half a frame or two."""
    from hal.pi import describe_buffering

    if python_path:
        monkeypatch.setenv("DOORLINE_ALSA_RESAMPLER", "python")
    audio = AlsaAudio(AudioSpec(capture="testcard_cap", playback="testcard_play", rate=48000))
    audio.set_buffering(period_ms, buffer_ms)
    stream = audio.open(rate=8000, frame_ms=frame_ms)
    try:
        rate = 48000 if python_path else 8000
        period = rate * period_ms // 1000
        periods = buffer_ms // period_ms
        expected = {"rate": rate, "period_frames": period, "buffer_frames": periods * period,
                    "latency_ms": buffer_ms}
        assert stream.buffering == {"capture": expected, "playback": expected}
        assert describe_buffering(stream.buffering).startswith(
            f"capture {period}/{periods * period} frames at {rate} Hz ({buffer_ms} ms)")
        frames = [stream.read_frame() for _ in range(6)]
        assert [len(frame or b"") for frame in frames] == [16 * frame_ms] * 6
        stream.write_frame(bytes(16 * frame_ms))
        assert stream.stats["dropped"] == 0
    finally:
        audio.close()


# -- a device that goes away and comes back (USB replug) --------------------------------------

class FifoCodec:
    """The far end of a playback `file` plugin writing into a named pipe: a thread reads what
    arrives. `unplug()` closes the pipe (the plugin's next write fails with EIO, as a pulled USB
    codec fails) and removes it; `plug()` makes a new pipe with a new reader."""

    def __init__(self, path):
        import threading

        self.path = path
        self.received = bytearray()
        self._threading = threading
        self._fd = None
        self._stop = threading.Event()
        self._thread = None

    def plug(self):
        os.mkfifo(self.path)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self._stop.clear()
        self._thread = self._threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self):
        import select as select_module

        while not self._stop.is_set():
            ready, _, _ = select_module.select([self._fd], [], [], 0.05)
            if ready:
                try:
                    self.received += os.read(self._fd, 65536)
                except BlockingIOError:
                    pass

    def unplug(self):
        self._stop.set()
        self._thread.join(5)
        os.close(self._fd)
        os.unlink(self.path)


def test_playback_device_unplugged_and_replugged_comes_back(monkeypatch, tmp_path):
    """Playing 20 ms frames in real time: the device is pulled (its pipe breaks, and its name
    disappears from the ALSA configuration, as a USB card's does), then plugged in again.
    write_frame never blocks, the HAL reopens the device by itself with its back-off, and the
    tone reaches the new device within the back-off's bound of the replug."""
    from hal.pi import BACKOFF_MAX_S

    codec = FifoCodec(tmp_path / "codec.fifo")
    present = (f'pcm.usbcodec {{ type file slave.pcm "null" file "{codec.path}" '
               'format "raw" }\npcm.usbmic { type file slave.pcm "null" file "/dev/null" '
               'format "raw" }\n')
    absent = 'pcm.usbmic { type file slave.pcm "null" file "/dev/null" format "raw" }\n'
    _use_config(monkeypatch, tmp_path, present)
    conf = tmp_path / "asound.conf"
    codec.plug()
    audio = AlsaAudio(AudioSpec(capture="usbmic", playback="usbcodec", rate=8000))
    stream = audio.open(rate=8000, frame_ms=20)
    tone = _tone(1000, 8000, seconds=0.02)
    slowest = 0.0

    def play(seconds):
        nonlocal slowest
        for _ in range(int(seconds / 0.02)):
            began = time.monotonic()
            stream.write_frame(tone)
            slowest = max(slowest, time.monotonic() - began)
            time.sleep(max(0.0, 0.02 - (time.monotonic() - began)))

    try:
        play(0.5)
        assert len(codec.received) >= 0.4 * 16000, "nothing reached the device before unplug"
        codec.unplug()
        _rewrite(conf, absent)
        play(1.5)
        assert stream.stats["reopens"] == 0
        before = len(codec.received)
        codec.plug()
        _rewrite(conf, present)
        replugged = time.monotonic()
        while stream.stats["reopens"] == 0 and time.monotonic() - replugged < BACKOFF_MAX_S + 2:
            play(0.1)
        back_after = time.monotonic() - replugged
        play(0.5)
    finally:
        audio.close()
        codec.unplug()
    print(f"replug: back after {back_after:.2f} s, slowest write_frame {slowest * 1000:.1f} ms, "
          f"stats {stream.stats}")
    assert stream.stats["reopens"] == 1
    assert back_after <= BACKOFF_MAX_S + 0.5
    assert slowest < 0.1, f"write_frame blocked for {slowest:.3f} s"
    after = pcm_to_samples(bytes(codec.received[before:]))
    assert len(after) >= 0.3 * 8000, "little reached the replugged device"
    windows = [after[i:i + 160] for i in range(0, len(after) - 159, 160)]
    toned = sum(goertzel_power(w, 1000, 8000) > 0.9 * mean_square(w) > 0 for w in windows)
    assert toned >= 0.9 * len(windows), (toned, len(windows), list(after[:320]))


def test_capture_device_absent_at_start_is_opened_once_plugged(monkeypatch, tmp_path):
    """No capture device when the call starts: read_frame paces the caller (about one frame)
    and returns None, never blocking; once the device exists, frames flow."""
    mic = tmp_path / "mic.raw"
    mic.write_bytes(_tone(1000, 8000, seconds=3.0))
    absent = 'pcm.usbcodec { type file slave.pcm "null" file "/dev/null" format "raw" }\n'
    present = absent + (f'pcm.usbmic {{ type file slave.pcm "null" file "/dev/null" '
                        f'infile "{mic}" format "raw" }}\n')
    _use_config(monkeypatch, tmp_path, absent)
    audio = AlsaAudio(AudioSpec(capture="usbmic", playback="usbcodec", rate=8000))
    stream = audio.open(rate=8000, frame_ms=20)
    try:
        began = time.monotonic()
        assert [stream.read_frame() for _ in range(10)] == [None] * 10
        assert 0.1 <= time.monotonic() - began <= 0.6  # paced like a live device, not stuck
        _rewrite(tmp_path / "asound.conf", present)
        frames = []
        deadline = time.monotonic() + 5
        while len(frames) < 25 and time.monotonic() < deadline:
            frame = stream.read_frame()
            if frame is not None:
                frames.append(frame)
    finally:
        audio.close()
    assert len(frames) == 25 and stream.stats["reopens"] == 0
    samples = pcm_to_samples(b"".join(frames))
    assert goertzel_power(samples, 1000, 8000) > 0.9 * mean_square(samples)


# -- a capture device that stalls (a named pipe that stops delivering) -----------------------

class StallingMic:
    """The writer of a named pipe that a capture `file` plugin reads as its `infile`: 20 ms of
    a `hz` tone every 20 ms (the pipe's reader is the microphone, the writer its clock), with a
    pause of `stall_s` after `before_s` seconds, then `after_s` more. libasound's `file` plugin
    reads the pipe with a blocking read(), so during the pause snd_pcm_readi does not return."""

    def __init__(self, path, rate=8000, hz=1000, before_s=1.0, stall_s=3.0, after_s=1.5):
        import threading

        self.path = path
        os.mkfifo(path)
        self.rate, self.hz = rate, hz
        self.plan = (before_s, stall_s, after_s)
        self.stall_began = self.stall_ended = self.ended = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._write, daemon=True)

    def start(self):
        # Read-write, so that no open() of the pipe blocks: the plugin opens its infile inside
        # snd_pcm_open, which would wait there for a writer.
        self._fd = os.open(self.path, os.O_RDWR)
        self._thread.start()
        return self

    def _write(self):
        before_s, stall_s, after_s = self.plan
        frame = self.rate // 50
        tone = _tone(self.hz, self.rate, seconds=before_s + after_s + 0.1)
        fd = self._fd
        try:
            sent = 0
            began = time.monotonic()
            for index in range(int((before_s + after_s) * 50)):
                if index == int(before_s * 50):
                    self.stall_began = time.monotonic()
                    if self._stop.wait(stall_s):
                        return
                    self.stall_ended = time.monotonic()
                    began += stall_s
                os.write(fd, tone[sent * 2:(sent + frame) * 2])
                sent += frame
                pause = began + (index + 1) * 0.02 - time.monotonic()
                if pause > 0 and self._stop.wait(pause):
                    return
            self.ended = time.monotonic()
        except BrokenPipeError:
            pass

    def stop(self):
        """Ends the writer and closes the pipe (only now does its reader see the end)."""
        self._stop.set()
        self._thread.join(10)
        os.close(self._fd)


def test_a_stalling_capture_device_never_holds_read_frame_for_more_than_two_frames(
        monkeypatch, tmp_path):
    """The microphone (a named pipe read by the `file` plugin) stops for 3 s in the middle:
    read_frame, called every 20 ms as the media thread does, returns within two frames every
    time (None while the pipe is silent), and the tone is back within 0.2 s after the stall."""
    mic = StallingMic(tmp_path / "mic.fifo").start()
    _use_config(monkeypatch, tmp_path, f"""
pcm.pipemic {{ type file slave.pcm "null" file "/dev/null" infile "{mic.path}" format "raw" }}
pcm.pipespeaker {{ type file slave.pcm "null" file "/dev/null" format "raw" }}
""")
    audio = AlsaAudio(AudioSpec(capture="pipemic", playback="pipespeaker", rate=8000))
    stream = audio.open(rate=8000, frame_ms=20)
    results = []  # (when the call began, how long it took, the frame)
    try:
        began = time.monotonic()
        for tick in range(int(5.5 * 50)):
            called = time.monotonic()
            frame = stream.read_frame()
            results.append((called, time.monotonic() - called, frame))
            pause = began + (tick + 1) * 0.02 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        audio.close()
        mic.stop()
    assert mic.stall_began is not None and mic.stall_ended is not None
    slowest = max(took for _, took, _ in results)
    during = [frame for called, _, frame in results
              if mic.stall_began + 0.1 < called < mic.stall_ended]
    after = [(called, frame) for called, _, frame in results if called > mic.stall_ended]
    first_back = next(called for called, frame in after if frame is not None)
    print(f"stall: slowest read_frame {slowest * 1000:.1f} ms, {len(during)} calls during the "
          f"stall, audio back {1000 * (first_back - mic.stall_ended):.0f} ms after it")
    took = sorted(took for _, took, _ in results)
    print(f"read_frame: median {took[len(took) // 2] * 1000:.1f} ms, 99th percentile "
          f"{took[len(took) * 99 // 100] * 1000:.1f} ms")
    # Two frames (40 ms) is the HAL's bound; the margin is for a loaded test machine's
    # scheduler (a few of 275 calls took 45-295 ms at a load of 11 on 2 cores), far from 3 s.
    assert slowest < 0.5, f"read_frame blocked for {slowest:.3f} s"
    assert took[len(took) // 2] <= 2 * 0.02 + 0.005
    assert len(during) >= 100 and during.count(None) >= 0.95 * len(during)
    assert first_back - mic.stall_ended < 0.2
    resumed = [frame for called, frame in after[5:] if frame is not None and called < mic.ended]
    assert len(resumed) >= 0.8 * 50
    toned = sum(goertzel_power(pcm_to_samples(frame), 1000, 8000)
                > 0.9 * mean_square(pcm_to_samples(frame)) > 0 for frame in resumed)
    assert toned >= 0.9 * len(resumed), (toned, len(resumed))


def test_a_conference_speaker_keeps_playing_while_the_microphone_stalls(monkeypatch, tmp_path):
    """A conference's shared device (firmware.runtime.conference.SharedAudio, one pump thread
    that reads the microphone and then writes the mixed calls to the speaker) over the Pi HAL:
    while the microphone pipe stalls for 3 s, the two calls' audio still reaches the speaker
    (it never stops growing for more than a few frames); a pump held by read_frame wrote
    nothing for the whole stall."""
    from firmware.runtime.conference import SharedAudio

    speaker = tmp_path / "speaker.raw"
    mic = StallingMic(tmp_path / "mic.fifo", before_s=1.0, stall_s=3.0, after_s=1.0).start()
    _use_config(monkeypatch, tmp_path, f"""
pcm.pipemic {{ type file slave.pcm "null" file "/dev/null" infile "{mic.path}" format "raw" }}
pcm.filespeaker {{ type file slave.pcm "null" file "{speaker}" format "raw" }}
""")
    shared = SharedAudio(AlsaAudio(AudioSpec(capture="pipemic", playback="filespeaker",
                                             rate=8000)))
    calls = [shared.open(8000, 20), shared.open(8000, 20)]
    tone = _tone(440, 8000, seconds=0.02)
    sizes = []  # (time, bytes the speaker has received)
    try:
        began = time.monotonic()
        for tick in range(int(5.0 * 50)):
            for call in calls:
                call.write_frame(tone)
            sizes.append((time.monotonic(), speaker.stat().st_size if speaker.exists() else 0))
            pause = began + (tick + 1) * 0.02 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
    finally:
        for call in calls:
            call.close()
        mic.stop()
    assert mic.stall_began is not None and mic.stall_ended is not None
    during = [(when, size) for when, size in sizes
              if mic.stall_began < when < mic.stall_ended]
    longest, last_growth, last_size = 0.0, during[0][0], during[0][1]
    for when, size in during:
        if size > last_size:
            last_growth, last_size = when, size
        longest = max(longest, when - last_growth)
    grown = during[-1][1] - during[0][1]
    print(f"conference during the stall: speaker grew {grown} bytes in "
          f"{during[-1][0] - during[0][0]:.2f} s, longest pause {longest * 1000:.0f} ms")
    assert longest < 0.5, f"the speaker stopped for {longest:.2f} s"
    assert grown >= 0.5 * 16000 * (during[-1][0] - during[0][0])


def _runs(flags):
    """[(flag, length)] of consecutive equal flags."""
    runs = []
    for flag in flags:
        if runs and runs[-1][0] == flag:
            runs[-1][1] += 1
        else:
            runs.append([flag, 1])
    return [tuple(run) for run in runs]


@pytest.mark.peers
def test_a_stalling_microphone_mid_call_keeps_the_rtp_pacing(tmp_path, baresip_factory):
    """The firmware on the Pi HAL, its microphone a named pipe read by libasound's `file`
    plugin: baresip calls it, the pipe delivers a 1 kHz tone for 2.5 s, stops for 3 s, and
    delivers 2 s more. On the wire (a loopback capture) the station's RTP towards baresip keeps
    its 20 ms pacing throughout (no interval over two frames plus the loaded machine's
    margin, sequence numbers continuous): tone, about 3 s of silence, then the tone again.
    The device is paced (the pipe's writer is its clock), as a real card is: the media thread
    then reads through its own capture thread, so this call also held its pacing before the
    HAL's capture thread; what the HAL's thread adds is tested on read_frame itself above."""
    from firmware.codecs.g711 import CODECS
    from tests.hal.alsa_card import write_card
    from tests.integration.helpers import Firmware, LiveCapture, station_config
    from tests.integration.test_calls_sipp import (
        RTP_RANGE,
        free_rtp_range,
        rtp_stream,
        station_media_ports,
    )

    if not ALSA_CONF.exists():
        pytest.skip(f"no {ALSA_CONF}: libasound's own configuration is missing")
    card = tmp_path / "card"
    mic = StallingMic(tmp_path / "mic.fifo", before_s=2.5, stall_s=3.0, after_s=2.0)
    env = write_card(card, rate=8000, mic_pipe=mic.path)
    del env["DOORLINE_ALSA_UNTIMED"]  # the pipe's writer is the microphone's clock
    config = station_config(None)
    low = free_rtp_range()
    config["media"] = {"srtp": "off", "codecs": ["PCMU"],
                       "rtp_ports": f"{low}-{low + RTP_RANGE - 1}"}
    config["answer"] = {"mode": "auto", "allow": ["sip:flat1@127.0.0.1"]}
    # a 10 ms period and 50 ms of buffer ([audio] period_ms, buffer_ms) on this device
    config["audio"] = {**config["audio"], "echo_cancel": False, "agc": False,
                       "period_ms": 10, "buffer_ms": 50}
    phone = baresip_factory("flat1", tone_hz=440)
    mic.start()  # holds the pipe open, so the plugin's open() never waits for a writer
    station = Firmware(tmp_path / "station", config, board=card / "board.toml", env=env).start()
    try:
        station.wait_log(r"listening on", timeout=15)
        with LiveCapture(tmp_path / "stall.pcap", expression=f"udp and (portrange {low}-"
                         f"{low + RTP_RANGE - 1} or port {station.port})") as capture:
            phone.dial(f"sip:door@127.0.0.1:{station.port}")
            phone.wait_event("CALL_ESTABLISHED", 10)
            mic._thread.join(12)  # the writer's whole plan: 2.5 s, 3 s stall, 2 s
            time.sleep(0.3)
            phone.hangup()
            phone.wait_event("CALL_CLOSED", 5)
            station.wait_log(r"call \S+ ended", timeout=5)
    finally:
        station.kill()
        mic.stop()
        print(f"--- firmware log (tail) ---\n{station.log[-3000:]}")
    assert ("audio buffers: capture 80/400 frames at 8000 Hz (50 ms), playback 80/400 frames "
            "at 8000 Hz (50 ms)") in station.log
    packets = capture.packets()
    ports = station_media_ports(packets, station)
    assert len(ports) == 1, ports
    stream = rtp_stream(packets, src_port=ports.pop())
    times = [ts for ts, _ in stream]
    intervals = [b - a for a, b in zip(times, times[1:], strict=False)]
    sequence_breaks = sum((b[1][2] - a[1][2]) & 0xFFFF != 1
                          for a, b in zip(stream, stream[1:], strict=False))
    toned = []
    for _, rtp in stream:
        samples = pcm_to_samples(CODECS["PCMU"].decode(rtp[5]))
        power = mean_square(samples)
        toned.append(power > 1e5 and goertzel_power(samples, 1000, 8000) > 0.8 * power)
    runs = _runs(toned)
    p99 = sorted(intervals)[len(intervals) * 99 // 100]
    print(f"stalling microphone: {len(stream)} packets, largest interval "
          f"{max(intervals) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, sequence breaks "
          f"{sequence_breaks}, runs (tone, packets) {runs}")
    assert max(intervals) <= 2 * 0.020 + 0.025, f"an RTP gap of {max(intervals):.3f} s"
    assert sequence_breaks == 0
    # tone, then the stall's silence (3 s = 150 packets), then the tone again
    silent_at, silent = max(((i, length) for i, (flag, length) in enumerate(runs) if not flag
                             and 0 < i < len(runs) - 1), key=lambda run: run[1])
    assert 120 <= silent <= 170, runs
    # (the first second or so of the pipe is read before the media thread's first tick)
    assert sum(length for flag, length in runs[:silent_at] if flag) >= 40, runs
    assert sum(length for flag, length in runs[silent_at:] if flag) >= 80, runs
    assert len(stream) >= 0.9 * 50 * (times[-1] - times[0])  # in real time, not behind it


# -- a kernel loopback card (snd-aloop): a device with a real clock ---------------------------

def _loopback_card():
    """The card number of an snd-aloop `Loopback` card, loading the module if it can."""
    cards = pathlib.Path("/proc/asound/cards")
    if not cards.exists() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "snd-aloop"], capture_output=True, timeout=30)
    if not cards.exists():
        pytest.skip("no kernel loopback card: this kernel has no sound support (/proc/asound "
                    "is missing) or snd-aloop cannot be loaded here (no modprobe, or not root)")
    for line in cards.read_text().splitlines():
        if "Loopback" in line and line.split()[0].isdigit():
            return int(line.split()[0])
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "snd-aloop"], capture_output=True, timeout=30)
        for line in cards.read_text().splitlines():
            if "Loopback" in line and line.split()[0].isdigit():
                return int(line.split()[0])
    pytest.skip("snd-aloop is not loaded and `modprobe snd-aloop` did not load it")


def test_overrun_and_underrun_on_a_clocked_loopback_card(monkeypatch):
    """On snd-aloop (playback into subdevice 0 comes out of capture device 1): a stalled reader
    overruns the capture and a stalled writer underruns the playback; both are counted and the
    tone flows again afterwards without a reopen."""
    card = _loopback_card()
    audio = AlsaAudio(AudioSpec(capture=f"plughw:{card},1,0", playback=f"plughw:{card},0,0",
                                rate=8000))
    stream = audio.open(rate=8000, frame_ms=20)
    tone = _tone(1000, 8000, seconds=0.02)

    def talk(seconds, read=True, write=True):
        got = []
        for _ in range(int(seconds / 0.02)):
            began = time.monotonic()
            if write:
                stream.write_frame(tone)
            if read:
                frame = stream.read_frame()
                if frame is not None:
                    got.append(frame)
            time.sleep(max(0.0, 0.02 - (time.monotonic() - began)))
        return got

    try:
        talk(0.5)
        xruns = stream.stats["xruns"]
        talk(0.5, read=False)  # capture overruns: 4 periods of buffer, 25 frames not read
        talk(0.5, write=False)  # playback underruns
        after = talk(1.0)
    finally:
        audio.close()
    assert stream.stats["xruns"] > xruns, stream.stats
    assert stream.stats["reopens"] == 0, stream.stats
    samples = pcm_to_samples(b"".join(after[-25:]))
    assert len(samples) >= 20 * 160
    assert goertzel_power(samples, 1000, 8000) > 0.8 * mean_square(samples)


# -- a clocked card in user space (tests/hal/clocked_pcm.c): real overruns and underrun -------

CLOCK_PLUGIN_SOURCE = pathlib.Path(__file__).with_name("clocked_pcm.c")


def _build_plugin(tmp_path_factory, source, library, what):
    """The directory holding `library`, built from `source` against this machine's libasound
    (the plugin SDK headers come with libasound2-dev, a test-only package: the firmware itself
    needs only libasound2)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip(f"no C compiler (cc) to build {what} ({source.name})")
    if not pathlib.Path("/usr/include/alsa/pcm_external.h").exists():
        pytest.skip(f"no alsa/pcm_external.h: install libasound2-dev to build {what}")
    directory = tmp_path_factory.mktemp(library.split(".")[0])
    built = subprocess.run([compiler, "-shared", "-fPIC", "-DPIC", "-O2", "-Wall", "-o",
                            os.fspath(directory / library), os.fspath(source), "-lasound", "-lm"],
                           capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    return directory


@pytest.fixture(scope="session")
def clock_plugin(tmp_path_factory):
    """The directory holding libasound_module_pcm_doorline_clock.so (tests/hal/clocked_pcm.c)."""
    return _build_plugin(tmp_path_factory, CLOCK_PLUGIN_SOURCE,
                         "libasound_module_pcm_doorline_clock.so", "the test clock PCM")


def clock_card_config(plugin_dir, capture="clockmic", playback="clockspeaker", hz=1000,
                      capture_options=""):
    """ALSA configuration text: `capture` (a `hz` tone) and `playback` on the test clock;
    `capture_options`: more fields of the capture PCM (`open_delay_ms 2500`, ...)."""
    return (f'pcm_type.doorline_clock {{ lib "{plugin_dir}/libasound_module_pcm_doorline_clock'
            f'.so" }}\npcm.{capture} {{ type doorline_clock hz {hz} {capture_options} }}\n'
            f"pcm.{playback} {{ type doorline_clock }}\n")


def test_overrun_and_underrun_on_a_clocked_user_space_card(monkeypatch, tmp_path, clock_plugin,
                                                            caplog):
    """On the test clock PCM (libasound's ioplug, its pointer on CLOCK_MONOTONIC): 0.5 s
    without reading overruns the capture, 0.5 s without writing underruns the playback; the
    real libasound reports both (-EPIPE), the HAL counts them, snd_pcm_recover restarts
    the PCM, and the tone flows again without a reopen. Steady talking does not underrun:
    the playback's first write is a period of silence (the cushion)."""
    _use_config(monkeypatch, tmp_path, clock_card_config(clock_plugin))
    audio = AlsaAudio(AudioSpec(capture="clockmic", playback="clockspeaker", rate=8000))
    stream = audio.open(rate=8000, frame_ms=20)
    tone = _tone(1000, 8000, seconds=0.02)

    def talk(seconds, read=True, write=True):
        got = []
        began = time.monotonic()
        for tick in range(int(seconds / 0.02)):
            if write:
                stream.write_frame(tone)
            if read:
                frame = stream.read_frame()
                if frame is not None:
                    got.append(frame)
            pause = began + (tick + 1) * 0.02 - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        return got

    caplog.set_level("INFO", logger="hal.pi")
    try:
        steady = talk(1.0)
        steady_xruns = stream.stats["xruns"]
        talk(0.5, read=False)  # capture overruns: 4 periods of buffer, 25 frames not read
        talk(0.5, write=False)  # playback underruns
        after = talk(1.0)
    finally:
        audio.close()
    overruns = sum("overrun" in r.getMessage() for r in caplog.records)
    underruns = sum("underrun" in r.getMessage() for r in caplog.records)
    print(f"clock card: {len(steady)} frames in the first second, xruns then {steady_xruns}, "
          f"after the pauses {stream.stats} ({overruns} overruns, {underruns} underruns)")
    assert len(steady) >= 40
    assert overruns >= 1 and underruns >= 1, stream.stats
    assert stream.stats["xruns"] >= steady_xruns + 2
    assert stream.stats["reopens"] == 0, stream.stats
    samples = pcm_to_samples(b"".join(after[-25:]))
    assert len(samples) >= 20 * 160
    toned = sum(goertzel_power(pcm_to_samples(f), 1000, 8000) > 0.9 * mean_square(
        pcm_to_samples(f)) > 0 for f in after[-25:])
    assert toned >= 0.9 * len(after[-25:])


@pytest.mark.peers
def test_a_call_survives_xruns_when_the_station_stalls(tmp_path, baresip_factory, clock_plugin):
    """The firmware on the Pi HAL with the test clock PCM as a 48 kHz card (converted in
    libasound by speexrate, as a USB codec is): baresip calls it, and mid-call the station
    process is stopped for 0.4 s (SIGSTOP/SIGCONT by its PID: a scheduling stall, as under a
    load spike on a Pi Zero). Its sound card overruns and underruns for real; the station logs
    both, reopens nothing, and the call goes on: baresip hears the station's 1 kHz tone after
    the stall as before it."""
    import signal

    from tests.hal.alsa_card import write_card
    from tests.integration.helpers import Firmware, station_config
    from tests.peers.audio import read_wav

    if not ALSA_CONF.exists():
        pytest.skip(f"no {ALSA_CONF}: libasound's own configuration is missing")
    card = tmp_path / "card"
    env = write_card(card, rate=48000, seconds=0.1)
    (card / "asound.conf").write_text(clock_card_config(clock_plugin, "door_mic", "door_speaker"))
    del env["DOORLINE_ALSA_UNTIMED"]  # this card has a clock
    config = station_config(None)
    config["answer"] = {"mode": "auto", "allow": ["sip:flat1@127.0.0.1"]}
    config["audio"] = {**config["audio"], "echo_cancel": False, "agc": False}
    phone = baresip_factory("flat1", tone_hz=440)
    station = Firmware(tmp_path / "station", config, board=card / "board.toml", env=env).start()
    try:
        station.wait_log(r"listening on", timeout=15)
        phone.dial(f"sip:door@127.0.0.1:{station.port}")
        phone.wait_event("CALL_ESTABLISHED", 10)
        time.sleep(2.0)
        os.kill(station.pid, signal.SIGSTOP)
        time.sleep(0.4)
        os.kill(station.pid, signal.SIGCONT)
        stalled_at = 2.0
        time.sleep(2.5)
        phone.hangup()
        phone.wait_event("CALL_CLOSED", 5)
        station.wait_log(r"call \S+ ended", timeout=5)
        phone.stop()
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-3000:]}")
    overruns = station.log.count("overrun (")
    underruns = station.log.count("underrun (")
    heard, rate = read_wav(phone.recordings("dec")[-1])
    windows = [heard[i:i + rate // 10] for i in range(0, len(heard) - rate // 10 + 1, rate // 10)]
    toned = [goertzel_power(w, 1000, rate) > 0.5 * mean_square(w) > 1e-4 for w in windows]
    stall = int(stalled_at * 10)
    before, after = toned[5:stall], toned[stall + 10:stall + 25]
    print(f"station stalled 0.4 s: {overruns} overruns, {underruns} underruns logged; 1 kHz in "
          f"{sum(before)}/{len(before)} windows before, {sum(after)}/{len(after)} after")
    assert overruns >= 1 and underruns >= 1
    assert "reopened" not in station.log
    assert len(after) >= 10 and sum(after) >= 0.8 * len(after)
    assert sum(before) >= 0.8 * len(before)


# -- a sound card whose open blocks: the station keeps answering -----------------------------

OPEN_STALL_S = 2.5
ADMIN_PASSWORD = "Pi-Station-Probe-7731"


def _sip_request(method, target, host, port, call_id, tag, body=""):
    lines = [f"{method} {target} SIP/2.0",
             f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{os.urandom(6).hex()};rport",
             "Max-Forwards: 70", f"From: <sip:sipp@127.0.0.1>;tag={tag}", f"To: <{target}>",
             f"Call-ID: {call_id}", f"CSeq: 1 {method}"]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class PiStation:
    """The firmware on the Pi HAL with the test clock PCM at 8 kHz as its card (`capture_options`
    for the microphone), direct-IP, auto-answering `sip:sipp@127.0.0.1`; its web API ready
    (admin password set) after `start()`. `web(method, path, body)` -> (status, JSON or None);
    `invite(sock)` sends a raw INVITE from a bound UDP socket."""

    def __init__(self, tmp_path, clock_plugin, capture_options="", audio=None):
        from tests.hal.alsa_card import write_card
        from tests.integration.helpers import Firmware, station_config

        if not ALSA_CONF.exists():
            pytest.skip(f"no {ALSA_CONF}: libasound's own configuration is missing")
        card = tmp_path / "card"
        env = write_card(card, rate=8000, seconds=0.1)
        (card / "asound.conf").write_text(clock_card_config(
            clock_plugin, "door_mic", "door_speaker", capture_options=capture_options))
        del env["DOORLINE_ALSA_UNTIMED"]  # this card has a clock
        config = station_config(None)
        config["answer"] = {"mode": "auto", "allow": ["sip:sipp@127.0.0.1"]}
        config["audio"] = {**config["audio"], "echo_cancel": False, "agc": False,
                           **(audio or {})}
        host, port = config["web"]["listen"].rsplit(":", 1)
        self.web_address = (host, int(port))
        self.fw = Firmware(tmp_path / "station", config, board=card / "board.toml", env=env)

    def start(self):
        self.fw.start()
        self.fw.wait_log(r"listening on", timeout=15)
        self.fw.wait_log(r"web page on http://", timeout=15)
        assert self.web("POST", "/api/setup", {"password": ADMIN_PASSWORD}, auth=False)[0] == 200
        assert self.web("GET", "/api/status")[0] == 200  # the login check is cached from here
        return self

    def web(self, method, path, body=None, auth=True):
        import base64
        import http.client
        import json

        connection = http.client.HTTPConnection(*self.web_address, timeout=10)
        headers = {"Host": "localhost"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if auth:
            token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        try:
            connection.request(method, path, body=None if body is None else
                               json.dumps(body).encode(), headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, json.loads(data) if data.startswith(b"{") else None
        finally:
            connection.close()

    def invite(self, sock):
        from tests.integration.helpers import raw_offer

        host, port = sock.getsockname()
        target = f"sip:door@127.0.0.1:{self.fw.port}"
        sock.sendto(_sip_request("INVITE", target, host, port, os.urandom(8).hex(),
                                 os.urandom(4).hex(), raw_offer(host, port)),
                    ("127.0.0.1", self.fw.port))

    def _reply(self, sock, request, status):
        """A response to `request` (text) echoing its dialog headers, or its ACK for a 200."""
        head = [line for line in request.split("\r\n")
                if line.lower().startswith(("via:", "from:", "to:", "call-id:", "cseq:"))]
        if status == "ACK":
            host, port = sock.getsockname()
            head = [f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{os.urandom(6).hex()}"] + [
                line.replace(" INVITE", " ACK") for line in head if not line.startswith("Via")]
            first = f"ACK sip:door@127.0.0.1:{self.fw.port} SIP/2.0"
        else:
            first = f"SIP/2.0 {status}"
        sock.sendto(("\r\n".join([first, *head, "Content-Length: 0"]) + "\r\n\r\n").encode(),
                    ("127.0.0.1", self.fw.port))

    def call(self, sock):
        """INVITE, wait for the 200 (auto-answer) and ACK it."""
        from tests.integration.helpers import receive

        self.invite(sock)
        ok = receive(sock, 5, "SIP/2.0 200")
        assert ok is not None, f"no 200 to the INVITE{self.fw.log[-3000:]}"
        self._reply(sock, ok, "ACK")

    def hang_up(self, sock):
        """POST /api/hangup and answer the station's BYE."""
        from tests.integration.helpers import receive

        assert self.web("POST", "/api/hangup", {})[0] == 200
        bye = receive(sock, 5, "BYE ")
        assert bye is not None, f"no BYE{self.fw.log[-3000:]}"
        self._reply(sock, bye, "200 OK")

    def options(self, sock):
        host, port = sock.getsockname()
        target = f"sip:door@127.0.0.1:{self.fw.port}"
        sock.sendto(_sip_request("OPTIONS", target, host, port, os.urandom(8).hex(),
                                 os.urandom(4).hex()), ("127.0.0.1", self.fw.port))


@pytest.mark.peers
def test_a_sound_card_that_blocks_on_open_does_not_freeze_the_station(tmp_path, clock_plugin):
    """The firmware on the Pi HAL; its microphone (the test clock PCM) takes 2.5 s to open, as
    a busy hw device or a hanging plugin does. A call comes in (a raw UDP INVITE, auto-answered)
    and the HAL opens the card for it; while that open is stuck, the station still answers SIP
    OPTIONS within 200 ms (the slowest of them within 500 ms) and its web API
    (GET /api/status) within a second, each probed about ten times during the stall. With
    pyalsaaudio, which held the GIL inside snd_pcm_open, the whole process froze: the first
    OPTIONS took 4.5 s. And the call itself goes on: the HAL opens on a thread of its own and
    the media thread waits for it OPEN_WAIT_S at most, so the caller gets the station's RTP
    during the rest of the stall."""
    import socket

    from hal.pi import OPEN_WAIT_S
    from tests.integration.helpers import receive

    mark = tmp_path / "opens.txt"
    station = PiStation(tmp_path, clock_plugin, capture_options=(
        f'open_delay_ms {int(OPEN_STALL_S * 1000)} open_mark "{mark}"'))
    caller, rtp = _socket_pair()  # the offer's RTP port is the caller's + 1
    prober = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip_probes, web_probes, rtp_seen = [], [], []

    def drain_rtp():
        while True:
            try:
                rtp.recv(2048)
            except BlockingIOError:
                return
            rtp_seen.append(time.monotonic())

    try:
        station.start()
        assert not mark.exists(), "the card was opened before the call"
        prober.bind(("127.0.0.1", 0))
        station.invite(caller)
        deadline = time.monotonic() + 10
        while not (mark.exists() and mark.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mark.exists(), f"the card was never opened{station.fw.log[-3000:]}"
        opened_at = float(mark.read_text().split()[0])
        while time.monotonic() < opened_at + OPEN_STALL_S - 0.4:
            sent = time.monotonic()
            station.options(prober)
            answer = receive(prober, OPEN_STALL_S + 2, "SIP/2.0 200")
            sip_probes.append((sent - opened_at, time.monotonic() - sent, answer is not None))
            sent = time.monotonic()
            status, _ = station.web("GET", "/api/status")
            web_probes.append((sent - opened_at, time.monotonic() - sent, status))
            time.sleep(0.2)
            drain_rtp()
    finally:
        caller.close()
        rtp.close()
        prober.close()
        station.fw.kill()
        print(f"--- firmware log (tail) ---\n{station.fw.log[-3000:]}")
    print("during the open's stall (s after it began, s to answer): SIP OPTIONS "
          + ", ".join(f"{at:.2f}: {took * 1000:.0f} ms" for at, took, _ in sip_probes)
          + "; GET /api/status "
          + ", ".join(f"{at:.2f}: {took * 1000:.0f} ms" for at, took, _ in web_probes))
    assert all(at < OPEN_STALL_S for at, _, _ in sip_probes + web_probes)  # sent in the stall
    assert len(sip_probes) >= 2 and all(ok for _, _, ok in sip_probes), sip_probes
    assert all(status == 200 for _, _, status in web_probes), web_probes
    # 200 ms for SIP (measured 1-3 ms); the margin for a loaded 2-core machine's scheduler is
    # on the slowest probe only, which is still far from the 2.5 s stall
    sip_times = sorted(took for _, took, _ in sip_probes)
    assert sip_times[len(sip_times) // 2] < 0.2 and sip_times[-1] < 0.5, sip_probes
    assert max(took for _, took, _ in web_probes) < 1.0, web_probes
    # RTP while the microphone is still opening (50 packets/s; drained every ~0.2 s)
    assert OPEN_WAIT_S <= 0.5
    window = (opened_at + 1.0, opened_at + OPEN_STALL_S - 0.4)
    during = [t for t in rtp_seen if window[0] <= t <= window[1]]
    print(f"RTP from the station: {len(rtp_seen)} packets, {len(during)} drained between "
          f"{window[0] - opened_at:.1f} and {window[1] - opened_at:.1f} s into the stall")
    assert len(during) >= 0.5 * 50 * (window[1] - window[0]), (len(during), len(rtp_seen))


def _socket_pair():
    """Two bound loopback UDP sockets on ports p and p + 1 (SIP and the offer's RTP)."""
    import socket

    for _ in range(50):
        first = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        first.bind(("127.0.0.1", 0))
        second = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            second.bind(("127.0.0.1", first.getsockname()[1] + 1))
        except OSError:
            first.close()
            second.close()
            continue
        second.setblocking(False)
        return first, second
    raise AssertionError("no two consecutive free UDP ports on loopback")


@pytest.mark.peers
def test_period_and_buffer_saved_through_the_api_apply_to_the_next_call(tmp_path, clock_plugin):
    """`[audio] period_ms` / `buffer_ms` changed by `PUT /api/config` while the station runs
    (no restart, same process): the first call's card was granted 20/80 ms (160/640 frames at
    8 kHz), the next call's is granted 10/50 ms (80/400 frames), as the HAL's `audio buffers:`
    log line reports for each stream it opens."""
    import socket

    station = PiStation(tmp_path, clock_plugin)
    granted = []
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        station.start()
        pid = station.fw.pid
        sock.bind(("127.0.0.1", 0))
        for change in (None, {"audio": {"period_ms": 10, "buffer_ms": 50}}):
            if change is not None:
                status, _ = station.web("PUT", "/api/config", change)
                assert status == 200
                saved = station.web("GET", "/api/config")[1]["audio"]
                assert (saved["period_ms"], saved["buffer_ms"]) == (10, 50)
            mark = station.fw.log_offset()
            station.call(sock)
            line = station.fw.wait_log(r"audio buffers: (.*)", timeout=5, since=mark)
            granted.append(line.group(1))
            station.hang_up(sock)
            station.fw.wait_log(r"call \S+ ended", timeout=5, since=mark)
        assert station.fw.pid == pid and station.fw.alive
    finally:
        sock.close()
        station.fw.kill()
        print(f"--- firmware log (tail) ---\n{station.fw.log[-3000:]}")
    print(f"granted before and after the save: {granted}")
    assert granted == [
        "capture 160/640 frames at 8000 Hz (80 ms), playback 160/640 frames at 8000 Hz (80 ms)",
        "capture 80/400 frames at 8000 Hz (50 ms), playback 80/400 frames at 8000 Hz (50 ms)"]


# -- the speaker volume on a real libasound mixer ---------------------------------------------

@pytest.fixture(scope="session")
def mixer_plugin(tmp_path_factory):
    """The directory holding libasound_module_ctl_doorline_mixer.so (tests/hal/mixer_ctl.c):
    a control device in user space with a `Speaker` playback volume, 0..63."""
    return _build_plugin(tmp_path_factory, pathlib.Path(__file__).with_name("mixer_ctl.c"),
                         "libasound_module_ctl_doorline_mixer.so", "the test mixer")


def test_speaker_volume_on_the_cards_mixer_through_libasound(monkeypatch, tmp_path,
                                                             mixer_plugin):
    """issue 15 on the real snd_mixer API (hal/libasound.py): the playback card's control
    device has a `Speaker` volume (0..63); set_volume takes it and sets both channels to that
    percentage of the range (50 -> 32, 130 -> 63, 0 -> 0)."""
    writes = tmp_path / "mixer-writes.txt"
    _use_config(monkeypatch, tmp_path, f"""
ctl_type.doorline_mixer {{ lib "{mixer_plugin}/libasound_module_ctl_doorline_mixer.so" }}
ctl.mixcard {{ type doorline_mixer file "{writes}" max 63 }}
pcm.mixcard {{ type file slave.pcm "null" file "/dev/null" format "raw" }}
""")
    audio = AlsaAudio(AudioSpec(capture="mixcard", playback="mixcard", rate=8000))
    levels = []
    for percent in (50, 130, 0):
        assert audio.set_volume(percent) is True
        levels.append(writes.read_text().splitlines()[-1])
    assert levels == ["32 32", "63 63", "0 0"]
