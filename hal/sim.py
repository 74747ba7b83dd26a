"""The simulated board (kind = "sim"): every device in memory, observable, driven from tests or
the web page's /api/sim endpoints; audio from and to WAV files.

    SimBoard(spec, mic=None, speaker_dir=None)     a hal.base.Board
      .press(role, ms=100)      press a button now; release after `ms` on a timer thread; if the
                                press lasts hold_ms or longer, when_held fires at hold_ms
      .set_input(role, active)  drive an input (door_contact: True = contact closed, which is
                                also its state at start: the door is shut)
      .relays[role].history     deque of (monotonic time, "open"|"closed"), newest last
      .leds[role].history       deque of every pattern set, newest last
                                (both keep the last HISTORY_LIMIT entries)
      .snapshot()               see hal.base

    SimAudio(mic=None, speaker_dir=None, echo_path=None)
      microphone: `mic` is a 16-bit WAV (any rate, mono or stereo, downmixed), looped forever and
                  converted to the stream's rate; silence without a file.
      room:       `echo_path` is a 16-bit WAV impulse response (hal.room.Room): what the
                  speaker plays, convolved with it, is added to the microphone, sample-timed
                  (a frame read right after a frame was written hears that frame).
      speaker:    between begin_call(call_id) and end_call(), every written frame goes to
                  speaker_dir/<call-id>.wav (mono, 16-bit, the stream's rate); characters outside
                  [A-Za-z0-9._@-] in the call id become "_".  Without speaker_dir it is discarded.
      paced = False: read_frame() returns at once; the runtime's clock sets the pace.
"""

import collections
import pathlib
import threading
import time
import wave
from typing import TYPE_CHECKING

from hal.base import AudioDevice, AudioStream, Board, Button, Input, Led, Relay, frame_bytes
from hal.pcm import FrameQueue, RateConverter, downmix

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from hal.board import BoardSpec, ButtonSpec, InputSpec, LedSpec, RelaySpec
    from hal.room import Room

SAFE_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@-")
MIC_CHUNK_FRAMES = 1024
SPEAKER_BATCH_FRAMES = 25  # 0.5 s of 20 ms frames per write to the speaker WAV
HISTORY_LIMIT = 1000  # a long simulator run must not grow without bound


class SimButton(Button):
    def __init__(self, spec: "ButtonSpec") -> None:
        super().__init__(spec.role)
        self.hold_ms = spec.hold_ms
        self._pressed = False

    @property
    def is_pressed(self) -> bool:
        return self._pressed

    def _change(self, pressed: bool) -> None:
        self._pressed = pressed
        self._notify("pressed" if pressed else "released")


class SimInput(Input):
    def __init__(self, spec: "InputSpec") -> None:
        super().__init__(spec.role)
        # at rest: the door contact is closed (door shut), like a real door at start
        self._active = spec.role == "door_contact"

    @property
    def is_active(self) -> bool:
        return self._active

    def set(self, active: bool) -> None:
        if active != self._active:
            self._active = active
            self._notify("activated" if active else "deactivated")


class SimLed(Led):
    def __init__(self, spec: "LedSpec") -> None:
        super().__init__(spec.role)
        self.history: collections.deque[str] = collections.deque(maxlen=HISTORY_LIMIT)

    def _show(self, pattern: str) -> None:
        self.history.append(pattern)


class SimRelay(Relay):
    def __init__(self, spec: "RelaySpec") -> None:
        super().__init__(spec.role)
        self.history: collections.deque[tuple[float, str]] = collections.deque(maxlen=HISTORY_LIMIT)

    def _drive(self, active: bool) -> None:
        self.history.append((time.monotonic(), "open" if active else "closed"))


