"""The MQTT link to the house (issue 17): the one module that imports the MQTT client library
(aiomqtt, over paho-mqtt), loaded by runtime/house.py only when `[mqtt] broker` is set.

What it does (docs/HOME.md): connects with the configured user/password, optionally over TLS
with the CA verified, and a last will `offline` (retained) on `<prefix>/availability`; once
connected it publishes `online` (retained), Home Assistant's discovery configs (retained; an
entity the station no longer has gets an empty retained config), the `state` (retained JSON)
and then every queued event on `<prefix>/event` (not retained) and each ring on its button's
event-entity topic. It listens on `<prefix>/door/open` and hands a `PRESS` to `on_door_open`
(the caller decides whether to obey); a retained message there is never a press (it would
open the door at every reconnection), and the session is clean (no command queued while away
is delivered later). A lost or refused connection is retried forever with
back-off (BACKOFF_S, then BACKOFF_MAX_S, with jitter).

Never in the way of calls: the station only appends to a bounded deque (MAX_QUEUED events;
the oldest dropped and counted when full) and sets the latest state; everything that waits on
the network runs in this module's task, each publish bounded by PUBLISH_TIMEOUT_S. The
library's connect (which blocks on the socket) runs in an executor thread.

Public API:
    MqttLink(cfg: MqttConfig, device: homeassistant.Device, on_door_open, random=os.urandom)
    start(); await stop() (publishes `offline`, then disconnects)
    event(event) (queued), set_state(state dict) (latest wins), rediscover(device)
    snapshot: callable(id) -> JPEG bytes or None; a ring event's picture is then published,
    retained, to `<prefix>/snapshot` (the `image` entity)
    connected (bool), dropped (events dropped while the queue was full), connects (count)
"""

import asyncio
import collections
import json
import logging
import os
import ssl
import sys
from collections.abc import Callable

from firmware.app import homeassistant as ha
from firmware.config import parse_host_port
from firmware.settings import MqttConfig

# aiomqtt without paho-mqtt's optional DNS SRV support: paho imports dnspython's resolver when
# it can (about 50 ms and 3 MB here) for `connect_srv()`, which is never used. The station's own
# RFC 3263 resolver imports it when it needs it, later.
_NO_DNS = "dns.resolver" not in sys.modules
if _NO_DNS:
    sys.modules["dns.resolver"] = None  # type: ignore[assignment]  # reads as "not installed"
try:
    import aiomqtt
finally:
    if _NO_DNS:
        del sys.modules["dns.resolver"]

log = logging.getLogger("doorline.mqtt")

MAX_QUEUED = 100  # events kept while the broker is away
BACKOFF_S = (1.0, 2.0, 4.0, 8.0)
BACKOFF_MAX_S = 15.0
CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 5.0
KEEPALIVE_S = 30
SNAPSHOT_WAIT_S = 3.0  # a ring's picture is on disk within ~0.3 s (docs/BENCH.md)
SNAPSHOT_POLL_S = 0.05
DISCOVERY_COLLECT_S = 0.5  # how long retained discovery configs are gathered after subscribing


