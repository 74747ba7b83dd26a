"""What the web page and API use of the running station (firmware/web): status, events,
metrics, calls and the door on request, and the configuration applied while running (with
rollback). A part of `runtime.station.Station` (the state it reads is declared in
runtime/parts.py): it reads the station's state and feeds the controller; it decides nothing
about calls."""

import logging
import time
from collections.abc import Callable
from typing import Any

from firmware import config as configuration
from firmware.app.reasons import registration_reason
from firmware.runtime.parts import StationParts
from firmware.settings import Config
from firmware.sip.errors import ParseError
from firmware.sip.uri import URI

log = logging.getLogger("doorline")


class Facade(StationParts):
    @property
    def config(self) -> Config:
        return self.cfg

    def board_info(self) -> dict[str, Any] | None:
        """The running board's roles, in board-file order (GET /api/board, and the roles the
        configuration is checked against at save); None for a station without a board (some
        tests)."""
        board = self.board
        if board is None:
            return None
        return {"name": board.name, "simulated": bool(self.simulated),
                "buttons": list(board.buttons), "relays": list(board.relays),
                "inputs": list(board.inputs), "leds": list(board.leds),
                "camera": getattr(board, "camera", None) is not None}

    def status(self) -> dict[str, Any]:
        calls_status = []
        for call in self.sessions.status() if self.sessions is not None else []:
            stream = self.streams.get(call["id"])
            call["stats"] = stream.stats() if stream else \
                ({"codec": call["codec"]} if call["codec"] else {})
            call["stats"].update(loss_and_jitter(call["stats"] if stream else None))
            video = self.videos.get(call["id"])
            if video is not None:
                call["stats"]["video"] = video.stats()
            call["started"] = round(self._started_at.setdefault(call["id"], time.time()), 1)
            call["wideband"] = call["codec"] in WIDEBAND_CODECS
            calls_status.append(call)
        current = {call["id"] for call in calls_status}
        for call_id in [c for c in self._started_at if c not in current]:
            del self._started_at[call_id]
        snapshot = self.board.snapshot() if self.board is not None else {}
        return {
            "registration": self.registration_status(),
            "calls": calls_status,
            "door": self._door_status(snapshot),
            "leds": snapshot.get("leds", {}),
            "uptime_s": int(time.time() - self.started_at),
            "config_errors": dict(self.config_errors),
        }

    def registration_status(self) -> dict[str, Any]:
        """`state` (registering while a REGISTER is outstanding and we are not registered,
        also while SIP (re)starts), `mode`, `reason` (a sentence, or None), `attempt`,
        `since` (Unix time the state began), `error` and `next_refresh` as before."""
        sip = self.cfg.sip
        mode = "registrar" if sip.registrar else "direct"
        wall = time.time() - self.loop.time()  # our monotonic clock → Unix time
        starting = self._sip_start is not None and not self._sip_start.done()
        if self._sip_restart_at is not None or (self.ua is None and starting):
            # SIP is (re)starting: a stale "registered" must not show meanwhile
            since = self._sip_restart_at if self._sip_restart_at is not None else \
                self._sip_changed_at
            out: dict[str, Any] = {
                   "state": "registering" if mode == "registrar" else "disabled",
                   "error": self.sip_error, "next_refresh": None,
                   "attempt": 1 if mode == "registrar" else 0, "reason": self.sip_error}
        elif self.ua is None:
            since = self._sip_changed_at
            out = {"state": "failed" if self.sip_failed else "unregistered",
                   "error": self.sip_error, "next_refresh": None, "attempt": 0,
                   "reason": self.sip_error}
        else:
            status = self.ua.status()
            since = status["since"] if status["since"] is not None else self._sip_changed_at
            out = {"state": "registering" if status["registering"] else status["state"],
                   "error": status["error"], "attempt": status["attempt"],
                   "next_refresh": None if status["next_refresh"] is None else
                   round(wall + status["next_refresh"], 1),
                   "reason": registration_reason(status["error"], sip.registrar, sip.transport)}
        out["mode"] = mode
        out["since"] = None if since is None else round(wall + since, 1)
        return out

    def _door_status(self, snapshot: dict[str, Any]) -> dict[str, Any]:
        """The relays as the board drives them, the door contact as the controller saw it."""
        relays = dict(snapshot.get("relays", {}))
        door = self.controller.snapshot()["door"]
        return {"relay": relays.get("door", "closed"), "relays": relays,
                "contact": door["contact"], "held_open": door["held_open"]}

    async def apply_config(self, cfg: Config) -> list[str]:
        """Run with `cfg` (already validated); returns the names of the sections that changed
        (the caller logs them with its one `config_saved` event). Any failure puts the
        previous settings back, running as before, and raises ConfigError naming the field
        ("" when none can be named); the caller saves the file only after this returned."""
        old, self.cfg = self.cfg, cfg
        was_running = self.ua is not None
        # what to go back to when SIP was not running: still starting, or failed (and why)
        was = {"starting": self._sip_start is not None and not self._sip_start.done(),
               "error": self.sip_error, "failed": self.sip_failed,
               "config_errors": self.config_errors}
        restart = not was_running or old.sip != cfg.sip or \
            old.media.rtp_ports != cfg.media.rtp_ports or old.calls != cfg.calls
        try:
            self.controller.update_config(cfg, self.loop.time())
            if self.calls is not None:
                self.calls.identity = cfg.answer.identity  # applies to the next INVITE
            if old.audio != cfg.audio:
                # gain and volume at once (the board's mixer, or each call's digital gain);
                # the processing stages from the next call
                if self.board is not None:
                    self.board.audio.set_volume(cfg.audio.speaker_volume)
                    # the ALSA period and buffer: from the next stream (call or cue) opened
                    self.board.audio.set_buffering(cfg.audio.period_ms, cfg.audio.buffer_ms)
                for stream in self.streams.values():
                    stream.set_audio(cfg.audio)
            if restart:
                log.info("SIP settings changed: restarting the user agent")
                # shown at once as "registering" (not the old "registered") until it is done
                self._sip_restart_at = self.loop.time()
                try:
                    await self._cancel_sip_start()
                    await self._stop_sip()
                    self.config_errors = {}
                    await self._start_sip()
                finally:
                    self._sip_restart_at = None
        except Exception as exc:  # not only OSError: nothing may leave the station half-applied
            await self._roll_back(old, exc, was_running, was)
        self.sip_error, self.sip_failed = None, False
        try:
            await self._reconfigure_house(old)
        except Exception:  # MQTT/webhooks retry by themselves; the settings are applied
            log.exception("applying the [mqtt]/[[webhooks]] settings failed")
        self._kick()
        return [name for name in sorted(cfg.SECTIONS) if cfg.section(name) != old.section(name)]

    async def _roll_back(self, old: Config, exc: Exception, was_running: bool,
                         was: dict[str, Any]) -> None:
        """The new settings cannot be used (e.g. the port is taken): run the old ones again as
        they ran before, and tell the caller which field failed."""
        log.error("cannot apply the new settings (%s); keeping the previous ones",
                  failure_text(exc))
        self.cfg = old
        try:
            self.controller.update_config(old, self.loop.time())
        except Exception:
            log.exception("restoring the previous settings in the controller failed")
        try:
            await self._stop_sip()
        except Exception:
            log.exception("stopping the half-applied SIP settings failed")
            self.ua = None
        self.config_errors = was["config_errors"]
        if was_running:
            try:
                await self._start_sip()
            except Exception as again:
                self._sip_failed(again)
        elif was["starting"]:
            self.begin_sip()
        else:
            self.sip_error, self.sip_failed = was["error"], was["failed"]
            if self.sip_failed:
                self.controller.registration_changed("failed", self.sip_error, self.loop.time())
        self._kick()
        if isinstance(exc, configuration.ConfigError):
            raise configuration.ConfigError(exc.errors) from exc
        raise configuration.ConfigError(
            {"": "could not be applied: %s" % failure_text(exc)}) from exc

    def place_call(self, target: str) -> str | None:
        try:
            uri = URI.parse(target)
        except ParseError as exc:
            raise ValueError("not a SIP URI: %s" % exc.reason) from None
        if uri.scheme not in ("sip", "sips"):
            raise ValueError("only sip: and sips: targets can be called")
        if self.sessions is not None and len(self.sessions):
            raise ValueError("a call is already in progress")
        self.controller.place_call(str(uri), self.loop.time())
        self._kick()
        ids = self.sessions.ids() if self.sessions is not None else []
        return ids[0] if ids else None

    def hangup(self) -> None:
        self.controller.hangup(self.loop.time())
        self._kick()

    def test_speaker(self) -> bool:
        """Play the speaker test tone at the configured volume; False (nothing played) while
        a call has the speaker."""
        if self.streams or self._pairs:
            return False
        self._play_cue_locally("speaker_test")
        return True

    def open_door(self, by: str = "api", relay: str = "door") -> None:
        """Pulse `relay` (ValueError when the configuration has no such relay)."""
        opened = self.controller.open_door(by, self.loop.time(), relay)
        self._kick()
        if not opened:
            raise ValueError("no relay %r (configured: %s)" % (
                relay, ", ".join(self.cfg.relay_roles())))

    def latest_snapshot(self) -> dict[str, Any] | None:
        """The newest ring picture: {"id", "time", "event", "path"} (the JPEG's file), or None
        without a camera or before the first ring (for MQTT's image entity, issue 17)."""
        camera = self.camera_service()
        return camera.latest_snapshot() if camera is not None else None

    def events(self, since: int | None = None) -> list[dict]:
        return self.eventlog.since(since)

    def subscribe_events(self, callback: "Callable[[dict], None]") -> "Callable[[], None]":
        """callback(event) for each new event (GET /api/events/stream); returns the
        unsubscribe."""
        return self.eventlog.subscribe(callback)

    def log_event(self, type_: str, **fields: Any) -> None:
        self.eventlog.append(type_, **fields)

    def press_button(self, role: str, press_ms: int = 100) -> None:
        press = getattr(self.board, "press", None) if self.simulated else None
        if press is None:  # only simulated boards can be pressed remotely
            raise KeyError(role)
        press(role, press_ms)

    def set_input(self, role: str, active: bool) -> None:
        """Drive a simulated board's input (KeyError: no such input, or not simulated)."""
        set_input = getattr(self.board, "set_input", None) if self.simulated else None
        if set_input is None:
            raise KeyError(role)
        set_input(role, active)

    def metrics(self) -> dict[str, Any]:
        status = self.status()
        lost = sum(c["stats"].get("lost", 0) for c in status["calls"])
        jitter = max([c["stats"].get("jitter_ms") or 0 for c in status["calls"]] or [0])
        return {
            "registration_registered": 1 if status["registration"]["state"] == "registered"
            else 0,
            "calls_active": len(status["calls"]),
            "calls_total": self.counters["calls_total"],
            "rtp_packets_lost": lost,
            "rtp_jitter_ms": jitter,
            "door_openings_total": self.counters["door_openings_total"],
            "eventlog_writes_total": self.eventlog.writes,
            "events_suppressed_total": self.eventlog.suppressed,
            "uptime_seconds": status["uptime_s"],
            **(self.house.metrics() if self.house is not None else {}),
        }



WIDEBAND_CODECS = ("G722",)  # 16 kHz audio (docs/CONFIG.md [media] codecs)


def loss_and_jitter(stats: dict[str, Any] | None) -> dict[str, float | None]:
    """`loss_percent` and `jitter_ms` of a call's media statistics (None before any packet
    was expected, or without a media stream)."""
    if not stats or not stats.get("expected"):
        return {"loss_percent": None, "jitter_ms": None}
    lost, expected = max(0, stats.get("lost") or 0), stats["expected"]
    jitter = stats.get("jitter_ms")
    return {"loss_percent": round(100.0 * lost / expected, 1),
            "jitter_ms": round(jitter, 1) if isinstance(jitter, (int, float)) else None}


def failure_text(exc: BaseException) -> str:
    """One line for a failure to start or apply: field messages, or the exception."""
    if isinstance(exc, configuration.ConfigError):
        return "; ".join("%s: %s" % (k or "configuration", v) for k, v in exc.errors.items())
    text = str(exc).replace("\r", " ").replace("\n", " ")
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__
