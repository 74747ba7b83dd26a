"""hal.pi ALSA audio against a fake of hal/libasound.py (AlsaAudio's `alsa=`): framing,
resampling, stereo fallback, xrun recovery, unplug/replug with back-off, and bounded waits (a
fake clock, no real sleeping). tests/hal/test_alsa_libasound.py runs the real library."""

import errno
import types
from array import array
from collections import deque

import pytest

from hal.board import AudioSpec
from hal.pi import BACKOFF_MAX_S, XRUN_LIMIT, AlsaAudio

EPIPE = -errno.EPIPE


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        assert 0 <= seconds <= 1.0, "the HAL must never ask for a long sleep"
        self.now += seconds
        self.slept += seconds


class FakeSoundCard:
    """Builds a module object that looks like hal/libasound.py and records what the HAL did."""

    def __init__(self, level=1000, channels_supported=(1, 2)):
        self.level = level
        self.present = True
        self.channels_supported = list(channels_supported)
        self.reads = deque()  # scripted read() results; a live period when empty
        self.write_results = deque()  # scripted write() results; all accepted when empty
        self.opened = []
        self.open_attempts = 0
        self.written = []
        module = types.ModuleType("fake_libasound")

        class AlsaError(Exception):
            def __init__(self, what, code):
                super().__init__(what)
                self.code = code

        module.AlsaError = AlsaError
        module.open_pcm = self._open
        module.has_pcm = lambda name: False  # no speexrate: the Python conversion path
        self.module = module

    def _open(self, device, capture, rate, period_frames, periods, channels):
        self.open_attempts += 1
        if not self.present:
            raise self.module.AlsaError(f"cannot open {device!r}", -errno.ENOENT)
        taken = next((c for c in channels if c in self.channels_supported), None)
        if taken is None:
            raise self.module.AlsaError(f"none of {channels} channels", -errno.EINVAL)
        pcm = FakePcm(self, capture, device, rate, taken, period_frames, periods, channels)
        self.opened.append(pcm)
        return pcm

    def capture_pcms(self):
        return [p for p in self.opened if p.capture]


class FakePcm:
    def __init__(self, card, capture, device, rate, channels, periodsize, periods, asked):
        self.card = card
        self.capture = capture
        self.device = device
        self.rate = rate
        self.channels = channels
        self.periodsize = periodsize
        self.periods = periods
        self.asked = asked
        self.closed = False

    def granted(self):
        return {"rate": self.rate, "period_size": self.periodsize,
                "buffer_size": self.periodsize * self.periods, "channels": self.channels}

    def poll_descriptors(self):
        return []

    def _check(self):
        if self.closed or not self.card.present:
            raise self.card.module.AlsaError("No such device", -errno.ENODEV)

    def read(self):
        self._check()
        if self.card.reads:
            return self.card.reads.popleft()
        frame = array("h", [self.card.level] + [0] * (self.channels - 1)) * self.periodsize
        return self.periodsize, frame.tobytes()

    def write(self, data):
        self._check()
        assert len(data) % (2 * self.channels) == 0
        if self.card.write_results:
            return self.card.write_results.popleft()
        self.card.written.append((self.channels, data))
        return len(data) // (2 * self.channels)

    def close(self):
        self.closed = True


@pytest.fixture
def card():
    return FakeSoundCard()


@pytest.fixture
def clock():
    return FakeClock()


def open_stream(card, clock, rate=48000):
    spec = AudioSpec(capture="plughw:CARD=Device,DEV=0", playback="default", rate=rate)
    # inline reads: the fake clock drives every wait (the capture thread's waits are real)
    return AlsaAudio(spec, clock=clock, sleep=clock.sleep, reader_thread=False,
                     alsa=card.module).open(rate=8000, frame_ms=20)


def level(frame):
    samples = array("h")
    samples.frombytes(frame)
    return sum(samples) / len(samples)