def _json(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"), default=str)


class MqttLink:
    def __init__(self, cfg: MqttConfig, device: ha.Device,
                 on_door_open: "Callable[[], None]",
                 random: "Callable[[int], bytes]" = os.urandom,
                 snapshot: "Callable[[str], bytes | None] | None" = None) -> None:
        self.cfg = cfg
        # the JPEG of a ring snapshot by id (None until written), for the `image` entity
        self.snapshot = snapshot
        self.device = device
        self.on_door_open = on_door_open
        self.random = random
        self.topics = ha.topics(device.prefix)
        self.queue: collections.deque[dict] = collections.deque()
        self.dropped = 0
        self.connects = 0
        self.connected = False
        self._state: dict | None = None
        self._state_sent: dict | None = None
        self._discovery_due = True
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._seen_configs: set[str] = set()  # retained discovery configs found on the broker

    # -- what the station calls (never waits) ------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    def event(self, event: dict) -> None:
        if len(self.queue) >= MAX_QUEUED:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(event)
        self._wake.set()

    def set_state(self, state: dict) -> None:
        self._state = state
        if state != self._state_sent:
            self._wake.set()

    def rediscover(self, device: ha.Device) -> None:
        self.device = device
        self._discovery_due = True
        self._wake.set()

    async def stop(self) -> None:
        task, self._task = self._task, None
        client = self._client
        if client is not None and self.connected:
            try:  # a clean disconnect sends no will: say offline ourselves
                await client.publish(self.topics["availability"], ha.NOT_AVAILABLE, qos=1,
                                     retain=True, timeout=0.4)
            except Exception as exc:  # gone already: the will says it
                log.debug("offline not published: %s", exc)
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass

    # -- the connection --------------------------------------------------------------------
    def _tls(self) -> ssl.SSLContext | None:
        if not self.cfg.tls:
            return None
        context = ssl.create_default_context(cafile=self.cfg.tls_ca or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _backoff(self, attempt: int) -> float:
        base = BACKOFF_S[attempt] if attempt < len(BACKOFF_S) else BACKOFF_MAX_S
        jitter = int.from_bytes(self.random(2), "big") / 65535.0 * 0.25 * base
        return base + jitter

    async def _run(self) -> None:
        host, port = parse_host_port(self.cfg.broker, 8883 if self.cfg.tls else 1883)
        attempt = 0
        while True:
            try:
                client = aiomqtt.Client(
                    host, port, username=self.cfg.username or None,
                    password=self.cfg.password or None,
                    identifier="doorline-" + self.device.device_id,
                    will=aiomqtt.Will(self.topics["availability"], ha.NOT_AVAILABLE, qos=1,
                                      retain=True),
                    tls_context=self._tls(), timeout=CONNECT_TIMEOUT_S,
                    keepalive=KEEPALIVE_S, logger=logging.getLogger("doorline.mqtt.client"))
                async with client:
                    self._client = client
                    self.connected = True
                    self.connects += 1
                    attempt = 0
                    log.info("MQTT connected to %s:%d", host, port)
                    await self._serve(client)
            except asyncio.CancelledError:
                raise
            except (aiomqtt.MqttError, OSError, TimeoutError, ValueError) as exc:
                delay = self._backoff(attempt)
                log.warning("MQTT %s:%d: %s; retrying in %.1f s", host, port, exc, delay)
            except Exception:  # a bug must not end the link for good
                delay = self._backoff(attempt)
                log.exception("MQTT link failed; retrying in %.1f s", delay)
            finally:
                self._client = None
                self.connected = False
            attempt += 1
            await asyncio.sleep(delay)

    async def _serve(self, client: aiomqtt.Client) -> None:
        await client.publish(self.topics["availability"], ha.AVAILABLE, qos=1, retain=True,
                             timeout=PUBLISH_TIMEOUT_S)
        await client.subscribe(self.topics["door_open"], qos=1, timeout=PUBLISH_TIMEOUT_S)
        self._discovery_due = True
        self._state_sent = None
        listener = asyncio.ensure_future(self._listen(client))
        try:
            while True:
                if listener.done():
                    listener.result()  # raises the connection's error
                    raise aiomqtt.MqttError("the message listener ended")
                if self._discovery_due:
                    self._discovery_due = False
                    await self._discover(client)
                if self._state is not None and self._state != self._state_sent:
                    state = self._state
                    await client.publish(self.topics["state"], _json(state), qos=1,
                                         retain=True, timeout=PUBLISH_TIMEOUT_S)
                    self._state_sent = state
                while self.queue:
                    event = self.queue[0]
                    await self._publish_event(client, event)
                    if self.queue and self.queue[0] is event:
                        self.queue.popleft()
                self._wake.clear()
                if self._state != self._state_sent or self.queue or self._discovery_due:
                    continue
                waiter = asyncio.ensure_future(self._wake.wait())
                await asyncio.wait({waiter, listener}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
        finally:
            listener.cancel()

    async def _publish_event(self, client: aiomqtt.Client, event: dict) -> None:
        if ha.is_ring(event, self.device.buttons):
            await client.publish(ha.ring_topic(self.device.prefix, event["role"]),
                                 _json(ha.ring_payload(event)), qos=1,
                                 timeout=PUBLISH_TIMEOUT_S)
        await client.publish(self.topics["event"], _json(event), qos=1,
                             timeout=PUBLISH_TIMEOUT_S)
        ident = event.get("snapshot")
        if self.snapshot is not None and isinstance(ident, str) and ha.is_ring(
                event, self.device.buttons):
            asyncio.ensure_future(self._publish_snapshot(client, ident))

    async def _publish_snapshot(self, client: aiomqtt.Client, ident: str) -> None:
        """The ring's picture to the `image` entity's topic, retained (Home Assistant shows the
        last one). The camera writes it on its own thread shortly after the ring: wait for it,
        at most SNAPSHOT_WAIT_S; a picture that never comes is skipped."""
        assert self.snapshot is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SNAPSHOT_WAIT_S
        while True:
            jpeg = await loop.run_in_executor(None, self.snapshot, ident)
            if jpeg:
                break
            if loop.time() >= deadline:
                log.info("MQTT: snapshot %s not ready after %.0f s; not published", ident,
                         SNAPSHOT_WAIT_S)
                return
            await asyncio.sleep(SNAPSHOT_POLL_S)
        try:
            await client.publish(self.topics["snapshot"], jpeg, qos=1, retain=True,
                                 timeout=PUBLISH_TIMEOUT_S)
        except Exception as exc:  # the connection's loop notices and reconnects
            log.info("MQTT: snapshot %s not published: %s", ident, exc)

    async def _listen(self, client: aiomqtt.Client) -> None:
        discovery_root = self.device.discovery_prefix + "/"
        async for message in client.messages:
            topic = str(message.topic)
            if topic == self.topics["door_open"]:
                payload = message.payload
                if message.retain:  # stored by the broker: not a press made now
                    log.warning("MQTT door/open: ignored a retained message (commands must "
                                "not be retained)")
                elif isinstance(payload, (bytes, bytearray)) and bytes(payload) == b"PRESS":
                    self.on_door_open()
                else:
                    log.info("MQTT door/open: ignored payload %r (expected PRESS)",
                             payload if not isinstance(payload, bytes) else payload[:32])
            elif topic.startswith(discovery_root) and message.payload:
                self._seen_configs.add(topic)

    async def _discover(self, client: aiomqtt.Client) -> None:
        """Publish every entity's config; clear (empty retained) the station's configs that
        the broker holds for entities it no longer has, e.g. a button removed from config."""
        device = self.device
        wanted = ha.discovery(device)
        self._seen_configs = set()
        pattern = "%s/+/%s/+/config" % (device.discovery_prefix, device.device_id)
        await client.subscribe(pattern, qos=1, timeout=PUBLISH_TIMEOUT_S)
        await asyncio.sleep(DISCOVERY_COLLECT_S)  # the broker sends the retained ones at once
        await client.unsubscribe(pattern, timeout=PUBLISH_TIMEOUT_S)
        keep = {topic for topic, _ in wanted}
        for topic in sorted(self._seen_configs - keep):
            log.info("MQTT discovery: removing %s", topic)
            await client.publish(topic, b"", qos=1, retain=True, timeout=PUBLISH_TIMEOUT_S)
        for topic, config in wanted:
            await client.publish(topic, _json(config), qos=1, retain=True,
                                 timeout=PUBLISH_TIMEOUT_S)
        self._state_sent = None  # entities read the state: send it after their configs
