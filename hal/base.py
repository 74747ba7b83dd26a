"""The device interface every board offers, whatever drives it (gpiozero, or memory in the sim).

Devices are named for what they do (gpiozero style); the firmware asks for roles, never pins:

    board.buttons[role]   Button: when_pressed, when_released, when_held (callables taking no
                          arguments, or None), is_pressed.  Roles: call, call2, ..., hangup,
                          exit.
    board.leds[role]      Led: set_pattern(pattern), pattern.  Roles: status, call, and one per
                          relay role (door, gate, ...).
    board.relays[role]    Relay: pulse(ms), on(), off(), is_active, state ("open"/"closed").
    board.inputs[role]    Input: when_activated, when_deactivated, is_active.
                          door_contact is active while the contact is closed (door shut).
    board.audio           AudioDevice (see below).
    board.camera          hal.camera.Camera, or None when the board has no camera.
    board.snapshot()      {"buttons": {role: bool}, "leds": {role: pattern},
                           "relays": {role: "open"|"closed"}, "inputs": {role: bool}}
    board.close()         relays off first (the door stays locked), then everything released.

Threads: callbacks arrive on background threads (gpiozero's pin and hold threads, or the relay and
sim timers).  The runtime must not touch asyncio state from them; it hands each one to the event
loop with ``loop.call_soon_threadsafe(...)``.

LED patterns (LED_PATTERNS): "off", "on", "blink_slow" (1 s on / 1 s off), "blink_fast"
(0.15 s / 0.15 s), "flash" (one 0.15 s flash, after which `pattern` reads "off").  No breathing:
door-station LEDs often hang off plain GPIOs or transistor drivers without PWM.

Audio: ``stream = board.audio.open(rate=8000, frame_ms=20)`` gives an AudioStream whose
``read_frame()`` returns one frame of 16-bit little-endian mono PCM (160 samples = 320 bytes at
8 kHz / 20 ms) or None when no audio is available right now, and whose ``write_frame(pcm)`` plays
one such frame; ``stream.close()``.  ``audio.paced`` tells whether read_frame() waits for the
hardware clock (Pi: up to about one frame) or returns at once (sim: the runtime paces it).
``audio.begin_call(call_id)`` / ``audio.end_call()`` mark which call the played audio belongs to
(the sim records it per call; the Pi ignores it).
"""

import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from hal.board import BoardSpec
    from hal.camera import Camera

LED_PATTERNS = ("off", "on", "blink_slow", "blink_fast", "flash")
# pattern -> (on seconds, off seconds, repetitions or None for forever)
BLINK_TIMINGS = {
    "blink_slow": (1.0, 1.0, None),
    "blink_fast": (0.15, 0.15, None),
    "flash": (0.15, 0.0, 1),
}
MAX_PULSE_MS = 60000  # door strikes overheat when held for long; on() exists for deliberate use


class _Reporting:
    """Devices that report events to `when_<event>` callbacks."""

    def _notify(self, event: str) -> None:
        callback = getattr(self, "when_" + event)
        if callback is not None:
            callback()