def test_capture_opens_device_by_name_with_20ms_periods_and_resamples(card, clock):
    stream = open_stream(card, clock)
    capture = card.capture_pcms()[0]
    assert (capture.device, capture.rate, capture.channels, capture.periodsize) == (
        "plughw:CARD=Device,DEV=0", 48000, 1, 960)
    frames = [stream.read_frame() for _ in range(10)]
    assert all(len(frame) == 320 for frame in frames)
    assert level(frames[-1]) == pytest.approx(1000, rel=0.05)  # DC survives 48k -> 8k
    assert clock.slept == 0  # data was ready every time


def test_44k1_device(card, clock):
    stream = open_stream(card, clock, rate=44100)
    assert card.capture_pcms()[0].periodsize == 882
    frames = [stream.read_frame() for _ in range(10)]
    assert all(len(frame) == 320 for frame in frames)


def test_stereo_only_device_is_downmixed(clock):
    card = FakeSoundCard(level=2000, channels_supported=(2,))
    stream = open_stream(card, clock, rate=8000)
    (capture,) = card.capture_pcms()
    assert capture.asked == (1, 2)  # mono if the device can, else stereo, in one open
    assert capture.channels == 2
    assert level(stream.read_frame()) == 1000  # (2000 + 0) / 2
    stream.write_frame(array("h", [500] * 160).tobytes())
    channels, data = card.written[-1]
    assert channels == 2 and data[:4] == array("h", [500, 500]).tobytes()


def test_single_overrun_is_counted_and_capture_continues(card, clock):
    stream = open_stream(card, clock, rate=8000)
    card.reads.append((EPIPE, b""))
    frame = stream.read_frame()
    assert frame is not None and level(frame) == 1000
    assert stream.stats == {"xruns": 1, "reopens": 0, "dropped": 0}
    assert len(card.capture_pcms()) == 1


def test_repeated_overruns_reopen_the_pcm(card, clock):
    stream = open_stream(card, clock, rate=8000)
    card.reads.extend([(EPIPE, b"")] * XRUN_LIMIT)
    results = [stream.read_frame() for _ in range(20)]
    assert results[0] is None  # stuck PCM dropped, nothing to give this time
    assert results[-1] is not None and level(results[-1]) == 1000
    old, new = card.capture_pcms()
    assert old.closed and not new.closed
    assert stream.stats["reopens"] == 1 and stream.stats["xruns"] == XRUN_LIMIT


def test_unplug_and_replug_with_bounded_backoff(card, clock):
    stream = open_stream(card, clock, rate=8000)
    assert stream.read_frame() is not None
    card.present = False
    attempts_before = card.open_attempts
    started = clock.now
    while clock.now - started < 10.0:  # ten simulated seconds unplugged
        assert stream.read_frame() is None
        stream.write_frame(bytes(320))  # playback must not raise either
    attempts = card.open_attempts - attempts_before
    # Back-off (0.1 s doubling to 5 s) keeps retries few instead of one per frame (500).
    assert 8 <= attempts <= 16  # capture and playback each: 0.1, 0.2, ... 3.2 s
    card.present = True
    replugged = clock.now
    frame = None
    while frame is None and clock.now - replugged < BACKOFF_MAX_S + 1:
        frame = stream.read_frame()
    assert frame is not None and level(frame) == 1000
    assert stream.stats["reopens"] >= 1
    assert stream.stats["dropped"] > 0


def test_read_never_waits_long_when_device_gives_nothing(card, clock):
    stream = open_stream(card, clock, rate=8000)
    card.reads.extend([(0, b"")] * 1000)
    started = clock.now
    assert stream.read_frame() is None
    assert 0.02 <= clock.now - started <= 0.05


def test_open_with_device_missing_then_appearing(card, clock):
    card.present = False
    stream = open_stream(card, clock, rate=8000)
    assert stream.read_frame() is None
    card.present = True
    frames = [stream.read_frame() for _ in range(10)]
    assert frames[-1] is not None
    # It had never been open, so this is a first open, not a reopen.
    assert stream.stats["reopens"] == 0


