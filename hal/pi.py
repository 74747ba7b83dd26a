"""Raspberry Pi boards (kind = "pi"): gpiozero devices and ALSA audio through libasound (ctypes).

    PiBoard(spec, pin_factory=None)   a hal.base.Board; pin_factory defaults to gpiozero's
                                      LGPIOFactory (works on Zero 2 W, 3, 4 and 5); tests pass
                                      gpiozero.pins.mock.MockFactory.
    AlsaAudio(spec.audio, clock=time.monotonic, sleep=time.sleep, reader_thread=True, alsa=None)
        .set_buffering(period_ms, buffer_ms)   ALSA period and buffer of streams opened after
                                               ([audio] period_ms, buffer_ms; 20 and 80)
        .open(rate=8000, frame_ms=20) -> AlsaAudioStream
            read_frame() -> bytes | None   waits at most two frames, never forever, whatever
                                           libasound does (see "Capture thread" below)
            write_frame(pcm)               never blocks: a full device buffer drops the frame
            stats -> {"xruns", "reopens", "dropped"}
            buffering -> {"capture": {...}, "playback": {...}}   what libasound granted
                         (rate, period_frames, buffer_frames, latency_ms); a direction whose
                         device is away is absent

Mapping of board settings onto gpiozero:
    buttons  DigitalInputDevice(pin, pull_up, bounce_time); pull_up = false means an external
             resistor, so gpiozero gets pull_up=None and active_state = not active_low. The
             hold (hold_ms) is a one-shot timer per press (PiButton), not gpiozero's Button,
             whose hold thread wakes 10 times a second forever.
    leds     LED(pin, active_high = not active_low); patterns through LED.blink (hal.base).
    relays   OutputDevice(pin, active_high = not active_low, initial_value=False); pulses are
             timed by hal.base.Relay's threading.Timer.
    inputs   DigitalInputDevice with the same pull rules as buttons, 50 ms debounce.

Audio goes through hal/libasound.py (`alsa=`: that module, or a stand-in in the unit tests),
the only user of libasound, called through ctypes, which releases the GIL in every call: a
device whose open blocks (a busy hw PCM, a hanging plugin) holds only the thread that opens it
(an "alsa-open" thread, see "Capture thread" below), never SIP, the web page or the call's media
thread (pyalsaaudio, used before, held the GIL in snd_pcm_open and froze the whole process;
tests/hal/test_alsa_libasound.py shows it).
Each direction opens the board's ALSA device by name, S16_LE, non-blocking, with the
configured period (`[audio] period_ms`) and as many periods as fit in `[audio] buffer_ms` (at
least 2); what libasound granted is in `buffering` and in the log.  Rate conversion, downmix
and upmix run in C inside libasound whenever it can: the
device is wrapped as `speexrate:SLAVE="plug:'<device>'",RATE=<native>,CONVERTER=speexrate_medium`
(the `speexrate` PCM of Debian's libasound2-plugins; `plug` converts channels and format), opened
mono at the call rate, so Python only moves 320-byte frames.  Only where that PCM is missing (no
libasound2-plugins, or a device name with quotes) does it fall back to the old path: the device
at its native rate, mono (stereo with a Python downmix if the device offers no mono), converted
with the pure-Python firmware.codecs.resample.Resampler.  Which path is used is logged once
(INFO; a WARNING for the Python fallback); `AlsaAudioStream.conversion` names it.
DOORLINE_ALSA_RESAMPLER=python forces the fallback (for comparisons).

Volume (issue 15): `set_volume(percent)` uses the ALSA mixer of the playback card where it has
one of `MIXER_CONTROLS` (snd_mixer, the first that exists), else returns False and the
runtime scales the samples. The echo canceller's reference is delayed by
`REFERENCE_DELAY_FRAMES`: with `PERIODS` periods of buffer a written frame is heard about one
to three periods later, while a captured frame reaches read_frame up to a period after it was
heard; an estimate that errs early only uses more of the canceller's tail (to tune per board).

An overrun makes a read return -EPIPE after hal/libasound.py has already recovered the PCM
(snd_pcm_recover), so one is just
counted; several in a row mean the PCM is stuck and it is reopened.  Any ALSA error (a USB device
unplugged) closes that direction and reopens it with back-off from 0.1 s doubling to 5 s, so a
replugged device comes back within seconds without the caller noticing more than silence.
libasound is loaded only when audio is opened (or the mixer first used), so this module loads
without it.

Capture thread: a non-blocking PCM does not make every libasound plugin non-blocking.  The
`file` plugin reads its `infile` with a blocking read(), so a stalling source (a named pipe that
stops delivering; likewise a network-backed plugin whose server hangs) holds snd_pcm_readi for
the whole stall.  So each stream's capture PCM is read by its own thread ("alsa-capture"),
which is the only code touching that PCM after the open: it reads a period whenever fewer than
`READ_AHEAD_FRAMES` frames wait (so a caller that stops reading still lets a clocked device
overrun, as it would without the thread), converts, and queues; read_frame waits on that queue
for at most two frames and returns None, so the call's media clock never waits for libasound.
While the device stays stalled, read_frame paces its caller like a live device instead: None
one frame after the previous None (at once for a caller that asks once a frame).  ctypes
releases the GIL inside snd_pcm_readi.  close() does not wait for a read stuck in a plugin: the
thread closes its PCM once the read returns.  Opens, too, run on a thread of their own
("alsa-open", one per open, see AlsaPcm): a stream's start waits `OPEN_WAIT_S` (0.5 s) at most
for its devices, then the call goes on without the direction still opening (silence captured,
frames to play dropped) until it has opened.  An open that never returns keeps its thread and
leaves that direction away for the rest of the stream; at most `MAX_PENDING_OPENS` opens of one
device run at a time (more are refused like a missing device, with the back-off).
`reader_thread=False` reads inline (the fake-clock unit tests, tests/hal/test_alsa.py).

Bench only (docs/BENCH.md): DOORLINE_ALSA_UNTIMED=1 marks the ALSA devices as having no clock
(the bench's `file` plugin over `null` returns data at once), so the runtime paces them like the
simulator's WAV; GPIOZERO_PIN_FACTORY (gpiozero's own variable, e.g. `mock`) replaces lgpio, so
a Pi board file runs on a PC.
"""