class SimBoard(Board):
    buttons: "Mapping[str, SimButton]"
    inputs: "Mapping[str, SimInput]"
    def __init__(self, spec: "BoardSpec", mic: "str | pathlib.Path | None" = None,
                 speaker_dir: "str | pathlib.Path | None" = None,
                 echo_path: "str | pathlib.Path | None" = None) -> None:
        super().__init__(
            spec,
            buttons={role: SimButton(s) for role, s in spec.buttons.items()},
            leds={role: SimLed(s) for role, s in spec.leds.items()},
            relays={role: SimRelay(s) for role, s in spec.relays.items()},
            inputs={role: SimInput(s) for role, s in spec.inputs.items()},
            audio=SimAudio(mic=mic, speaker_dir=speaker_dir, echo_path=echo_path),
        )
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()

    def press(self, role: str, ms: int = 100) -> None:
        """Press `role` for `ms` milliseconds; returns at once (release comes on a timer)."""
        if role not in self.buttons:
            raise KeyError(f"no button {role!r} on board {self.name} "
                           f"(buttons: {', '.join(self.buttons)})")
        if type(ms) is not int or ms <= 0:
            raise ValueError(f"press length must be a positive number of ms, got {ms!r}")
        button = self.buttons[role]
        button._change(True)
        if ms >= button.hold_ms:
            self._later(button.hold_ms, button._notify, "held")
        self._later(ms, button._change, False)

    def set_input(self, role: str, active: bool) -> None:
        if role not in self.inputs:
            raise KeyError(f"no input {role!r} on board {self.name}")
        self.inputs[role].set(bool(active))

    def _later(self, ms: int, function: "Callable", argument: bool | str) -> None:
        timer = threading.Timer(ms / 1000, function, (argument,))
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
        timer.start()

    def close(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            self._timers = []
        super().close()


class SimAudio(AudioDevice):
    paced = False

    def __init__(self, mic: "str | pathlib.Path | None" = None,
                 speaker_dir: "str | pathlib.Path | None" = None,
                 echo_path: "str | pathlib.Path | None" = None) -> None:
        self.mic = pathlib.Path(mic) if mic else None
        self.speaker_dir = pathlib.Path(speaker_dir) if speaker_dir else None
        self.echo_path = pathlib.Path(echo_path) if echo_path else None
        if self.echo_path is not None:
            try:
                from hal.room import load_impulse_response
            except ImportError as error:
                raise ValueError(f"--echo-path needs numpy ({error}): pip install -e '.[sim]'"
                                 ) from None
            load_impulse_response(self.echo_path, 8000)  # a bad file fails at start, not in a call
        self._streams: list[SimAudioStream] = []
        self._call_id: str | None = None
        self._lock = threading.Lock()

    def open(self, rate: int = 8000, frame_ms: int = 20) -> "SimAudioStream":
        stream = SimAudioStream(self, rate, frame_ms)
        with self._lock:
            self._streams.append(stream)
        return stream

    def begin_call(self, call_id: str) -> None:
        with self._lock:
            self._call_id = str(call_id)
            for stream in self._streams:
                stream._start_recording(self._call_id)

    def end_call(self) -> None:
        with self._lock:
            self._call_id = None
            for stream in self._streams:
                stream._stop_recording()

    def speaker_path(self, call_id: str) -> "pathlib.Path":
        name = "".join(c if c in SAFE_NAME_CHARS else "_" for c in str(call_id))
        assert self.speaker_dir is not None  # asked only when recording
        return self.speaker_dir / f"{name}.wav"

    def _forget(self, stream: "SimAudioStream") -> None:
        with self._lock:
            if stream in self._streams:
                self._streams.remove(stream)

    def close(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, []
        for stream in streams:
            stream._release()


class SimAudioStream(AudioStream):
    def __init__(self, device: "SimAudio", rate: int, frame_ms: int) -> None:
        self.rate = rate
        self.frame_bytes = frame_bytes(rate, frame_ms)
        self._device = device
        self._mic: wave.Wave_read | None = None
        self._mic_channels = 1
        self._converter: RateConverter | None = None
        self._queue = FrameQueue(self.frame_bytes)
        self._speaker: wave.Wave_write | None = None
        self._pending: list[bytes] = []  # frames not yet written to the speaker WAV
        self._lock = threading.Lock()
        self._room: Room | None = None
        if device.echo_path is not None:
            from hal import room

            self._room = room.Room(device.echo_path, rate)
        if device.mic is not None:
            self._open_mic(device.mic)
        if device._call_id is not None:
            self._start_recording(device._call_id)

    def _open_mic(self, path: "pathlib.Path") -> None:
        try:
            mic = wave.open(str(path), "rb")
        except (OSError, wave.Error, EOFError) as error:
            raise ValueError(f"microphone WAV {path}: {error}") from None
        if mic.getsampwidth() != 2 or mic.getnchannels() not in (1, 2) or mic.getnframes() == 0:
            mic.close()
            raise ValueError(f"microphone WAV {path}: need 16-bit mono or stereo samples, got "
                             f"{mic.getsampwidth() * 8}-bit, {mic.getnchannels()} channel(s), "
                             f"{mic.getnframes()} frames")
        self._mic = mic
        self._mic_channels = mic.getnchannels()
        self._converter = RateConverter(mic.getframerate(), self.rate)

    def read_frame(self) -> bytes:
        frame = self._read_mic()
        if self._room is not None:
            with self._lock:
                frame = self._room.add_echo(frame)
        return frame

    def _read_mic(self) -> bytes:
        with self._lock:
            if self._mic is None:
                return bytes(self.frame_bytes)
            while len(self._queue) < self.frame_bytes:
                chunk = self._mic.readframes(MIC_CHUNK_FRAMES)
                if not chunk:
                    self._mic.rewind()  # loop the recording
                    continue
                mono = downmix(chunk, self._mic_channels)
                # _converter is made with _mic
                self._queue.push(self._converter.convert(mono))  # type: ignore[union-attr]
            return self._queue.pop()  # type: ignore[return-value]  # a full frame is queued

    def write_frame(self, pcm: bytes) -> None:
        # Frames are written in batches: each writeframes() also rewrites the WAV header, and
        # doing that 50 times a second was a visible share of a call's CPU on the sim.
        with self._lock:
            if self._room is not None:
                self._room.play(pcm)
            if self._speaker is not None:
                self._pending.append(pcm)
                if len(self._pending) >= SPEAKER_BATCH_FRAMES:
                    self._flush_speaker()

    def _flush_speaker(self) -> None:
        if self._pending:
            assert self._speaker is not None  # frames are kept only while recording
            self._speaker.writeframes(b"".join(self._pending))
            self._pending = []

    def _start_recording(self, call_id: str) -> None:
        with self._lock:
            self._close_speaker()
            if self._device.speaker_dir is None:
                return
            path = self._device.speaker_path(call_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            speaker = wave.open(str(path), "wb")
            speaker.setnchannels(1)
            speaker.setsampwidth(2)
            speaker.setframerate(self.rate)
            self._speaker = speaker

    def _stop_recording(self) -> None:
        with self._lock:
            self._close_speaker()

    def _close_speaker(self) -> None:
        if self._speaker is not None:
            self._flush_speaker()
            self._speaker.close()  # wave fixes up the header sizes on close
            self._speaker = None

    def _release(self) -> None:
        with self._lock:
            self._close_speaker()
            if self._mic is not None:
                self._mic.close()
                self._mic = None

    def close(self) -> None:
        self._device._forget(self)
        self._release()
