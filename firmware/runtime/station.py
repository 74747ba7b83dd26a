"""The running door station: the asyncio shell that moves bytes, timers and events between the
sans-I/O cores and the world, and decides nothing.

One event loop drives the cores: the SIP user agent (firmware/sip), the session layer
(firmware/session: one Session per call, which negotiates media and parks answers) and the
door-station controller (firmware/app). After every input, `_kick()` sends what the SIP core
wants sent, hands the UA's events to the session layer, the session layer's events to their
executor (media: runtime/media.py) or to the controller, runs the controller's actions through
one table of executors, and arms one timer at the earliest deadline (`loop.call_at`; the loop's
monotonic clock is `now` everywhere). Hardware callbacks arrive on gpiozero's threads and are
moved onto the loop with `call_soon_threadsafe`; each call's media plays on its own thread.
What the web page and API use is in runtime/facade.py.
"""

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from firmware import config as configuration
from firmware.app import actions
from firmware.app.controller import Controller
from firmware.runtime.board import BoardExecutors
from firmware.runtime.callexec import CallExecutors, close_pair
from firmware.runtime.eventlog import EventLog
from firmware.runtime.facade import Facade, failure_text
from firmware.runtime.health import Health, Watchdog, install_test_hooks
from firmware.runtime.resolver import LocateError, Locator
from firmware.runtime.sdnotify import Notifier
from firmware.runtime.transferexec import TransferExecutors
from firmware.runtime.transport import Transports, client_tls_context
from firmware.session import events as ev
from firmware.session.session import SessionManager
from firmware.settings import Config, SipConfig
from firmware.sip import call as calls
from firmware.sip.endpoint import Peer
from firmware.sip.useragent import (
    MappingChanged,
    MessageRejected,
    RegistrationChanged,
    UASettings,
    UserAgent,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.runtime.camera import CameraService
    from firmware.runtime.faststart import Early
    from hal.base import Board

log = logging.getLogger("doorline")

SHUTDOWN_GRACE = 2.0  # SIGTERM must end the process within 3 s: unregister gets this long
RESOLVE_RETRY = 5.0
IDLE_TICK = 5.0
REJECT_LOG_INTERVAL = 10.0  # log a misbehaving source at most this often
MAX_REJECT_SOURCES = 256
HOUSE_STOP_S = 0.6  # MQTT's `offline` and the webhooks' tasks at shutdown
MAX_PASSES = 16  # bounded work per kick: each pass drains the cores' queues


class Station(Facade, CallExecutors, BoardExecutors, TransferExecutors):
    def __init__(self, cfg: Config, board: "Board | None", config_path: str | None = None,
                 state_dir: str = ".", loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.cfg = cfg
        self.board = board
        self.config_path = config_path
        self.state_dir = state_dir
        self.loop = loop or asyncio.get_event_loop()
        self.started_at = time.time()
        self.simulated = hasattr(board, "press")  # only simulated boards can be pressed remotely
        self.ua = None
        self.calls = None  # sip.call.CallManager
        self.sessions = None  # session.SessionManager: the calls by their one id
        self.transports = None
        self.ports = None
        self.rtp_host = ""
        # Set once SIP has an outcome (registered, failed, or direct-IP mode started): the web
        # page and the media code are loaded after it (firmware/__main__.py, warm_up()).
        self.sip_settled = asyncio.Event()
        self._prepared = False  # prepare() made the controller and the event log
        self.streams = {}  # call id → MediaStream (playing)
        self._pairs = {}  # call id → RTP/RTCP socket pair, bound, not yet playing
        self._spare_pair = None  # (port, pair) for the next incoming call (callexec.py)
        self._video_pairs = {}  # call id → the video's pair (issue 16), not yet playing
        self.videos = {}  # call id → VideoStream (playing)
        self._stats = {}  # call id → last media statistics, logged with its end
        self._started_at = {}  # call id → Unix time the call began (status())
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Future[None]] = set()  # running _move_port (kept referenced)
        self._stopping = False
        self._rejected_at: dict[str | None, float] = {}
        self._cue = None
        self._mixer = None  # a conference's mixer (runtime/conference.py)
        self._shared = None  # and its shared audio device (paced boards)
        self._camera = None
        self.counters = {"calls_total": 0, "door_openings_total": 0}
        # systemd: WATCHDOG=1 only while the loop turns, SIP is served and call audio moves.
        self.health = Health()
        self.watchdog = Watchdog(Notifier(), self.health)
        self._idle: asyncio.TimerHandle | None = None
        self._ready_sent = False
        # Why SIP is not running (None while it runs or is still starting): shown in status().
        self.sip_error = None
        self.sip_failed = False
        # The errors of a configuration file that could not be used at start: SIP stays off
        # until a valid configuration is saved through the API (docs/API.md).
        self.config_errors = {}
        self._sip_restart_at = None
        self._sip_changed_at = self.loop.time()
        self._sip_start = None  # the background task of begin_sip()
        # The REGISTER sent before asyncio was imported (runtime/faststart.py), taken over by
        # the first start_sip() when the parsed configuration still leads to it.
        self.early: Early | None = None
        self.house = None  # runtime/house.House while MQTT or webhooks are configured
        # The executors: one per event or action type, no dispatch by name.
        Table = dict[type, Callable[[Any], None]]
        self._ua_executors: Table = {RegistrationChanged: self._registration_changed,
                              MessageRejected: self._log_rejected,
                              MappingChanged: self._mapping_changed}
        self._session_executors: Table = {
            ev.OpenMedia: self._open_media, ev.StartMedia: self._start_media,
            ev.UpdateMedia: self._update_media, ev.StopMedia: self._stop_media,
            ev.CallOffered: self._call_offered, ev.CallStarted: self._call_started,
            ev.CallNotStarted: self._call_not_started, ev.CallRinging: self._call_ringing,
            ev.CallEstablished: self._call_established, ev.DigitReceived: self._digit,
            ev.CallEnded: self._call_ended, ev.CallRefused: self._call_refused,
            ev.RedirectRefused: self._redirect_refused,
            ev.TransferRequested: self._transfer_requested,
            ev.TransferRefused: self._transfer_refused,
            ev.MessageArrived: self._message_arrived, ev.MessageOutcome: self._message_outcome}
        self._action_executors: Table = {
            actions.PlaceCall: self._do_place_call, actions.Answer: self._do_answer,
            actions.Ring: self._do_ring, actions.Reject: self._do_reject,
            actions.Hangup: self._do_hangup, actions.PulseRelay: self._do_pulse_relay,
            actions.SetLed: self._do_set_led, actions.PlayCue: self._do_play_cue,
            actions.StopCue: self._do_stop_cue, actions.LogEvent: self._do_log_event,
            actions.Transfer: self._do_transfer,
            actions.RefuseTransfer: self._do_refuse_transfer,
            actions.SendMessage: self._do_send_message,
            actions.AnswerMessage: self._do_answer_message}

    # -- life cycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self.prepare()
        await self.start_sip()

    def prepare(self) -> None:
        """Everything but SIP: the event log, the controller, the board. The web page can be
        served from here on, whether or not SIP starts."""
        install_test_hooks(self.loop)
        self.watchdog.start(self.loop)
        self.eventlog = EventLog(self.state_dir, schedule=self.loop.call_later)
        self.controller = Controller(self.cfg, self.loop.time())
        self._prepared = True
        self._wire_board()
        self._start_house()
        self._idle_tick()

    def _start_house(self) -> None:
        """MQTT and webhooks (runtime/house.py), loaded only when configured (issue 14)."""
        if self.house is None and (self.cfg.mqtt.broker or self.cfg.webhooks):
            from firmware.runtime.house import House

            self.house = House(self)
            self.house.start()

    async def _reconfigure_house(self, old: Config) -> None:
        if self.house is not None:
            await self.house.reconfigure(old)
        else:
            self._start_house()

    def begin_sip(self) -> "asyncio.Future[None]":
        """start_sip() in the background (the registrar lookup may retry for a long time)."""
        self._sip_start = asyncio.ensure_future(self.start_sip())
        return self._sip_start

    async def start_sip(self) -> None:
        """Start SIP with the current settings. A failure never ends the process: the station
        keeps its web page, and status() says why SIP is not running."""
        if self.config_errors:
            self._drop_early()
            self._sip_failed(configuration.ConfigError(self.config_errors),
                             "the configuration file has errors; fix and save it")
            return
        try:
            await self._start_sip()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure: the page must stay up to fix it
            self._sip_failed(exc)
            return
        self._kick()

    def _sip_failed(self, exc: BaseException, hint: str | None = None) -> None:
        text = failure_text(exc)
        self.sip_error = "SIP not started: " + text + ("; " + hint if hint else "")
        self.sip_failed = True
        self._sip_changed_at = self.loop.time()
        log.error("%s", self.sip_error)
        self.sip_settled.set()
        if not self._ready_sent:
            self.watchdog.ready("SIP not started; web page only")
            self._ready_sent = True
        self.controller.registration_changed("failed", self.sip_error, self.loop.time())
        self._kick()

    async def _cancel_sip_start(self) -> None:
        task, self._sip_start = self._sip_start, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _idle_tick(self) -> None:
        """Every IDLE_TICK even without traffic: proves to the health monitor that the SIP
        layer is served, and re-arms the timers."""
        self._kick()
        self._idle = self.loop.call_later(IDLE_TICK, self._idle_tick)

    async def _start_sip(self) -> None:
        sip = self.cfg.sip
        host, port = configuration.parse_host_port(sip.listen)
        if not self._ready_sent:
            # Before the registrar lookup, which retries forever: systemd's start timeout must
            # not kill a station whose DNS is down (it keeps retrying, and says so).
            self.watchdog.ready("listening on %s:%d" % (host, port))
            self._ready_sent = True
        registrar = await self._locate_registrar() if sip.registrar else None
        self.sip_error, self.sip_failed = None, False
        early, self.early = self.early, None
        if early is not None and not early.matches(sip, (host, port), registrar):
            log.info("the early REGISTER does not match the configuration: starting SIP anew")
            early.close()
            early = None
        if early is not None:
            await self._take_over(early, host, port)
            self._remember(sip, host, port, registrar)
            return
        settings = UASettings.from_config(sip, host, port, sip.effective_domain(), registrar)
        try:
            tls = client_tls_context(sip.tls_ca) if sip.transport == "tls" else None
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise configuration.ConfigError(
                {"sip.tls_ca": "cannot be loaded: %s" % (getattr(exc, "reason", None) or exc)}) \
                from exc
        self.transports = Transports(self._on_receive, self._on_flow_failed, tls_context=tls)
        try:
            await self.transports.listen(host, port)
            self._start_ua(settings, host, port, registrar)
        except BaseException as exc:  # nothing half-started stays behind
            self.ua = None
            self.transports.close()
            if isinstance(exc, OSError):
                raise configuration.ConfigError(
                    {"sip.listen": "cannot be used: %s" % (exc.strerror or exc)}) from exc
            raise
        self._remember(sip, host, port, registrar)

    def _remember(self, sip: "SipConfig", host: str, port: int, registrar: Peer | None) -> None:
        """The start plan for the next start (runtime/faststart.py), when it changed."""
        if self.config_path is not None:
            from firmware.runtime import faststart

            faststart.remember(self.state_dir, self.config_path, sip, (host, port), registrar)

    async def _take_over(self, early: "Early", host: str, port: int) -> None:
        """Carry on with the UA and the socket that registered before the start (its events
        are still queued: the next _kick() reports the registration as usual)."""
        self.transports = Transports(self._on_receive, self._on_flow_failed)
        try:
            await self.transports.listen(host, port, udp_sock=socket.socket(
                early.sock.family, socket.SOCK_DGRAM, fileno=early.sock.detach()))
        except BaseException as exc:
            self.transports.close()
            if isinstance(exc, OSError):
                raise configuration.ConfigError(
                    {"sip.listen": "cannot be used: %s" % (exc.strerror or exc)}) from exc
            raise
        self._start_ua(early.ua.settings, host, port, early.registrar, ua=early.ua)
        log.info("SIP started before the rest of the station (runtime/faststart.py): "
                 "registration %s", self.ua.status()["state"] if self.ua else "?")
        for data, addr in early.held:
            self._on_receive(data, Peer("udp", addr[0], addr[1]))

    def _drop_early(self) -> None:
        early, self.early = self.early, None
        if early is not None:
            early.close()

    def _start_ua(self, settings: UASettings, host: str, port: int,
                  registrar: Peer | None, ua: UserAgent | None = None) -> None:
        """`ua`: one that was started already (runtime/faststart.py)."""
        self.ua = ua or UserAgent(settings)
        self._sip_changed_at = self.loop.time()
        limits = self.cfg.calls
        self.calls = calls.CallManager(
            self.ua, max_calls=limits.call_limit(), ring_timeout=limits.ring_timeout_s,
            max_duration=limits.max_duration_s,
            max_auto_duration=self.cfg.answer.max_duration_s,
            follow_redirects=limits.follow_redirects, identity=self.cfg.answer.identity)
        self.sessions = SessionManager(self.calls, self.cfg.media,
                                       delayed_offer=limits.delayed_offer)
        self.ports, self.rtp_host = None, host  # the pool comes with warm_up() or the first call
        log.info("listening on %s:%d (%s); registrar %s", host, port, self.cfg.sip.transport,
                 "%s:%s" % (registrar.host, registrar.port) if registrar else
                 "none (direct-IP mode)")
        if registrar is None:
            self.controller.registration_changed("disabled", None, self.loop.time())
            self.sip_settled.set()
        if ua is None:
            self.ua.start(self.loop.time())

    def warm_up(self) -> None:
        """After the start (firmware/__main__.py): load what a call needs (runtime/media.py,
        the codecs' tables, the RTP stack) and make the RTP port pool, so that neither the
        REGISTER nor the first INVITE pays for it."""
        import firmware.runtime.media  # noqa: F401  (the import is the work)

        if self.ua is not None:
            self._port_pool()
        self.camera_service()

    def camera_service(self) -> "CameraService | None":
        """The camera's service when the board has a camera and `[camera] enabled` (made at
        the first need; the camera itself opens only while someone uses it)."""
        camera = self.board.camera if self.board is not None else None
        if camera is None or not self.cfg.camera.enabled:
            return None
        if self._camera is None:
            from firmware.runtime.camera import CameraService

            self._camera = CameraService(camera, self.cfg.camera, self.state_dir)
        elif self._camera.cfg != self.cfg.camera:
            self._camera.update_config(self.cfg.camera)
        return self._camera

    async def _locate_registrar(self) -> Peer:
        sip = self.cfg.sip
        text = sip.registrar.strip()
        has_port = text.startswith("[") and "]:" in text or \
            (not text.startswith("[") and text.count(":") == 1)
        host, port = configuration.parse_host_port(text) if has_port else (text, None)
        locator = Locator()
        while True:
            try:
                return (await locator.locate(host, port, sip.transport))[0]
            except LocateError as exc:
                log.warning("registrar: %s; retrying in %.0f s", exc, RESOLVE_RETRY)
                self.sip_error = "registrar not found: %s; retrying every %.0f s" % (
                    exc, RESOLVE_RETRY)
                await asyncio.sleep(RESOLVE_RETRY)

    async def _stop_sip(self) -> None:
        """End calls with BYE/CANCEL and unregister (Expires: 0), bounded by SHUTDOWN_GRACE."""
        if self.ua is None:
            return
        assert self.sessions is not None and self.transports is not None  # made with the UA
        now = self.loop.time()
        self.sessions.hangup_all(now)
        self.ua.stop(now)
        self._kick()
        deadline = self.loop.time() + SHUTDOWN_GRACE
        while self.loop.time() < deadline and self.ua.awaiting_final_responses():
            await asyncio.sleep(0.02)
        for stream in list(self.streams.values()):
            stream.stop()
        self.streams.clear()
        for pair in self._pairs.values():
            close_pair(pair)
        self._pairs.clear()
        self._close_spare_pair()
        for video in list(self.videos.values()):
            video.stop()
        self.videos.clear()
        for pair in self._video_pairs.values():
            close_pair(pair)
        self._video_pairs.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transports.close()
        try:
            await self.transports.wait_closed()
        except TimeoutError:
            log.warning("SIP sockets were slow to close")
        self.ua = None

    async def stop(self) -> None:
        if self._stopping:
            return
        self._stopping = True
        self.watchdog.stopping()
        await self._cancel_sip_start()
        self._drop_early()
        if self._idle is not None:
            self._idle.cancel()
        self._stop_cue()
        await self._stop_sip()
        if self._camera is not None:
            self._camera.close()
        if self.house is not None:  # `offline` published, the rest dropped: within the 3 s
            try:
                await asyncio.wait_for(self.house.stop(), HOUSE_STOP_S)
            except (TimeoutError, Exception):
                log.warning("MQTT/webhooks did not stop cleanly within %.1f s", HOUSE_STOP_S)
        if self._prepared:
            self.eventlog.close()  # batched events and open summaries reach the file
        if self.board is not None:
            self.board.close()

    # -- the drive: bytes, timers and events between the cores --------------------------------
    def _on_receive(self, data: bytes, peer: Peer) -> None:
        if self.ua is not None:
            self.ua.receive(data, peer, self.loop.time())
            self._kick()

    def _on_flow_failed(self, peer: Peer) -> None:
        if self.ua is not None:
            self.ua.flow_failed(peer, self.loop.time())
            self._kick()

    def _on_timer(self) -> None:
        self._timer = None
        now = self.loop.time()
        if self.ua is not None:
            self.ua.handle_timer(now)
        self.controller.handle_timer(now)
        self._kick()

    def _kick(self) -> None:
        """Move everything the cores produced, in order: SIP datagrams to the sockets, the UA's
        events to the session layer (or their executor), the session layer's events to the media
        executors and the controller, the controller's actions to their executors."""
        for _ in range(MAX_PASSES):
            progressed = False
            if self.ua is not None:
                assert self.sessions is not None and self.transports is not None  # with the UA
                self._send_datagrams()
                progressed |= self._drain(self.ua.next_event, self._on_ua_event)
                progressed |= self._drain(self.sessions.next_event, self._run_executor,
                                          self._session_executors)
            progressed |= self._drain(self.controller.next_action, self._run_executor,
                                      self._action_executors)
            if not progressed:
                break
        self._arm_timer()
        self.health.beat("sip")

    @staticmethod
    def _drain(next_item: "Callable[[], Any]", handle: "Callable[..., None]",
               *args: Any) -> bool:
        progressed = False
        while True:
            item = next_item()
            if item is None:
                return progressed
            progressed = True
            handle(item, *args)

    def _on_ua_event(self, event: Any) -> None:
        assert self.sessions is not None  # made with the UA, whose events these are
        if self.sessions.on_sip_event(event, self.loop.time()):
            return
        self._run_executor(event, self._ua_executors)

    def _send_datagrams(self) -> None:
        assert self.ua is not None and self.transports is not None  # SIP runs
        for data, peer in self.ua.datagrams_to_send():
            self.transports.send(data, peer)

    def _run_executor(self, item: Any, table: "dict[type, Callable[[Any], None]]") -> None:
        executor = table.get(type(item))
        if executor is None:
            log.warning("no executor for %r", item)
            return
        try:
            executor(item)
        except Exception:  # one failed action must not stop the station
            log.exception("%r failed", item)
        # What the executor made the SIP core send (the 200 to an auto-answered INVITE) leaves
        # now, not after the rest of the pass (a cue's thread, the event log, the LEDs, the
        # media thread): issue 14, INVITE -> 200.
        if self.ua is not None and self.transports is not None:
            self._send_datagrams()

    def _arm_timer(self) -> None:
        due = [self.controller.get_timer()]
        if self.ua is not None:
            due.append(self.ua.get_timer())
        timers = [t for t in due if t is not None]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timers:
            self._timer = self.loop.call_at(max(min(timers), self.loop.time()), self._on_timer)

    # -- the UA's own events -------------------------------------------------------------------
    def _registration_changed(self, event: RegistrationChanged) -> None:
        if event.error:
            log.warning("registration %s: %s", event.state, event.error)
        else:
            log.info("registration %s", event.state)
        self.controller.registration_changed(event.state, event.error, self.loop.time())
        if event.state != "unregistered":  # the start reports "unregistered": no outcome yet
            self.sip_settled.set()
        self.watchdog.status("registration %s%s" % (
            event.state, ": " + event.error if event.error else ""))

    def _mapping_changed(self, event: MappingChanged) -> None:
        log.warning("the registrar now sees us at %s:%d (was %s:%d): NAT mapping changed, "
                    "re-registering from a new local port", *(event.new + event.old))
        self.eventlog.append("nat_mapping_changed", old="%s:%d" % event.old,
                             new="%s:%d" % event.new)
        task = asyncio.ensure_future(self._move_port())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _move_port(self) -> None:
        """A fresh local UDP port for the UA (firmware/sip/useragent.py move_to_port)."""
        transports, ua = self.transports, self.ua
        if transports is None or ua is None:
            return
        try:
            port: int | None = await transports.add_udp_port()
            log.info("SIP now leaves from local UDP port %d", port)
        except OSError as exc:
            log.warning("no new local UDP port (%s): re-registering through the old one", exc)
            port = None
        if self.ua is ua:
            ua.move_to_port(port, self.loop.time())
            self._kick()

    def _log_rejected(self, event: MessageRejected) -> None:
        request = event.request
        if request is not None and request.method == "INVITE":
            # docs/SECURITY.md: an untrusted call attempt is logged with caller and source; the
            # event log summarises them per source address (firmware/app/auditlog.py).
            self.eventlog.append(
                "caller_rejected", caller=request.headers.get("From"),
                source="%s:%s:%s" % (event.source.transport, event.source.host,
                                     event.source.port),
                direction="incoming", outcome="rejected", reason=event.reason, setting=None)
        # The journal: once per REJECT_LOG_INTERVAL per address (a new source port is free).
        key = event.source.host if event.source else None
        now = self.loop.time()
        if now - self._rejected_at.get(key, -REJECT_LOG_INTERVAL) < REJECT_LOG_INTERVAL:
            return
        if len(self._rejected_at) >= MAX_REJECT_SOURCES:
            self._rejected_at.clear()
        self._rejected_at[key] = now
        log.info("rejected from %s:%s: %s", key or "?",
                 event.source.port if event.source else "?", event.reason)