import errno
import logging
import os
import select
import threading
import time
from typing import TYPE_CHECKING

from gpiozero import LED, DigitalInputDevice, OutputDevice

from hal.base import BLINK_TIMINGS, AudioDevice, AudioStream, Board, frame_bytes
from hal.base import Button as BaseButton
from hal.base import Input as BaseInput
from hal.base import Led as BaseLed
from hal.base import Relay as BaseRelay
from hal.pcm import FrameQueue, RateConverter, downmix, upmix

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from gpiozero.pins import Factory

    from hal.board import AudioSpec, BoardSpec, ButtonSpec, InputSpec, LedSpec, RelaySpec
    from hal.libasound import Pcm

log = logging.getLogger(__name__)

CONTACT_BOUNCE_S = 0.05
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 5.0
XRUN_LIMIT = 4  # consecutive overruns before the PCM is treated as stuck and reopened
PERIODS = 4  # periods per buffer with the default [audio] period_ms = 20, buffer_ms = 80
PERIOD_MS = 20
BUFFER_MS = 80
READ_AHEAD_FRAMES = 2  # captured frames the capture thread keeps ready for read_frame
OPEN_WAIT_S = 0.5  # a stream's start waits this long for its devices, then goes on without
MAX_PENDING_OPENS = 2  # opens of one device still running (stuck) before no more are tried
_pending_lock = threading.Lock()
_pending_opens: dict[str, int] = {}  # device name -> opens running on alsa-open threads
MIXER_CONTROLS = ("Speaker", "PCM", "Master", "Playback", "Headphone", "Digital")
REFERENCE_DELAY_FRAMES = 1
C_CONVERTER = "speexrate_medium"  # speex quality 5: flat to 3.4 kHz, alias/images below -90 dB


def converting_device(device: str, native_rate: int,
                      converter: str = C_CONVERTER) -> str | None:
    """The ALSA PCM name that converts `device` (at `native_rate`) to any rate and to mono in
    libasound, or None if the name cannot be embedded (quotes)."""
    if "'" in device or '"' in device or "\\" in device:
        return None
    return f"speexrate:SLAVE=\"plug:'{device}'\",RATE={native_rate},CONVERTER={converter}"


def c_conversion_available(alsa: "Any") -> bool:
    """True when libasound knows the `speexrate` PCM (libasound2-plugins is installed)."""
    if os.environ.get("DOORLINE_ALSA_RESAMPLER") == "python":
        return False
    try:
        return bool(alsa.has_pcm("speexrate"))
    except alsa.AlsaError:
        return False


def _libasound() -> "Any":
    """hal/libasound.py, imported at the first audio use: the HAL loads without libasound."""
    from hal import libasound

    return libasound


