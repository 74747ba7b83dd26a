"""Telling the house (issue 17): the event log's listener that feeds MQTT (runtime/mqtt.py)
and the webhooks (runtime/webhooks.py). Made by the station only when `[mqtt] broker` or a
`[[webhooks]]` entry is set (start-up budget, issue 14); each of those modules is imported
only when its own part is configured. It decides nothing: which events are rings, what the
state and the discovery configs hold is firmware/app/homeassistant.py.

Public API:
    House(station)   start(); await stop(); await reconfigure(old_cfg) after a config change;
                     metrics() (for /metrics: MQTT connected, webhook deliveries and failures)
    device_id(state_dir) -> the station's stable id (12 hex digits in <state_dir>/device_id)
    mqtt (MqttLink | None), webhooks (Webhooks | None)
"""

import asyncio
import logging
import os
from typing import TYPE_CHECKING

from firmware.app import homeassistant as ha

if TYPE_CHECKING:
    from firmware.runtime.mqtt import MqttLink
    from firmware.runtime.station import Station
    from firmware.runtime.webhooks import Webhooks
    from firmware.settings import Config

log = logging.getLogger("doorline.house")

DEVICE_ID_FILE = "device_id"
STATE_CHECK_S = 0.5  # the relay closes by itself: how often the published state is compared
VERSION = "0.1.0"


def device_id(state_dir: str) -> str:
    path = os.path.join(state_dir, DEVICE_ID_FILE)
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
        if len(text) == 12 and all(c in "0123456789abcdef" for c in text):
            return text
    except (OSError, UnicodeDecodeError):
        pass
    text = os.urandom(6).hex()
    try:
        with open(path, "w", encoding="ascii") as f:
            f.write(text + "\n")
    except OSError as exc:
        log.warning("cannot keep the device id in %s: %s", path, exc)
    return text


def _fields(device: ha.Device) -> list[object]:
    return [getattr(device, name) for name in device.__slots__]


class House:
    def __init__(self, station: "Station") -> None:
        self.station = station
        self.id = device_id(station.state_dir)
        self.mqtt: MqttLink | None = None
        self.webhooks: Webhooks | None = None
        self._unsubscribe = station.eventlog.subscribe(self._on_event)
        self._ticker: asyncio.TimerHandle | None = None

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._start_parts(self.station.cfg)

    def _start_parts(self, cfg: "Config") -> None:
        self._start_mqtt(cfg)
        self._start_webhooks(cfg)

    def _start_mqtt(self, cfg: "Config") -> None:
        if cfg.mqtt.broker:
            from firmware.runtime.mqtt import MqttLink

            self.mqtt = MqttLink(cfg.mqtt, self.device(cfg), self._door_command,
                                 snapshot=self._snapshot_jpeg)
            self.mqtt.set_state(self.state())
            self.mqtt.start()
            if self._ticker is None:
                self._tick()

    def _snapshot_jpeg(self, ident: str) -> "bytes | None":
        """A ring picture's JPEG by id (MQTT's `image` entity); None while not written yet.
        Runs on an executor thread: reads the service made by then, never makes it."""
        camera = self.station._camera
        return camera.store.read(ident) if camera is not None else None

    def _start_webhooks(self, cfg: "Config") -> None:
        if cfg.webhooks:
            from firmware.runtime.webhooks import Webhooks

            self.webhooks = Webhooks(cfg.webhooks)
            self.webhooks.start()

    async def _stop_mqtt(self) -> None:
        mqtt, self.mqtt = self.mqtt, None
        if mqtt is not None:
            await mqtt.stop()

    async def _stop_webhooks(self) -> None:
        hooks, self.webhooks = self.webhooks, None
        if hooks is not None:
            await hooks.stop()

    async def _stop_parts(self) -> None:
        await self._stop_mqtt()
        await self._stop_webhooks()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        self._unsubscribe()
        await self._stop_parts()

    async def reconfigure(self, old: "Config") -> None:
        """After a configuration was applied: restart what changed (a changed [mqtt] section
        connects again), or publish the discovery configs again (buttons, display name)."""
        cfg = self.station.cfg
        if old.webhooks != cfg.webhooks:
            await self._stop_webhooks()
            self._start_webhooks(cfg)
        if old.mqtt != cfg.mqtt:
            await self._stop_mqtt()
            self._start_mqtt(cfg)
        elif self.mqtt is not None:
            device = self.device(cfg)
            if _fields(device) != _fields(self.mqtt.device):
                self.mqtt.rediscover(device)

    def metrics(self) -> dict[str, int]:
        hooks = self.webhooks.stats() if self.webhooks is not None else []
        return {"mqtt_connected": int(self.mqtt is not None and self.mqtt.connected),
                "mqtt_events_dropped_total": self.mqtt.dropped if self.mqtt is not None else 0,
                "webhook_deliveries_total": sum(h["delivered"] for h in hooks),
                "webhook_failures_total": sum(h["failed"] for h in hooks),
                "webhook_dropped_total": sum(h["dropped"] for h in hooks)}

    # -- what is published -----------------------------------------------------------------
    def device(self, cfg: "Config") -> ha.Device:
        board = self.station.board
        relays = cfg.relay_roles() if board is None else \
            [r for r in cfg.relay_roles() if r in board.relays] + \
            sorted(r for r in board.relays if r not in cfg.relay_roles())
        contact = board is not None and "door_contact" in board.inputs
        camera = board is not None and getattr(board, "camera", None) is not None
        name = cfg.sip.display_name or "Doorline"
        return ha.Device(self.id, cfg.mqtt.topic_prefix or "doorline/" + self.id,
                         cfg.mqtt.discovery_prefix, name,
                         "Doorline " + (board.spec.name if board is not None else "station"),
                         VERSION, [b.role for b in cfg.buttons], relays, contact,
                         cfg.mqtt.allow_door_open, camera,
                         self._page_url(cfg), bool(cfg.sip.registrar))

    @staticmethod
    def _page_url(cfg: "Config") -> str:
        host, _, port = cfg.web.listen.rpartition(":")
        if host in ("0.0.0.0", "::", "[::]", ""):
            return ""
        return "%s://%s:%s/" % ("https" if cfg.web.https else "http", host, port)

    def state(self) -> dict:
        status = self.station.status()
        return ha.state(status["registration"].get("state", "unregistered"), status["calls"],
                        status.get("door") or {})

    def _tick(self) -> None:
        """While MQTT is on: the published state follows what changes without an event (the
        relay closing after its pulse)."""
        self._ticker = None
        if self.mqtt is None:
            return
        try:
            self.mqtt.set_state(self.state())
        except Exception:  # the state is read again at the next tick
            log.exception("reading the state for MQTT failed")
        self._ticker = self.station.loop.call_later(STATE_CHECK_S, self._tick)

    def _on_event(self, event: dict) -> None:
        if self.mqtt is not None:
            self.mqtt.event(event)
            # after the executors ran (a relay pulsed, a call placed): the state it left
            self.station.loop.call_soon(self._publish_state)
        if self.webhooks is not None:
            self.webhooks.event(event)

    def _publish_state(self) -> None:
        if self.mqtt is not None:
            self.mqtt.set_state(self.state())

    def _door_command(self) -> None:
        """`PRESS` on <prefix>/door/open: a door opening like any other, when allowed."""
        if not self.station.cfg.mqtt.allow_door_open:
            log.warning("MQTT door/open ignored: [mqtt] allow_door_open is off")
            return
        self.station.open_door(by="mqtt")
