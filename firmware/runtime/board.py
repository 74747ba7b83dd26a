"""The board's executors: buttons and inputs in (moved onto the event loop), relays, LEDs, cues
outside a call and the event log out. A part of `runtime.station.Station` (the state it reads is
declared in runtime/parts.py). Inputs a schedule may decide carry the wall-clock local time
(`local_now()`, runtime/localtime.py, loaded at the first use)."""

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from firmware.app import actions
from firmware.codecs.tones import CUES
from firmware.runtime.cues import CuePlayer
from firmware.runtime.parts import StationParts

if TYPE_CHECKING:
    from firmware.app.schedules import LocalTime

log = logging.getLogger("doorline")

RING_ROLES_EXCLUDED = ("hangup", "exit")  # buttons that do not ring: no snapshot


class BoardExecutors(StationParts):
    # -- hardware ----------------------------------------------------------------------------
    def _wire_board(self) -> None:
        if self.board is None:
            return
        self.board.audio.set_buffering(self.cfg.audio.period_ms, self.cfg.audio.buffer_ms)
        for role, button in self.board.buttons.items():
            button.when_pressed = self._threadsafe(self._button, role, True)
            button.when_released = self._threadsafe(self._button, role, False)
        missing = [r for r in self.cfg.relay_roles() if r not in self.board.relays]
        if missing:
            log.warning("relays configured but not on board %s: %s (openings of them do "
                        "nothing)", self.board.name, ", ".join(missing))
        now = self.loop.time()
        for role, device in self.board.inputs.items():
            device.when_activated = self._threadsafe(self._input, role, True)
            device.when_deactivated = self._threadsafe(self._input, role, False)
            # the state at start, without an event (the controller's first report)
            self.controller.input_changed(role, device.is_active, now)

    def local_now(self) -> "LocalTime | None":
        """The wall clock in the station's zone ([time] zone), for the controller's schedules;
        None (no schedule active) when the zone cannot be loaded."""
        # (`import … as`, not `from … import`: no importlib frame on each call, issue 14)
        import firmware.runtime.localtime as localtime

        try:
            return localtime.local_time(time.time(), self.cfg.time.zone)
        except (ImportError, ValueError, OSError, KeyError) as exc:
            log.error("time zone %r: %s", self.cfg.time.zone, exc)
            return None

    def _input(self, role: str, active: bool) -> None:
        self.controller.input_changed(role, active, self.loop.time())
        self._kick()

    def _threadsafe(self, handler: "Callable[..., None]", *args: Any) -> "Callable[[], None]":
        def callback() -> None:
            self.loop.call_soon_threadsafe(handler, *args)
        return callback

    def _button(self, role: str, pressed: bool) -> None:
        now = self.loop.time()
        if pressed:
            self.controller.button_pressed(role, now, local=self.local_now())
        else:
            self.controller.button_released(role, now)
        self._kick()

    def _do_pulse_relay(self, action: actions.PulseRelay) -> None:
        relay = self.board.relays.get(action.role) if self.board is not None else None
        if relay is None:
            log.warning("no relay %r on this board", action.role)
            return
        relay.pulse(action.ms)
        self.counters["door_openings_total"] += 1

    def _do_set_led(self, action: actions.SetLed) -> None:
        led = self.board.leds.get(action.role) if self.board is not None else None
        if led is not None:
            led.set_pattern(action.pattern)

    def _do_play_cue(self, action: actions.PlayCue) -> None:
        stream = self.streams.get(action.call_id) if action.call_id else None
        if stream is not None:
            stream.play_cue(action.name, to_caller=action.name == "door_open")
        else:
            self._play_cue_locally(action.name)

    def _do_stop_cue(self, action: actions.StopCue) -> None:
        if self._cue is not None and self._cue.name == action.name:
            self._stop_cue()

    def _do_log_event(self, action: actions.LogEvent) -> None:
        if action.type == "button" and action.fields.get("role") not in RING_ROLES_EXCLUDED:
            # someone rang: keep a picture of who (issue 16)
            camera = self.camera_service()
            snapshot = camera.ring_snapshot(dict(action.fields)) if camera is not None else None
            if snapshot is not None:
                action.fields["snapshot"] = snapshot
        self.eventlog.append(action.type, **action.fields)
        if action.type == "door_open":
            log.info("%s opened by %s (%s)", action.fields.get("relay"), action.fields.get("by"),
                     action.fields.get("how"))
        elif action.type in ("door_opened", "door_closed", "door_held_open"):
            log.info("%s %s", action.type, action.fields)

    def _play_cue_locally(self, name: str) -> None:
        """A cue outside a call (ringback, busy, failure) on the station's speaker."""
        self._stop_cue()
        if self.board is None or name not in CUES:
            return
        self._cue = CuePlayer(self.board.audio, name, volume=self.cfg.audio.speaker_volume)
        self._cue.start()

    def _stop_cue(self) -> None:
        if self._cue is not None:
            self._cue.stop()
            self._cue = None