def describe_buffering(buffering: "dict[str, dict[str, int]]") -> str:
    """One line for the log: per direction, period and buffer as libasound granted them."""
    parts = [f"{direction} {v['period_frames']}/{v['buffer_frames']} frames at {v['rate']} Hz "
             f"({v['latency_ms']} ms)" for direction, v in sorted(buffering.items())]
    return ", ".join(parts) or "no device open yet"


def _pull_settings(spec: "ButtonSpec | InputSpec") -> tuple[bool | None, bool | None]:
    """gpiozero's (pull_up, active_state) for a button or input spec."""
    if spec.pull_up:
        return True, None
    return None, not spec.active_low


class PiButton(BaseButton):
    """A gpiozero DigitalInputDevice; the hold is timed here, not by gpiozero's Button, whose
    HoldThread wakes 10 times a second for as long as the button exists (issue 14: a station
    idles, and calls, with no wake-up it does not need). A press starts a one-shot timer of
    `hold_ms`; a release before it fires cancels it."""

    def __init__(self, spec: "ButtonSpec", factory: "Factory") -> None:
        super().__init__(spec.role)
        pull_up, active_state = _pull_settings(spec)
        self._hold_s = spec.hold_ms / 1000
        self._hold_lock = threading.Lock()
        self._hold_timer: threading.Timer | None = None
        self._device = DigitalInputDevice(spec.pin, pull_up=pull_up, active_state=active_state,
                                          bounce_time=spec.bounce_ms / 1000 or None,
                                          pin_factory=factory)
        self._device.when_activated = self._pressed
        self._device.when_deactivated = self._released

    def _pressed(self) -> None:
        self._notify("pressed")
        timer = threading.Timer(self._hold_s, self._held)
        timer.daemon = True
        with self._hold_lock:
            if self._hold_timer is not None:
                self._hold_timer.cancel()
            self._hold_timer = timer
        timer.start()

    def _released(self) -> None:
        with self._hold_lock:
            timer, self._hold_timer = self._hold_timer, None
        if timer is not None:
            timer.cancel()
        self._notify("released")

    def _held(self) -> None:
        with self._hold_lock:
            if self._hold_timer is not threading.current_thread():
                return  # released (or pressed again) meanwhile
            self._hold_timer = None
        if self._device.is_active:
            self._notify("held")

    @property
    def is_pressed(self) -> bool:
        return bool(self._device.is_active)

    def close(self) -> None:
        super().close()
        with self._hold_lock:
            timer, self._hold_timer = self._hold_timer, None
        if timer is not None:
            timer.cancel()
        self._device.close()


class PiInput(BaseInput):
    def __init__(self, spec: "InputSpec", factory: "Factory") -> None:
        super().__init__(spec.role)
        pull_up, active_state = _pull_settings(spec)
        self._device = DigitalInputDevice(spec.pin, pull_up=pull_up, active_state=active_state,
                                          bounce_time=CONTACT_BOUNCE_S, pin_factory=factory)
        self._device.when_activated = lambda: self._notify("activated")
        self._device.when_deactivated = lambda: self._notify("deactivated")

    @property
    def is_active(self) -> bool:
        return self._device.is_active

    def close(self) -> None:
        super().close()
        self._device.close()


class PiLed(BaseLed):
    def __init__(self, spec: "LedSpec", factory: "Factory") -> None:
        super().__init__(spec.role)
        self._device = LED(spec.pin, active_high=not spec.active_low, initial_value=False,
                           pin_factory=factory)

    def _show(self, pattern: str) -> None:
        if pattern == "on":
            self._device.on()
        elif pattern == "off":
            self._device.off()
        else:
            on_time, off_time, repeat = BLINK_TIMINGS[pattern]
            self._device.blink(on_time=on_time, off_time=off_time, n=repeat, background=True)

    def close(self) -> None:
        super().close()
        self._device.close()


class PiRelay(BaseRelay):
    def __init__(self, spec: "RelaySpec", factory: "Factory") -> None:
        super().__init__(spec.role)
        self._device = OutputDevice(spec.pin, active_high=not spec.active_low,
                                    initial_value=False, pin_factory=factory)

    def _drive(self, active: bool) -> None:
        if active:
            self._device.on()
        else:
            self._device.off()

    def close(self) -> None:
        super().close()
        self._device.close()


class PiBoard(Board):
    def __init__(self, spec: "BoardSpec", pin_factory: "Factory | None" = None) -> None:
        factory = pin_factory if pin_factory is not None else _default_factory()
        assert spec.audio is not None  # hal/board.py requires [audio] on a pi board
        super().__init__(
            spec,
            buttons={role: PiButton(s, factory) for role, s in spec.buttons.items()},
            leds={role: PiLed(s, factory) for role, s in spec.leds.items()},
            relays={role: PiRelay(s, factory) for role, s in spec.relays.items()},
            inputs={role: PiInput(s, factory) for role, s in spec.inputs.items()},
            audio=AlsaAudio(spec.audio),
        )