def test_playback_resamples_into_whole_periods_and_drops_when_full(card, clock):
    stream = open_stream(card, clock, rate=48000)
    for _ in range(10):
        stream.write_frame(array("h", [700] * 160).tobytes())
    assert card.written, "nothing reached the device"
    assert all(len(data) == 1920 for _, data in card.written)  # 20 ms at 48 kHz, mono
    assert level(card.written[-1][1]) == pytest.approx(700, rel=0.05)
    card.write_results.extend([0] * 50)  # device buffer full
    before = stream.stats["dropped"]
    stream.write_frame(bytes(320))
    stream.write_frame(bytes(320))
    assert stream.stats["dropped"] > before


def test_playback_starts_with_a_period_of_silence_as_cushion(card, clock):
    stream = open_stream(card, clock, rate=8000)
    tone = array("h", [700] * 160).tobytes()
    stream.write_frame(tone)
    stream.write_frame(tone)
    assert [data for _, data in card.written] == [bytes(320), tone, tone]


def test_playback_underrun_is_retried_once_with_a_new_cushion(card, clock):
    stream = open_stream(card, clock, rate=8000)
    tone = array("h", [700] * 160).tobytes()
    stream.write_frame(tone)
    card.write_results.append(EPIPE)
    stream.write_frame(tone)
    assert stream.stats["xruns"] == 1 and stream.stats["dropped"] == 0
    assert [data for _, data in card.written] == [bytes(320), tone, bytes(320), tone]


def test_close_closes_both_directions(card, clock):
    stream = open_stream(card, clock, rate=8000)
    stream.close()
    assert all(pcm.closed for pcm in card.opened)


def test_volume_on_the_playback_cards_mixer_else_digital(card, clock):
    """issue 15: `set_volume` uses the first known mixer control of the playback card (True),
    and returns False (the runtime scales the samples) when the card has none."""
    set_to = []
    cards = {"hw:CARD=seeed2mic": ["Capture", "Speaker"]}

    class Mixer:
        def __init__(self, device):
            if device not in cards:
                raise card.module.AlsaError(f"no mixer on {device!r}", -errno.ENOENT)
            self.device = device

        def controls(self):
            return cards[self.device]

        def set_volume(self, control, percent):
            set_to.append((control, self.device, percent))

        def close(self):
            pass

    card.module.Mixer = Mixer
    spec = AudioSpec(capture="plughw:CARD=seeed2mic,DEV=0",
                     playback="plughw:CARD=seeed2mic,DEV=0", rate=48000)
    audio = AlsaAudio(spec, clock=clock, sleep=clock.sleep, alsa=card.module)
    assert audio.set_volume(65) is True and audio.set_volume(130) is True
    assert set_to == [("Speaker", "hw:CARD=seeed2mic", 65), ("Speaker", "hw:CARD=seeed2mic", 100)]
    assert audio.reference_delay_frames() >= 0
    bare = AlsaAudio(AudioSpec(capture="default", playback="default", rate=48000),
                     clock=clock, sleep=clock.sleep, alsa=card.module)
    assert bare.set_volume(50) is False


