"""The running door station: the asyncio shell around the sans-I/O cores.

One event loop drives everything I/O-free: the SIP user agent and call layer, and the door-station
controller. After every input, `_kick()` sends what the SIP core wants sent, hands its events on,
runs the controller's actions, and arms one timer at the earliest deadline (`loop.call_at`; the
loop's monotonic clock is `now` everywhere). Hardware callbacks arrive on gpiozero's threads and
are moved onto the loop with `call_soon_threadsafe`; each call's media runs on its own thread
(runtime/media.py).

The methods under "facade" are what the web page and API use.
"""

import asyncio
import ipaddress
import logging
import threading
import time

from firmware import config as configuration
from firmware.app.controller import Controller
from firmware.codecs.tones import CUES, cue_frames
from firmware.rtp.dtmf import parse_info_body
from firmware.runtime.eventlog import EventLog
from firmware.runtime.health import Health, Watchdog, install_test_hooks
from firmware.runtime.media import LOG_DIGITS, MediaStream, PortPool
from firmware.runtime.resolver import LocateError, Locator
from firmware.runtime.sdnotify import Notifier
from firmware.runtime.transport import Transports, client_tls_context
from firmware.sdp.offer_answer import OfferAnswerError
from firmware.sip import call as calls
from firmware.sip.endpoint import Peer
from firmware.sip.errors import ParseError
from firmware.sip.transaction import CALLING, PROCEEDING, TRYING, ClientTransaction
from firmware.sip.uri import URI
from firmware.sip.useragent import RegistrationChanged, Rejected, UserAgent

log = logging.getLogger("doorline")

AWAITING_FINAL = (CALLING, TRYING, PROCEEDING)
SHUTDOWN_GRACE = 2.0  # SIGTERM must end the process within 3 s: unregister gets this long
RESOLVE_RETRY = 5.0
IDLE_TICK = 5.0
REJECT_LOG_INTERVAL = 10.0  # log a misbehaving source at most this often
MAX_REJECT_SOURCES = 256