def _default_factory() -> "Factory | None":
    if os.environ.get("GPIOZERO_PIN_FACTORY"):
        return None  # gpiozero picks the factory the variable names (the bench: "mock")
    try:
        from gpiozero.pins.lgpio import LGPIOFactory

        return LGPIOFactory()
    except ImportError as error:
        raise RuntimeError(f"the lgpio library is missing ({error}); on Raspberry Pi OS "
                           "install python3-lgpio") from None


class AlsaAudio(AudioDevice):
    paced = True

    def __init__(self, spec: "AudioSpec", clock: "Callable[[], float]" = time.monotonic,
                 sleep: "Callable" = time.sleep, reader_thread: bool = True,
                 alsa: "Any" = None) -> None:
        self.spec = spec
        self._alsa = alsa
        self._clock = clock
        self._sleep = sleep
        self._reader_thread = reader_thread
        self.period_ms = PERIOD_MS
        self.buffer_ms = BUFFER_MS
        self._streams: list[AlsaAudioStream] = []
        self._logged = False
        # set_volume comes from the event loop (a saved config) and from media threads (a
        # call's start); libasound's mixer is not thread-safe, and ctypes lets the GIL go
        self._mixer_lock = threading.Lock()
        if os.environ.get("DOORLINE_ALSA_UNTIMED") == "1":
            # bench devices without a clock: the runtime paces them, and reads them inline
            # (the `file` plugin over `null` with a regular file has data at once)
            self.paced = False
            self._reader_thread = False

    def set_buffering(self, period_ms: int, buffer_ms: int) -> None:
        """ALSA period and buffer length for the streams opened from now on ([audio] period_ms,
        buffer_ms, validated by firmware/config.py); a stream already open keeps its own."""
        if (period_ms, buffer_ms) != (self.period_ms, self.buffer_ms):
            self.period_ms, self.buffer_ms = period_ms, buffer_ms
            self._logged = False  # log what libasound grants for the new settings

    def open(self, rate: int = 8000, frame_ms: int = 20) -> "AlsaAudioStream":
        stream = AlsaAudioStream(self.spec, rate, frame_ms, self._clock, self._sleep,
                                 period_ms=self.period_ms, buffer_ms=self.buffer_ms,
                                 reader_thread=self._reader_thread,
                                 alsa=self._alsa or _libasound())
        if not self._logged:
            self._logged = True
            level = logging.WARNING if stream.conversion.startswith("python") else logging.INFO
            log.log(level, "audio: %s/%s at %d Hz, calls at %d Hz, conversion: %s",
                    self.spec.capture, self.spec.playback, self.spec.rate, rate,
                    stream.conversion)
            if len(stream.buffering) == 2:
                log.info("audio buffers: %s", describe_buffering(stream.buffering))
            else:  # a device still opening (or away): logged once it has opened
                stream.log_buffers_when_open()
        self._streams = [s for s in self._streams if not s.closed]
        self._streams.append(stream)
        return stream

    def close(self) -> None:
        streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()

    def set_volume(self, percent: int) -> bool:
        with self._mixer_lock:
            found = self._mixer()
            if found is None:
                return False
            mixer, control = found
            try:
                mixer.set_volume(control, max(0, min(100, int(percent))))
            except Exception as error:  # AlsaError: the card went away
                log.warning("audio: cannot set the volume on the mixer: %s", error)
                return False
            return True

    def reference_delay_frames(self) -> int:
        return REFERENCE_DELAY_FRAMES

    def _mixer(self) -> "tuple[Any, str] | None":
        """(the playback card's mixer, the control for the speaker), found once, or None."""
        if getattr(self, "_mixer_checked", False):
            return getattr(self, "_mixer_control", None)
        self._mixer_checked = True
        self._mixer_control: tuple[Any, str] | None = None
        try:
            alsa = self._alsa or _libasound()
        except ImportError:
            return None
        card = self.spec.playback
        if "CARD=" in card:
            card = "hw:CARD=" + card.split("CARD=", 1)[1].split(",", 1)[0]
        for device in (card, "default"):
            try:
                mixer = alsa.Mixer(device)
                controls = mixer.controls()
            except Exception:  # AlsaError: no mixer device of that name, or no libasound
                continue
            for name in MIXER_CONTROLS:
                if name in controls:
                    log.info("audio: speaker volume on mixer %s of %s", name, device)
                    self._mixer_control = (mixer, name)
                    return self._mixer_control
            mixer.close()
        log.info("audio: no playback mixer; the speaker volume is applied digitally")
        return None