def test_the_hal_loads_libasound_only_when_audio_is_used():
    """issue 14/19: hal.pi (imported at start on a Pi board) leaves hal/libasound.py and its
    ctypes binding to the first stream or mixer use."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "-c", "import sys, hal.pi\n"
                             "print('hal.libasound' in sys.modules, 'alsaaudio' in sys.modules)"],
                            cwd=str(ROOT), capture_output=True, text=True, timeout=30)
    assert result.stdout.split() == ["False", "False"], result.stderr


def _blocking_capture_open(card):
    """Makes the fake's capture open wait for the returned Event (as a busy device's does)."""
    import threading

    release = threading.Event()
    real_open = card.module.open_pcm

    def slow_open(device, capture, *args):
        if capture:
            assert release.wait(5)
        return real_open(device, capture, *args)

    card.module.open_pcm = slow_open
    return release


def test_an_open_that_blocks_holds_the_stream_start_at_most_open_wait(card):
    """With the capture thread (real time), devices open on threads of their own: a capture
    open that blocks holds audio.open() OPEN_WAIT_S at most; the stream plays meanwhile, has
    no microphone, and takes the PCM over (and logs nothing twice) once the open returns."""
    import time

    from hal.pi import OPEN_WAIT_S

    release = _blocking_capture_open(card)
    audio = AlsaAudio(AudioSpec(capture="mic", playback="speaker", rate=8000), alsa=card.module)
    began = time.monotonic()
    stream = audio.open(rate=8000, frame_ms=20)
    took = time.monotonic() - began
    try:
        assert OPEN_WAIT_S - 0.05 <= took < OPEN_WAIT_S + 1.0, took
        assert list(stream.buffering) == ["playback"]
        stream.write_frame(bytes(320))
        assert card.written, "playback waited for the capture device"
        assert stream.read_frame() is None
        release.set()
        frame, deadline = None, time.monotonic() + 3
        while frame is None and time.monotonic() < deadline:
            frame = stream.read_frame()
        assert frame is not None and level(frame) == 1000
        assert sorted(stream.buffering) == ["capture", "playback"]
        assert stream.stats["reopens"] == 0
    finally:
        release.set()
        audio.close()


def test_a_stream_closed_while_its_device_opens_closes_that_pcm(card):
    import threading
    import time

    release = _blocking_capture_open(card)
    audio = AlsaAudio(AudioSpec(capture="mic", playback="speaker", rate=8000), alsa=card.module)
    stream = audio.open(rate=8000, frame_ms=20)
    stream.close()
    release.set()
    deadline = time.monotonic() + 3
    while any(t.name == "alsa-open" for t in threading.enumerate()) and \
            time.monotonic() < deadline:
        time.sleep(0.01)
    assert card.capture_pcms() and all(pcm.closed for pcm in card.opened)


def test_opens_that_never_return_are_bounded_per_device(card, caplog):
    """A device whose open hangs for good: each call's stream would leave one more thread
    stuck in it; after MAX_PENDING_OPENS such opens the HAL tries no more (it backs off and
    says why) until one returns."""
    import threading
    import time

    from hal import pi

    release = _blocking_capture_open(card)
    audio = AlsaAudio(AudioSpec(capture="hangs", playback="speaker", rate=8000), alsa=card.module)
    streams = []
    try:
        for _ in range(pi.MAX_PENDING_OPENS + 2):
            streams.append(audio.open(rate=8000, frame_ms=20))
        stuck = [t for t in threading.enumerate() if t.name == "alsa-open"]
        assert len(stuck) == pi.MAX_PENDING_OPENS
        assert pi._pending_opens == {"hangs": pi.MAX_PENDING_OPENS}
        assert any("earlier opens of it have not returned" in r.getMessage()
                   for r in caplog.records)
    finally:
        release.set()
        for stream in streams:
            stream.close()
    deadline = time.monotonic() + 3
    while pi._pending_opens and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pi._pending_opens == {}


def test_a_device_at_the_call_rate_drops_a_frame_its_full_buffer_refuses(card, clock):
    """The direct path (no conversion left to Python: one write per frame once playing) keeps
    the general path's rules: a full buffer drops the frame, the next one plays."""
    stream = open_stream(card, clock, rate=8000)
    tone = array("h", [700] * 160).tobytes()
    stream.write_frame(tone)
    card.write_results.append(0)
    stream.write_frame(tone)
    stream.write_frame(tone)
    assert stream.stats["dropped"] == 1 and stream.stats["xruns"] == 0
    assert [data for _, data in card.written] == [bytes(320), tone, tone]


def test_a_device_at_the_call_rate_joins_short_reads_into_whole_frames(card, clock):
    stream = open_stream(card, clock, rate=8000)
    first, second = array("h", [100] * 80).tobytes(), array("h", [300] * 80).tobytes()
    card.reads.extend([(80, first), (80, second), (EPIPE, b"")])
    frame = stream.read_frame()
    assert frame == first + second
    assert stream.read_frame() is not None and stream.stats["xruns"] == 1