class Station:
    def __init__(self, cfg, board, config_path=None, state_dir=".", loop=None):
        self.cfg = cfg
        self.board = board
        self.config_path = config_path
        self.state_dir = state_dir
        self.loop = loop or asyncio.get_event_loop()
        self.started_at = time.time()
        self.simulated = hasattr(board, "press")  # only simulated boards can be pressed remotely
        self.ua = None
        self.calls = None
        self.transports = None
        self.controller = None
        self.eventlog = None
        self.media = {}  # call id → MediaStream
        self.sip_calls = {}  # call id → calls.Call
        self._answers = {}  # call id → our SDP answer, until the controller decides
        self._timer = None
        self._stopping = False
        self._rejected_at = {}
        self._cue = None
        self.counters = {"calls_total": 0, "door_openings_total": 0}
        # systemd: WATCHDOG=1 only while the loop turns, SIP is served and call audio moves.
        self.health = Health()
        self.watchdog = Watchdog(Notifier(), self.health)
        self._idle = None
        self._ready_sent = False
        # Why SIP is not running (None while it runs or is still starting): shown in status().
        self.sip_error = None
        self.sip_failed = False
        # The errors of a configuration file that could not be used at start: SIP stays off
        # until a valid configuration is saved through the API (docs/API.md).
        self.config_errors = {}
        self._sip_start = None  # the background task of begin_sip()

    # -- life cycle ------------------------------------------------------------------------
    async def start(self):
        self.prepare()
        await self.start_sip()

    def prepare(self):
        """Everything but SIP: the event log, the controller, the board. The web page can be
        served from here on, whether or not SIP starts."""
        install_test_hooks(self.loop)
        self.watchdog.start(self.loop)
        self.eventlog = EventLog(self.state_dir, schedule=self.loop.call_later)
        self.controller = Controller(self.cfg, self.loop.time())
        self._wire_board()
        self._idle_tick()

    def begin_sip(self):
        """start_sip() in the background (the registrar lookup may retry for a long time)."""
        self._sip_start = asyncio.ensure_future(self.start_sip())
        return self._sip_start

    async def start_sip(self):
        """Start SIP with the current settings. A failure never ends the process: the station
        keeps its web page, and status() says why SIP is not running."""
        if self.config_errors:
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

    def _sip_failed(self, exc, hint=None):
        text = _failure_text(exc)
        self.sip_error = "SIP not started: " + text + ("; " + hint if hint else "")
        self.sip_failed = True
        log.error("%s", self.sip_error)
        if not self._ready_sent:
            self.watchdog.ready("SIP not started; web page only")
            self._ready_sent = True
        self.controller.registration_changed("failed", self.sip_error, self.loop.time())
        self._kick()

    async def _cancel_sip_start(self):
        task, self._sip_start = self._sip_start, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    def _idle_tick(self):
        """Every IDLE_TICK even without traffic: proves to the health monitor that the SIP
        layer is served, and re-arms the timers."""
        self._kick()
        self._idle = self.loop.call_later(IDLE_TICK, self._idle_tick)

    async def _start_sip(self):
        sip = self.cfg["sip"]
        host, port = configuration.parse_host_port(sip["listen"])
        if not self._ready_sent:
            # Before the registrar lookup, which retries forever: systemd's start timeout must
            # not kill a station whose DNS is down (it keeps retrying, and says so).
            self.watchdog.ready("listening on %s:%d" % (host, port))
            self._ready_sent = True
        registrar = await self._locate_registrar() if sip["registrar"] else None
        self.sip_error, self.sip_failed = None, False
        settings = {
            "host": host, "port": port, "transport": sip["transport"],
            "username": sip["username"] or "door", "password": sip["password"],
            "domain": configuration.effective_domain(self.cfg) or host,
            "display_name": sip["display_name"],
            "expires": sip["expires"], "registrar": registrar,
            "registrar_hostport": sip["registrar"],
        }
        try:
            tls = client_tls_context(sip["tls_ca"]) if sip["transport"] == "tls" else None
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

    def _start_ua(self, settings, host, port, registrar):
        sip = self.cfg["sip"]
        self.ua = UserAgent(settings)
        limits = self.cfg["calls"]
        self.calls = calls.CallManager(
            self.ua, max_calls=limits["max_calls"], ring_timeout=limits["ring_timeout_s"],
            max_duration=limits["max_duration_s"],
            max_auto_duration=self.cfg["answer"]["max_duration_s"],
            follow_redirects=limits["follow_redirects"], identity=self.cfg["answer"]["identity"])
        low, high = (int(p) for p in self.cfg["media"]["rtp_ports"].split("-"))
        self.ports = PortPool(host, low, high)
        log.info("listening on %s:%d (%s); registrar %s", host, port, sip["transport"],
                 f"{registrar.host}:{registrar.port}" if registrar else "none (direct-IP mode)")
        if registrar is None:
            self.controller.registration_changed("disabled", None, self.loop.time())
        self.ua.start(self.loop.time())

    async def _locate_registrar(self):
        sip = self.cfg["sip"]
        text = sip["registrar"].strip()
        has_port = text.startswith("[") and "]:" in text or \
            (not text.startswith("[") and text.count(":") == 1)
        host, port = configuration.parse_host_port(text) if has_port else (text, None)
        locator = Locator()
        while True:
            try:
                return (await locator.locate(host, port, sip["transport"]))[0]
            except LocateError as exc:
                log.warning("registrar: %s; retrying in %.0f s", exc, RESOLVE_RETRY)
                self.sip_error = "registrar not found: %s; retrying every %.0f s" % (
                    exc, RESOLVE_RETRY)
                await asyncio.sleep(RESOLVE_RETRY)

    async def _stop_sip(self):
        """End calls with BYE/CANCEL and unregister (Expires: 0), bounded by SHUTDOWN_GRACE."""
        if self.ua is None:
            return
        now = self.loop.time()
        self.calls.hangup_all(now)
        self.ua.stop(now)
        self._kick()
        deadline = self.loop.time() + SHUTDOWN_GRACE
        while self.loop.time() < deadline and self._awaiting_answers():
            await asyncio.sleep(0.02)
        for media in list(self.media.values()):
            media.stop()
        self.media.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.transports.close()
        try:
            await self.transports.wait_closed()
        except TimeoutError:
            log.warning("SIP sockets were slow to close")
        self.ua = None

    def _awaiting_answers(self):
        """Is the unregister or a BYE/CANCEL still waiting for its final response?"""
        return any(isinstance(tx, ClientTransaction) and tx.state in AWAITING_FINAL
                   for tx in self.ua.endpoint.table)

    async def stop(self):
        if self._stopping:
            return
        self._stopping = True
        self.watchdog.stopping()
        await self._cancel_sip_start()
        if self._idle is not None:
            self._idle.cancel()
        self._stop_cue()
        await self._stop_sip()
        if self.eventlog is not None:
            self.eventlog.close()  # batched events and open summaries reach the file
        if self.board is not None:
            self.board.close()

    # -- hardware ----------------------------------------------------------------------------
    def _wire_board(self):
        if self.board is None:
            return
        for role, button in self.board.buttons.items():
            button.when_pressed = self._threadsafe(self._button, role, True)
            button.when_released = self._threadsafe(self._button, role, False)

    def _threadsafe(self, handler, *args):
        def callback():
            self.loop.call_soon_threadsafe(handler, *args)
        return callback

    def _button(self, role, pressed):
        now = self.loop.time()
        if pressed:
            self.controller.button_pressed(role, now)
        else:
            self.controller.button_released(role, now)
        self._kick()

    # -- the sans-I/O drive ----------------------------------------------------------------
    def _on_receive(self, data, peer):
        if self.ua is not None:
            self.ua.receive(data, peer, self.loop.time())
            self._kick()

    def _on_flow_failed(self, peer):
        if self.ua is not None:
            self.ua.flow_failed(peer, self.loop.time())
            self._kick()

    def _on_timer(self):
        self._timer = None
        now = self.loop.time()
        if self.ua is not None:
            self.ua.handle_timer(now)
        self.controller.handle_timer(now)
        self._kick()

    def _kick(self):
        """Move everything the cores produced; bounded because each pass drains queues."""
        for _ in range(16):
            progressed = False
            if self.ua is not None:
                for data, peer in self.ua.datagrams_to_send():
                    self.transports.send(data, peer)
                while True:
                    event = self.ua.next_event()
                    if event is None:
                        break
                    progressed = True
                    self._on_sip_event(event)
            while True:
                action = self.controller.next_action()
                if action is None:
                    break
                progressed = True
                self._do(action)
            if not progressed:
                break
        self._arm_timer()
        self.health.beat("sip")

    def _arm_timer(self):
        timers = [self.controller.get_timer()]
        if self.ua is not None:
            timers.append(self.ua.get_timer())
        timers = [t for t in timers if t is not None]
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timers:
            self._timer = self.loop.call_at(max(min(timers), self.loop.time()), self._on_timer)

    # -- SIP events --------------------------------------------------------------------------
    def _on_sip_event(self, event):
        now = self.loop.time()
        if isinstance(event, RegistrationChanged):
            if event.error:
                log.warning("registration %s: %s", event.state, event.error)
            else:
                log.info("registration %s", event.state)
            self.controller.registration_changed(event.state, event.error, now)
            self.watchdog.status("registration %s%s" % (
                event.state, ": " + event.error if event.error else ""))
        elif isinstance(event, Rejected):
            self._log_rejected(event)
        elif isinstance(event, calls.IncomingCall):
            self._incoming(event.call, now)
        elif isinstance(event, calls.CallRinging):
            self.controller.call_ringing(event.call.id, now)
        elif isinstance(event, calls.CallEstablished):
            self._established(event, now)
        elif isinstance(event, calls.OfferReceived):
            self._reoffer(event, now)
        elif isinstance(event, calls.AnswerReceived):
            media = self.media.get(event.call.id)
            if media is not None:
                self._accept_answer(event.call, media, event.sdp, now)
        elif isinstance(event, calls.InfoReceived):
            digit = parse_info_body(event.content_type, event.body)
            if digit is not None:
                if LOG_DIGITS:
                    log.info("call %s: DTMF digit %s received (INFO)", event.call.id, digit)
                self.controller.dtmf(event.call.id, digit, now)
        elif isinstance(event, calls.CallEnded):
            self._ended(event, now)
        elif isinstance(event, calls.RedirectRefused):
            log.warning("call %s: %d redirect from %s to %s refused: %s", event.call.id,
                        event.status, event.target, event.uri, event.reason)
            self.eventlog.append("redirect_refused", call_id=event.call.id, target=event.target,
                                 uri=event.uri, status=event.status, reason=event.reason)

    def _log_rejected(self, event):
        request = event.request
        if request is not None and request.method == "INVITE":
            # INTERFACE.md: an untrusted call attempt is logged with caller and source; the
            # event log summarises them per source address (firmware/app/auditlog.py).
            self.eventlog.append(
                "caller_rejected", caller=request.headers.get("From"),
                source="%s:%s:%s" % (event.source.transport, event.source.host,
                                     event.source.port),
                direction="incoming", outcome="rejected", reason=event.reason)
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

    def _incoming(self, call, now):
        self.sip_calls[call.id] = call
        source = call.source
        try:
            media = self._new_media(call.id, source.transport == "tls")
        except OSError as exc:  # no free RTP port pair, no file descriptor (issue 12)
            log.warning("call from %s refused: no media: %s", call.peer, exc)
            call.reject(503, now, "Service Unavailable")
            self.eventlog.append("call", direction="incoming", peer=call.peer,
                                 outcome="rejected", reason="no media: %s" % exc)
            return
        problem = media.check_keys_policy()
        if problem is None and call.remote_sdp is None:
            problem = "INVITE without an SDP offer is not supported"
        answer = None
        if problem is None:
            try:
                answer = media.answer_offer(call.remote_sdp)
            except OfferAnswerError as exc:
                problem = "no acceptable media: %s" % exc
        if problem is not None:
            log.warning("call from %s refused: %s", call.peer, problem)
            media.stop()
            call.reject(488, now, "Not Acceptable Here")
            self.eventlog.append("call", direction="incoming", peer=call.peer,
                                 outcome="rejected", reason=problem)
            return
        self.media[call.id] = media
        self._answers[call.id] = answer
        self.controller.incoming_call(
            call.id, call.peer, "%s:%s:%s" % (source.transport, source.host, source.port),
            call.trusted, call.requested_answer_mode, now, source_ip=source.host)

    def _new_media(self, call_id, secure):
        media_cfg = dict(self.cfg["media"],
                         srtp_requires_tls=configuration.srtp_requires_tls(self.cfg))
        return MediaStream(call_id, media_cfg, self.ports.host, self.ports,
                           self.board.audio if self.board is not None else None, self.loop,
                           self._on_digit, signalling_secure=secure,
                           on_beat=lambda: self.health.beat("audio"))

    def _established(self, event, now):
        call = event.call
        media = self.media.get(call.id)
        if call.direction == "outgoing" and media is not None:
            self._stop_cue()
            if not self._accept_answer(call, media, event.sdp, now):
                return
            self._start_media(call.id, media)
        self.controller.call_established(call.id, now, peer=call.peer)

    def _accept_answer(self, call, media, sdp, now):
        try:
            media.accept_answer(sdp)
            return True
        except (OfferAnswerError, ValueError) as exc:
            log.warning("call %s: unusable answer: %s", call.id, exc)
            call.hangup(now)
            return False

    def _start_media(self, call_id, media):
        if self.board is not None:
            self.board.audio.begin_call(call_id)
        media.start()
        self.health.require("audio", True)

    def _reoffer(self, event, now):
        media = self.media.get(event.call.id)
        if media is None:
            event.call.reject_offer(488, now)
            return
        try:
            event.call.accept_offer(media.answer_offer(event.sdp), now)
        except OfferAnswerError:
            event.call.reject_offer(488, now)

    def _ended(self, event, now):
        call = event.call
        self.sip_calls.pop(call.id, None)
        self._answers.pop(call.id, None)
        media = self.media.pop(call.id, None)
        stats = None
        if media is not None:
            stats = media.stats()
            media.stop()
            if self.board is not None and media.started_at is not None:
                self.board.audio.end_call()
        if not self.media:
            self.health.require("audio", False)
        self._stop_cue()
        log.info("call %s ended: %s %s", call.id, event.reason, event.status or "")
        self.controller.call_ended(call.id, event.reason, event.status, now)
        if stats:
            log.info("call %s media: %s", call.id, _short_stats(stats))

    def _on_digit(self, call_id, digit):
        if call_id in self.sip_calls:
            self.controller.dtmf(call_id, digit, self.loop.time())
            self._kick()

    # -- controller actions ----------------------------------------------------------------
    def _do(self, action):
        handler = getattr(self, "_do_" + type(action).__name__, None)
        if handler is None:
            log.warning("no handler for action %r", action)
            return
        try:
            handler(action)
        except Exception:  # one failed action must not stop the station
            log.exception("action %r failed", action)

    def _do_PlaceCall(self, action):
        if self.ua is None:
            self.controller.call_failed_to_start(action.role, "SIP not running",
                                                 self.loop.time())
            return
        routed = []
        for target in action.targets:
            peer = self._route(target)
            if peer is None:
                asyncio.ensure_future(self._place_call_resolving(action))
                return
            routed.append((target, peer))
        self._place_call(action, routed)

    async def _place_call_resolving(self, action):
        routed = []
        locator = Locator()
        for target in action.targets:
            uri = URI.parse(target)
            try:
                peers = await locator.locate(uri.host, uri.port, uri.transport,
                                             uri.scheme == "sips")
                routed.append((target, peers[0]))
            except LocateError as exc:
                log.warning("cannot call %s: %s", target, exc)
        if routed:
            self._place_call(action, routed)
        else:
            self.controller.call_failed_to_start(action.role, "no target could be resolved",
                                                 self.loop.time())
        self._kick()

    def _route(self, target):
        """Registered: the registrar is the outbound proxy. Direct-IP: a numeric host is used as
        is (RFC 3263 §4.2); a host name returns None and is resolved asynchronously."""
        if self.ua.registrar is not None:
            return self.ua.registrar
        uri = URI.parse(target)
        host = uri.host.strip("[]")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
        transport = uri.transport or ("tls" if uri.scheme == "sips" else
                                      self.cfg["sip"]["transport"])
        default = 5061 if transport == "tls" else 5060
        return Peer(transport, host, uri.port or default)

    def _place_call(self, action, routed):
        now = self.loop.time()
        secure = all(peer.transport == "tls" for _, peer in routed)
        call_id = self.ua.endpoint.random(6).hex()
        try:
            media = self._new_media(call_id, secure)
        except OSError as exc:  # no free RTP port pair, no file descriptor
            log.warning("not calling: no media: %s", exc)
            self.controller.call_failed_to_start(action.role, "no media: %s" % exc, now)
            return
        problem = media.check_keys_policy()
        if problem is not None:
            log.warning("not calling: %s", problem)
            media.stop()
            self.controller.call_failed_to_start(action.role, problem, now)
            return
        offer = media.create_offer()
        button = next((b for b in self.cfg["buttons"] if b["role"] == action.role), {})
        call = self.calls.place_call(routed, offer, now, sequential=action.sequential,
                                     target_timeout=action.target_timeout_s,
                                     answer_mode=button.get("answer_mode") or None)
        if call is None:
            media.stop()
            self.controller.call_failed_to_start(action.role, "busy", now)
            return
        media.call_id = call.id
        self.media[call.id] = media
        self.sip_calls[call.id] = call
        self.counters["calls_total"] += 1
        self.controller.call_started(call.id, action.role, now)

    def _do_Answer(self, action):
        call = self.sip_calls.get(action.call_id)
        answer = self._answers.pop(action.call_id, None)
        if call is None or answer is None or call.state != calls.RINGING:
            return  # ended meanwhile (CANCEL, ring timeout): answering would raise
        self.counters["calls_total"] += 1
        call.answer_mode = "auto"
        call.answer(answer, self.loop.time())
        self._start_media(call.id, self.media[call.id])

    def _do_Ring(self, action):
        call = self.sip_calls.get(action.call_id)
        if call is not None and call.state == calls.RINGING:
            call.ring(self.loop.time())

    def _do_Reject(self, action):
        call = self.sip_calls.get(action.call_id)
        if call is not None and call.state == calls.RINGING:
            call.reject(action.status, self.loop.time())

    def _do_Hangup(self, action):
        now = self.loop.time()
        targets = [self.sip_calls.get(action.call_id)] if action.call_id else \
            list(self.sip_calls.values())
        for call in targets:
            if call is not None and call.state != calls.ENDED:
                call.hangup(now)

    def _do_PulseRelay(self, action):
        relay = self.board.relays.get(action.role) if self.board is not None else None
        if relay is None:
            log.warning("no relay %r on this board", action.role)
            return
        relay.pulse(action.ms)
        self.counters["door_openings_total"] += 1

    def _do_SetLed(self, action):
        led = self.board.leds.get(action.role) if self.board is not None else None
        if led is not None:
            led.set_pattern(action.pattern)

    def _do_PlayCue(self, action):
        media = self.media.get(action.call_id) if action.call_id else None
        if media is not None and media.started_at is not None:
            media.play_cue(action.name, to_caller=action.name == "door_open")
        else:
            self._play_cue_locally(action.name)

    def _do_StopCue(self, action):
        if self._cue is not None and self._cue.name == action.name:
            self._stop_cue()

    def _do_LogEvent(self, action):
        self.eventlog.append(action.type, **action.fields)
        if action.type == "door_open":
            log.info("door opened by %s (%s)", action.fields.get("by"), action.fields.get("how"))

    def _play_cue_locally(self, name):
        """A cue outside a call (ringback, busy, failure) on the station's speaker."""
        self._stop_cue()
        if self.board is None or name not in CUES:
            return
        self._cue = CuePlayer(self.board.audio, name)
        self._cue.start()

    def _stop_cue(self):
        if self._cue is not None:
            self._cue.stop()
            self._cue = None

    # -- facade for the web API --------------------------------------------------------------
    @property
    def config(self):
        return self.cfg

    def status(self):
        calls_status = []
        for call_id, call in self.sip_calls.items():
            media = self.media.get(call_id)
            calls_status.append({
                "id": call_id, "direction": call.direction, "state": call.state,
                "peer": call.peer, "codec": media.codec if media else None,
                "srtp": media.srtp if media else False,
                "stats": media.stats() if media else {},
            })
        snapshot = self.board.snapshot() if self.board is not None else {}
        registration = self.ua.status() if self.ua is not None else {
            "state": "failed" if self.sip_failed else "unregistered",
            "error": self.sip_error, "next_refresh": None}
        if registration.get("next_refresh") is not None:
            registration = dict(registration)
            registration["next_refresh"] = round(
                time.time() + registration["next_refresh"] - self.loop.time(), 1)
        return {
            "registration": registration,
            "calls": calls_status,
            "door": {"relay": snapshot.get("relays", {}).get("door", "closed")},
            "leds": snapshot.get("leds", {}),
            "uptime_s": int(time.time() - self.started_at),
            "config_errors": dict(self.config_errors),
        }

    async def apply_config(self, cfg):
        """Run with `cfg` (already validated). Any failure puts the previous settings back,
        running as before, and raises ConfigError naming the field ("" when none can be
        named); the caller saves the file only after this returned."""
        old, self.cfg = self.cfg, cfg
        was_running = self.ua is not None
        # what to go back to when SIP was not running: still starting, or failed (and why)
        was = {"starting": self._sip_start is not None and not self._sip_start.done(),
               "error": self.sip_error, "failed": self.sip_failed,
               "config_errors": self.config_errors}
        restart = not was_running or old["sip"] != cfg["sip"] or \
            old["media"]["rtp_ports"] != cfg["media"]["rtp_ports"] or old["calls"] != cfg["calls"]
        try:
            self.controller.update_config(cfg, self.loop.time())
            if self.calls is not None:
                self.calls.identity = cfg["answer"]["identity"]  # applies to the next INVITE
            if restart:
                log.info("SIP settings changed: restarting the user agent")
                await self._cancel_sip_start()
                await self._stop_sip()
                self.config_errors = {}
                await self._start_sip()
        except Exception as exc:  # not only OSError: nothing may leave the station half-applied
            await self._roll_back(old, exc, was_running, was)
        self.sip_error, self.sip_failed = None, False
        self.eventlog.append("config", changed=sorted(k for k in cfg if cfg[k] != old.get(k)))
        self._kick()

    async def _roll_back(self, old, exc, was_running, was):
        """The new settings cannot be used (e.g. the port is taken): run the old ones again as
        they ran before, and tell the caller which field failed."""
        log.error("cannot apply the new settings (%s); keeping the previous ones",
                  _failure_text(exc))
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
            {"": "could not be applied: %s" % _failure_text(exc)}) from exc

    def place_call(self, target):
        try:
            uri = URI.parse(target)
        except ParseError as exc:
            raise ValueError("not a SIP URI: %s" % exc.reason) from None
        if uri.scheme not in ("sip", "sips"):
            raise ValueError("only sip: and sips: targets can be called")
        if self.sip_calls:
            raise ValueError("a call is already in progress")
        self.controller.place_call(str(uri), self.loop.time())
        self._kick()
        return next(iter(self.sip_calls), None)

    def hangup(self):
        self.controller.hangup(self.loop.time())
        self._kick()

    def open_door(self, by="api"):
        self.controller.open_door(by, self.loop.time())
        self._kick()

    def events(self, since=None):
        return self.eventlog.since(since)

    def log_event(self, type_, **fields):
        self.eventlog.append(type_, **fields)

    def press_button(self, role, press_ms=100):
        if not self.simulated:
            raise KeyError(role)
        self.board.press(role, press_ms)

    def metrics(self):
        status = self.status()
        lost = sum(c["stats"].get("lost", 0) for c in status["calls"])
        jitter = max([c["stats"].get("jitter_ms", 0) for c in status["calls"]] or [0])
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
        }


class CuePlayer:
    """Plays one cue on the station's speaker outside a call, paced on its own thread."""

    def __init__(self, audio, name):
        self.audio = audio
        self.name = name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="cue-" + name)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()

    def _run(self):
        stream = self.audio.open(rate=8000, frame_ms=20)
        try:
            deadline = time.monotonic()
            for frame in cue_frames(CUES[self.name]):
                if self._stop.is_set():
                    break
                stream.write_frame(frame)
                deadline += 0.02
                if not self.audio.paced:
                    self._stop.wait(max(0.0, deadline - time.monotonic()))
        finally:
            stream.close()


def _failure_text(exc):
    """One line for a failure to start or apply: field messages, or the exception."""
    if isinstance(exc, configuration.ConfigError):
        return "; ".join("%s: %s" % (k or "configuration", v) for k, v in exc.errors.items())
    text = str(exc).replace("\r", " ").replace("\n", " ")
    return "%s: %s" % (type(exc).__name__, text) if text else type(exc).__name__


def _short_stats(stats):
    keys = ("packets_sent", "packets_received", "lost", "jitter_ms", "concealed", "late")
    return ", ".join("%s=%s" % (k, stats[k]) for k in keys if k in stats)