class AlsaPcm:
    """One direction of one ALSA device, reopened with bounded back-off when it goes away.

    `background=True` (streams with a capture thread, i.e. every real-time stream): each open
    runs on a short-lived thread ("alsa-open"), and get() hands the PCM over once it is open;
    `get(wait_s)` waits that long for it. So an open that blocks in libasound (a busy device,
    a hanging plugin) holds neither the caller nor, through ctypes, the GIL. Otherwise the open
    runs in get() itself (the fake-clock unit tests, the bench's untimed devices)."""

    def __init__(self, alsa: "Any", capture: bool, device: str, rate: int, period_frames: int,
                 clock: "Callable[[], float]", periods: int = PERIODS,
                 background: bool = False, on_open: "Callable[[], None] | None" = None) -> None:
        self.alsa = alsa
        self._background = background
        self._on_open = on_open
        self._lock = threading.Lock()  # the hand-over between the opener thread and get()
        self._opener: threading.Thread | None = None
        self._result: Pcm | str | None = None  # what the opener got: a PCM or an error
        self._shut = False
        self.capture = capture
        self.device = device
        self.rate = rate
        self.period_frames = period_frames
        self.periods = periods
        self.channels = 1
        self._granted: dict[str, int] | None = None
        self.fresh = False
        self.reopens = 0
        self._clock = clock
        self.pcm: Pcm | None = None  # the open PCM (read by the stream's per-frame fast path)
        self._retry_at = 0.0
        self._backoff = BACKOFF_MIN_S
        self._ever_opened = False

    @property
    def name(self) -> str:
        kind = "capture" if self.capture else "playback"
        return f"{kind} {self.device!r}"

    def get(self, wait_s: float = 0.0) -> "Pcm | None":
        """The open PCM, or None while the device is away and the back-off has not expired
        (or, in the background mode, while it is still opening after `wait_s` seconds)."""
        if self.pcm is not None:
            return self.pcm
        if not self._background:
            if self._clock() >= self._retry_at:
                self._finish(self._open_now())
            return self.pcm
        busy = False
        with self._lock:
            opener = self._opener
            if opener is None and not self._shut and self._clock() >= self._retry_at:
                with _pending_lock:  # bounded: an open that never returns keeps its thread
                    busy = _pending_opens.get(self.device, 0) >= MAX_PENDING_OPENS
                    if not busy:
                        _pending_opens[self.device] = _pending_opens.get(self.device, 0) + 1
                if not busy:
                    opener = self._opener = threading.Thread(
                        target=self._open_in_background, daemon=True, name="alsa-open")
                    opener.start()
        if busy:
            self.lost(f"{MAX_PENDING_OPENS} earlier opens of it have not returned")
        if opener is None:
            return None
        if wait_s > 0:
            opener.join(wait_s)
        with self._lock:
            result, self._result = self._result, None
            if result is not None:
                self._opener = None
        if result is not None:
            self._finish(result)
        return self.pcm

    def _open_now(self) -> "Pcm | str":
        """Opens the device: the PCM, or the error's text."""
        try:
            # mono, else stereo (some USB codecs offer stereo only: mixed down and copied up
            # here); the open may block in a plugin: ctypes lets the GIL go meanwhile
            return self.alsa.open_pcm(self.device, self.capture, self.rate, self.period_frames,
                                      self.periods, (1, 2))
        except self.alsa.AlsaError as error:
            return str(error)

    def _open_in_background(self) -> None:
        try:
            result = self._open_now()
        finally:
            with _pending_lock:
                _pending_opens[self.device] -= 1
                if not _pending_opens[self.device]:
                    del _pending_opens[self.device]
        with self._lock:
            if not self._shut:
                self._result = result
                return
            self._opener = None
        if not isinstance(result, str):
            result.close()  # the stream closed while its device was opening

    def _finish(self, result: "Pcm | str") -> None:
        if isinstance(result, str):
            self.lost(result)
            return
        self.pcm, self.channels = result, result.channels
        self._granted = self._read_granted(result)
        self.fresh = True  # prepared, not started: playback writes a cushion first
        if self._ever_opened:
            self.reopens += 1
            log.warning("%s reopened", self.name)
        self._ever_opened = True
        self._backoff = BACKOFF_MIN_S
        if self._on_open is not None:
            self._on_open()

    def shutdown(self) -> None:
        """Closes for good: an open still running closes its PCM when it returns."""
        with self._lock:
            self._shut = True
            result, self._result = self._result, None
        if result is not None and not isinstance(result, str):
            result.close()
        self.close()

    def lost(self, error: str) -> None:
        log.warning("%s failed (%s); retrying in %.1f s", self.name, error, self._backoff)
        self.close()
        self._retry_at = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def wait(self, pcm: "Pcm", timeout: float, sleep: "Callable") -> None:
        """Wait until the PCM is readable/writable or `timeout` seconds have passed."""
        descriptors = pcm.poll_descriptors()
        if not descriptors:
            sleep(timeout)
            return
        poller = select.poll()
        for descriptor, events in descriptors:
            poller.register(descriptor, events)
        poller.poll(max(1, int(timeout * 1000)))

    def granted(self) -> "dict[str, int] | None":
        """Rate, period and buffer (frames) libasound granted, and the latency the buffer can
        add; None while the device is away. Read once at the open, so any thread may ask
        while another one reads the PCM."""
        return self._granted if self.pcm is not None else None

    @staticmethod
    def _read_granted(pcm: "Pcm") -> "dict[str, int]":
        values = pcm.granted()
        rate, buffer = values["rate"], values["buffer_size"]
        return {"rate": rate, "period_frames": values["period_size"], "buffer_frames": buffer,
                "latency_ms": buffer * 1000 // rate}

    def close(self) -> None:
        if self.pcm is not None:
            pcm, self.pcm = self.pcm, None
            try:
                pcm.close()
            except self.alsa.AlsaError:
                pass  # an unplugged device may refuse even this; the handle is dropped anyway


def _worth_logging(xruns: int) -> bool:
    """The first ten xruns of a stream are logged, then every hundredth (bounded log)."""
    return xruns <= 10 or xruns % 100 == 0


class AlsaAudioStream(AudioStream):
    def __init__(self, spec: "AudioSpec", rate: int, frame_ms: int, clock: "Callable[[], float]",
                 sleep: "Callable", period_ms: int = PERIOD_MS, buffer_ms: int = BUFFER_MS,
                 reader_thread: bool = False, alsa: "Any" = None) -> None:
        alsa = alsa or _libasound()  # only here: the HAL must import on machines without ALSA
        self.rate = rate
        self.frame_bytes = frame_bytes(rate, frame_ms)
        self.closed = False
        self._alsa = alsa
        self._clock = clock
        self._sleep = sleep
        self._frame_s = frame_ms / 1000
        capture, playback = spec.capture, spec.playback
        open_rate = spec.rate
        if spec.rate == rate:
            self.conversion = "none (device runs at the call rate)"
        else:
            wrapped_capture = converting_device(spec.capture, spec.rate)
            wrapped_playback = converting_device(spec.playback, spec.rate)
            if wrapped_capture is not None and wrapped_playback is not None \
                    and c_conversion_available(alsa):
                capture, playback = wrapped_capture, wrapped_playback
                open_rate = rate
                self.conversion = f"libasound {C_CONVERTER} (C)"
            else:
                self.conversion = "python Resampler (install libasound2-plugins for the C path)"
        period = open_rate * period_ms // 1000
        periods = max(2, buffer_ms // period_ms)
        # With the capture thread (real time), devices open on threads of their own: a device
        # whose open blocks leaves the call's media thread running (without that direction).
        self._buffers_lock = threading.Lock()
        self._log_buffers = False
        self._capture = AlsaPcm(alsa, True, capture, open_rate, period, clock, periods,
                                background=reader_thread, on_open=self._opened)
        self._playback = AlsaPcm(alsa, False, playback, open_rate, period, clock, periods,
                                 background=reader_thread, on_open=self._opened)
        self._direct = open_rate == rate  # no conversion left to Python
        self._from_device = RateConverter(open_rate, rate)
        self._to_device = RateConverter(rate, open_rate)
        # Captured frames at the call rate: filled by _read_period, emptied by read_frame.
        self._captured = FrameQueue(self.frame_bytes,
                                    max_frames=READ_AHEAD_FRAMES + max(2, periods))
        self._to_play = FrameQueue(frame_bytes(open_rate, frame_ms))
        self._consecutive_xruns = 0
        self._stalled_until: float | None = None  # when the last read_frame gave up, if it did
        self.xruns = 0
        self.dropped = 0
        self._capture.get()  # both start opening (or open, without the capture thread) ...
        self._playback.get()
        if reader_thread:  # ... and are waited for, each, OPEN_WAIT_S at most
            waited_until = time.monotonic() + OPEN_WAIT_S
            self._capture.get(OPEN_WAIT_S)
            self._playback.get(max(0.0, waited_until - time.monotonic()))
        self._ready = threading.Condition()
        self._reader: threading.Thread | None = None
        if reader_thread:
            self._reader = threading.Thread(target=self._read_loop, daemon=True,
                                            name="alsa-capture")
            self._reader.start()
        self.reads_ahead = self._reader is not None

    def ready_frame(self) -> bytes | None:
        """A frame the capture thread has ready, or None at once (the media tick's read)."""
        if self._reader is None:
            return self.read_frame()
        with self._ready:
            frame = self._captured.pop()
            self._ready.notify_all()  # room in the queue: the reader may read ahead again
            return frame

    @property
    def stats(self) -> dict[str, int]:
        return {"xruns": self.xruns, "reopens": self._capture.reopens + self._playback.reopens,
                "dropped": self.dropped}

    def log_buffers_when_open(self) -> None:
        """Logs the `audio buffers:` line once both directions are open (AlsaAudio asks this
        when a device was still opening when the stream started)."""
        with self._buffers_lock:
            self._log_buffers = True
        self._opened()

    def _opened(self) -> None:
        with self._buffers_lock:
            buffering = self.buffering if self._log_buffers else {}
            if len(buffering) < 2:
                return
            self._log_buffers = False
        log.info("audio buffers: %s", describe_buffering(buffering))

    @property
    def buffering(self) -> dict[str, dict[str, int]]:
        granted = {"capture": self._capture.granted(), "playback": self._playback.granted()}
        return {direction: values for direction, values in granted.items() if values}

    def read_frame(self) -> bytes | None:
        if self._reader is None:
            return self._read_inline()
        with self._ready:
            frame = self._captured.pop()
            if frame is None and not self.closed:
                # the real clock: a Condition's wait cannot use an injected one
                now = time.monotonic()
                if self._stalled_until is None:
                    deadline = now + 2 * self._frame_s
                else:  # stalled: one frame after the last None, so a caller that asks once a
                    # frame does not wait at all, and one that asks at once waits a frame
                    deadline = min(now + self._frame_s, self._stalled_until + self._frame_s)
                while frame is None and not self.closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._ready.wait(remaining)
                    frame = self._captured.pop()
            self._ready.notify_all()  # room in the queue: the reader may read ahead again
            self._stalled_until = time.monotonic() if frame is None else None
            return frame

    def _read_loop(self) -> None:
        """The capture thread: the only code reading the capture PCM (see the module's doc)."""
        limit = READ_AHEAD_FRAMES * self.frame_bytes
        try:
            while not self.closed:
                with self._ready:
                    while not self.closed and len(self._captured) >= limit:
                        self._ready.wait(1.0)  # read_frame, ready_frame and close notify
                if self.closed:
                    break
                pcm = self._capture.get()
                if pcm is None:
                    with self._ready:  # the device is away; get() keeps to the back-off
                        if not self.closed:
                            self._ready.wait(self._frame_s)
                    continue
                data = self._read_period(pcm, self._frame_s)
                if data:
                    with self._ready:
                        self._captured.push(data)
                        self._ready.notify_all()
        except Exception:
            log.exception("%s: the capture thread failed", self._capture.name)
        finally:
            self._capture.shutdown()

    def _read_period(self, pcm: "Pcm", wait_s: float) -> "bytes | memoryview":
        """One read of the capture PCM: captured audio at the call rate (b"" when there was
        none: an overrun, an error, or nothing within `wait_s`). The C path's audio is a view
        of the PCM's reused buffer, valid until its next read: the caller queues it at once."""
        try:
            length, data = pcm.read()
        except self._alsa.AlsaError as error:
            self._capture.lost(str(error))
            return b""
        if length < 0:
            self._overrun(length)
            return b""
        if length == 0:
            self._capture.wait(pcm, wait_s, self._sleep)
            return b""
        self._consecutive_xruns = 0
        if self._direct and self._capture.channels == 1:
            return data  # the C path: libasound already converted to our rate
        return self._from_device.convert(downmix(data, self._capture.channels))

    def _read_inline(self) -> bytes | None:
        """read_frame without the capture thread (reader_thread=False)."""
        pcm = self._capture.pcm
        if pcm is not None and self._direct and self._capture.channels == 1 \
                and not self._captured.buffer:
            # The C path (issue 14): a period is a frame, read as it is; anything else (nothing
            # ready, an overrun, an error, a short read) goes the general way below.
            try:
                length, data = pcm.read()
            except self._alsa.AlsaError as error:
                self._capture.lost(str(error))
                length, data = 0, b""
            if length < 0:
                self._overrun(length)
            elif len(data) == self.frame_bytes:
                self._consecutive_xruns = 0
                return bytes(data)
            elif length:
                self._consecutive_xruns = 0
                self._captured.push(data)
        deadline = self._clock() + 2 * self._frame_s
        while True:
            frame = self._captured.pop()
            if frame is not None:
                return frame
            remaining = deadline - self._clock()
            pcm = self._capture.get()
            if pcm is None:
                # Device away: pace the caller like a live device would, then report no audio.
                self._sleep(max(0.0, min(self._frame_s, remaining)))
                return None
            if remaining <= 0:
                return None
            data = self._read_period(pcm, min(remaining, self._frame_s))
            if len(data) == self.frame_bytes and not len(self._captured):
                return bytes(data)  # a period is a frame (the default): no queueing
            if data:
                self._captured.push(data)

    def _overrun(self, code: int) -> None:
        # hal/libasound.py has already called snd_pcm_recover(): audio was lost, the PCM runs.
        self.xruns += 1
        self._consecutive_xruns += 1
        if _worth_logging(self.xruns):
            log.info("%s: overrun (%d xruns so far)", self._capture.name, self.xruns)
        if self._consecutive_xruns >= XRUN_LIMIT:
            self._consecutive_xruns = 0
            self._capture.lost(f"{XRUN_LIMIT} overruns in a row ({errno.errorcode.get(-code)})")

    def write_frame(self, pcm: bytes) -> None:
        playback = self._playback
        device = playback.pcm
        if device is not None and self._direct and not playback.fresh \
                and len(pcm) == self.frame_bytes and playback.channels == 1 \
                and not self._to_play.buffer:
            # The C path once playing (issue 14: every call counts, cold, at 50 frames/s):
            # one frame is one write, as it is, with no call between the media tick and it.
            try:
                written = device.write(pcm)
            except self._alsa.AlsaError as error:
                playback.lost(str(error))
                self.dropped += 1
                return
            if written <= 0:
                self._write_refused(device, pcm, written)
            return
        if self._direct and not self._to_play.buffer and len(pcm) == self.frame_bytes \
                and playback.channels == 1:
            device = playback.get()  # the C path: one frame is one write, as it is
            if device is None:
                self.dropped += 1
            else:
                self._write_period(device, pcm)
            return
        self._to_play.push(self._to_device.convert(pcm))
        while True:
            period = self._to_play.pop()
            if period is None:
                return
            device = playback.get()
            if device is None:
                self.dropped += 1
                continue
            self._write_period(device, upmix(period, playback.channels))

    def _write_period(self, device: "Pcm", data: bytes) -> None:
        for _attempt in range(2):
            try:
                if self._playback.fresh:
                    # A stream starts with its first write (start threshold 1): with only that
                    # period queued, a clocked device underruns at the first tick that comes
                    # late. A period of silence first is the cushion (docs/AUDIO.md: fewer
                    # underruns on the test clock PCM with it).
                    written = device.write(bytes(len(data)))
                    if written >= 0:
                        self._playback.fresh = False
                if not self._playback.fresh:
                    written = device.write(data)
            except self._alsa.AlsaError as error:
                self._playback.lost(str(error))
                self.dropped += 1
                return
            if written > 0:
                return
            if not self._written_badly(written):
                return
        self.dropped += 1

    def _write_refused(self, device: "Pcm", data: bytes, written: int) -> None:
        """A write that wrote nothing: 0 (the buffer is full) drops the frame; an underrun
        cushions again and tries once more (as _write_period)."""
        if self._written_badly(written):
            self._write_period(device, data)

    def _written_badly(self, written: int) -> bool:
        """Counts a write that wrote nothing; True after an underrun (write again)."""
        if written == 0:  # buffer full: drop rather than block or build up delay
            self.dropped += 1
            return False
        # underrun (-EPIPE): hal/libasound.py recovered the PCM; cushion again, try once more
        self.xruns += 1
        self._playback.fresh = True
        if _worth_logging(self.xruns):
            log.info("%s: underrun (%d xruns so far)", self._playback.name, self.xruns)
        return True

    def close(self) -> None:
        self.closed = True
        self._playback.shutdown()
        if self._reader is None:
            self._capture.shutdown()
            return
        with self._ready:
            self._ready.notify_all()
        # A read stuck inside a plugin is not waited for: the thread closes the PCM after it.
        if self._reader is not threading.current_thread():
            self._reader.join(2 * self._frame_s)