class Button(_Reporting):
    """A push button; subclasses report presses through `_notify`."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.when_pressed: Callable[[], None] | None = None
        self.when_released: Callable[[], None] | None = None
        self.when_held: Callable[[], None] | None = None

    @property
    def is_pressed(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        self.when_pressed = self.when_released = self.when_held = None


class Input(_Reporting):
    """A digital input such as the door contact."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.when_activated: Callable[[], None] | None = None
        self.when_deactivated: Callable[[], None] | None = None

    @property
    def is_active(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        self.when_activated = self.when_deactivated = None


class Led:
    """An indicator LED showing one of LED_PATTERNS; subclasses implement `_show(pattern)`."""

    def __init__(self, role: str, clock: "Callable" = time.monotonic) -> None:
        self.role = role
        self._clock = clock
        self._pattern = "off"
        self._flash_ends = 0.0

    @property
    def pattern(self) -> str:
        if self._pattern == "flash" and self._clock() >= self._flash_ends:
            return "off"
        return self._pattern

    def set_pattern(self, pattern: str) -> None:
        if pattern not in LED_PATTERNS:
            raise ValueError(f"unknown LED pattern {pattern!r}; one of {', '.join(LED_PATTERNS)}")
        self._pattern = pattern
        if pattern == "flash":
            self._flash_ends = self._clock() + BLINK_TIMINGS["flash"][0]
        self._show(pattern)

    def _show(self, pattern: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.set_pattern("off")


class Relay:
    """A relay output (the door strike); subclasses implement `_drive(active)`.

    pulse(ms) energises the relay and releases it after `ms` on a threading.Timer; a later
    pulse/on/off cancels a pending release, so the last command wins.
    """

    def __init__(self, role: str) -> None:
        self.role = role
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._active = False

    @property
    def is_active(self) -> bool:
        return self._active

    @property
    def state(self) -> str:
        return "open" if self._active else "closed"

    def pulse(self, ms: int) -> None:
        if type(ms) is not int or not 0 < ms <= MAX_PULSE_MS:
            raise ValueError(f"pulse length must be 1-{MAX_PULSE_MS} ms, got {ms!r}")
        with self._lock:
            self._cancel_timer()
            self._set(True)
            self._timer = threading.Timer(ms / 1000, self._end_pulse)
            self._timer.daemon = True
            self._timer.start()

    def on(self) -> None:
        with self._lock:
            self._cancel_timer()
            self._set(True)

    def off(self) -> None:
        with self._lock:
            self._cancel_timer()
            self._set(False)

    def _end_pulse(self) -> None:
        with self._lock:
            if self._timer is not None and self._timer is threading.current_thread():
                self._timer = None
                self._set(False)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set(self, active: bool) -> None:
        self._active = active
        self._drive(active)

    def _drive(self, active: bool) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.off()


class AudioStream:
    """One open audio path: capture frames in, playback frames out, at the call's rate."""

    # True: the stream captures on a thread of its own (hal/pi.py's ALSA streams) and
    # ready_frame() hands over what it captured without waiting; the caller needs no thread.
    reads_ahead = False

    def read_frame(self) -> bytes | None:  # None: the device is away, no audio this frame
        raise NotImplementedError

    def ready_frame(self) -> bytes | None:
        """A captured frame that is already waiting, else None at once (streams that read
        ahead only)."""
        return None

    def write_frame(self, pcm: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class AudioDevice:
    """The board's microphone and speaker."""

    paced = True

    def open(self, rate: int = 8000, frame_ms: int = 20) -> "AudioStream":
        raise NotImplementedError

    def begin_call(self, call_id: str) -> None:
        """Played audio from now on belongs to `call_id` (only the sim records it)."""

    def end_call(self, call_id: "str | None" = None) -> None:
        """The call `call_id` (None: every call) whose audio was being played has ended."""

    def set_volume(self, percent: int) -> bool:
        """Set the speaker volume (0-100) on the hardware's mixer; False when the device has
        none, and the caller scales the samples itself (issue 15)."""
        return False

    def set_buffering(self, period_ms: int, buffer_ms: int) -> None:
        """The device's period and buffer length for streams opened from now on (`[audio]
        period_ms`, `buffer_ms`); only devices with such buffers (ALSA) take them."""

    def reference_delay_frames(self) -> int:
        """How many frames after `write_frame` the speaker plays a frame, less how long the
        microphone's frames wait before `read_frame` returns them: the echo canceller's
        reference is delayed by this much (0: a frame read right after a write hears it)."""
        return 0

    def close(self) -> None:
        raise NotImplementedError


class Board:
    """A set of role-named devices described by a BoardSpec (hal.board)."""

    def __init__(self, spec: "BoardSpec", buttons: "dict[str, Button]", leds: "dict[str, Led]",
                 relays: "dict[str, Relay]", inputs: "dict[str, Input]",
                 audio: "AudioDevice") -> None:
        self.spec = spec
        self.name = spec.name
        self.kind = spec.kind
        self.buttons: Mapping[str, Button] = buttons
        self.leds: Mapping[str, Led] = leds
        self.relays: Mapping[str, Relay] = relays
        self.inputs: Mapping[str, Input] = inputs
        self.audio = audio
        self.camera: Camera | None = None

    def snapshot(self) -> dict[str, dict[str, bool | str]]:
        return {
            "buttons": {role: button.is_pressed for role, button in self.buttons.items()},
            "leds": {role: led.pattern for role, led in self.leds.items()},
            "relays": {role: relay.state for role, relay in self.relays.items()},
            "inputs": {role: device.is_active for role, device in self.inputs.items()},
        }

    def close(self) -> None:
        for relay in self.relays.values():
            relay.close()
        for group in (self.buttons, self.leds, self.inputs):
            for device in group.values():
                device.close()
        self.audio.close()
        if self.camera is not None:
            self.camera.close()


def frame_bytes(rate: int, frame_ms: int) -> int:
    """Bytes in one frame of 16-bit mono PCM: 320 at 8 kHz and 20 ms."""
    if rate * frame_ms % 1000:
        raise ValueError(f"{frame_ms} ms at {rate} Hz is not a whole number of samples")
    return rate * frame_ms // 1000 * 2
