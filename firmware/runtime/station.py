"""The running door station: the asyncio shell around the sans-I/O cores.

One event loop; the SIP core is driven by `_kick()` after every input: it sends what the core
wants sent, hands its events on, and arms a single timer at the core's next deadline
(`loop.call_at`, the loop's monotonic clock is `now` everywhere).
"""

import asyncio
import logging
import time

from firmware import config as configuration
from firmware.runtime.resolver import LocateError, Locator
from firmware.runtime.transport import Transports, client_tls_context
from firmware.sip.useragent import RegistrationChanged, Rejected, UserAgent

log = logging.getLogger("doorline")

SHUTDOWN_GRACE = 2.0  # SIGTERM must end the process within 3 s: unregister gets this long
RESOLVE_RETRY = 5.0


class Station:
    def __init__(self, cfg, board=None, state_dir=None, loop=None):
        self.cfg = cfg
        self.board = board
        self.state_dir = state_dir
        self.loop = loop or asyncio.get_event_loop()
        self.ua = None
        self.transports = None
        self.started_at = time.time()
        self._timer = None
        self._stopping = False
        self.listeners = []  # callables(event) for status/event log

    # -- life cycle ------------------------------------------------------------------------
    async def start(self):
        sip = self.cfg["sip"]
        host, port = configuration.parse_host_port(sip["listen"])
        registrar = None
        if sip["registrar"]:
            registrar = await self._locate_registrar()
        settings = {
            "host": host, "port": port, "transport": sip["transport"],
            "username": sip["username"] or "door", "password": sip["password"],
            "domain": sip["domain"], "display_name": sip["display_name"],
            "expires": sip["expires"], "registrar": registrar,
            "registrar_hostport": sip["registrar"],
        }
        tls = client_tls_context(sip["tls_ca"]) if sip["transport"] == "tls" else None
        self.transports = Transports(self._on_receive, self._on_flow_failed, tls_context=tls)
        await self.transports.listen(host, port)
        self.ua = UserAgent(settings)
        log.info("listening on %s:%d (%s); registrar %s", host, port, sip["transport"],
                 f"{registrar.host}:{registrar.port}" if registrar else "none (direct-IP mode)")
        self.ua.start(self.loop.time())
        self._kick()

    async def _locate_registrar(self):
        sip = self.cfg["sip"]
        host, port = configuration.parse_host_port(sip["registrar"], None) \
            if ":" in sip["registrar"].strip("[]") or sip["registrar"].startswith("[") \
            else (sip["registrar"], None)
        locator = Locator()
        while True:
            try:
                peers = await locator.locate(host, port, sip["transport"])
                return peers[0]
            except LocateError as exc:
                log.warning("registrar: %s; retrying in %.0f s", exc, RESOLVE_RETRY)
                await asyncio.sleep(RESOLVE_RETRY)

    async def stop(self):
        """Unregister (Expires: 0) and end calls, bounded by SHUTDOWN_GRACE."""
        if self._stopping:
            return
        self._stopping = True
        if self.ua is not None:
            self.ua.stop(self.loop.time())
            self._kick()
            deadline = self.loop.time() + SHUTDOWN_GRACE
            while self.loop.time() < deadline and self.ua.status()["state"] == "registered":
                await asyncio.sleep(0.02)
        if self._timer is not None:
            self._timer.cancel()
        if self.transports is not None:
            self.transports.close()

    def status(self):
        return {
            "registration": self.ua.status() if self.ua else {"state": "unregistered"},
            "uptime_s": int(time.time() - self.started_at),
        }

    # -- the sans-I/O drive ----------------------------------------------------------------
    def _on_receive(self, data, peer):
        self.ua.receive(data, peer, self.loop.time())
        self._kick()

    def _on_flow_failed(self, peer):
        if self.ua is not None:
            self.ua.flow_failed(peer, self.loop.time())
            self._kick()

    def _on_timer(self):
        self._timer = None
        self.ua.handle_timer(self.loop.time())
        self._kick()

    def _kick(self):
        for data, peer in self.ua.datagrams_to_send():
            self.transports.send(data, peer)
        while True:
            event = self.ua.next_event()
            if event is None:
                break
            self._on_event(event)
        when = self.ua.get_timer()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if when is not None:
            self._timer = self.loop.call_at(max(when, self.loop.time()), self._on_timer)

    def _on_event(self, event):
        if isinstance(event, RegistrationChanged):
            if event.error:
                log.warning("registration %s: %s", event.state, event.error)
            else:
                log.info("registration %s", event.state)
        elif isinstance(event, Rejected):
            log.info("rejected from %s:%s: %s", event.source.host, event.source.port,
                     event.reason)
        for listener in self.listeners:
            listener(event)
