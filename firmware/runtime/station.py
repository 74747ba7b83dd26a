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

    # -- life cycle ------------------------------------------------------------------------
    async def start(self):
        install_test_hooks(self.loop)
        self.watchdog.start(self.loop)
        self.eventlog = EventLog(self.state_dir)
        self.controller = Controller(self.cfg, self.loop.time())
        self._wire_board()
        await self._start_sip()
        self._idle_tick()

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
        settings = {
            "host": host, "port": port, "transport": sip["transport"],
            "username": sip["username"] or "door", "password": sip["password"],
            "domain": configuration.effective_domain(self.cfg) or host,
            "display_name": sip["display_name"],
            "expires": sip["expires"], "registrar": registrar,
            "registrar_hostport": sip["registrar"],
        }
        tls = client_tls_context(sip["tls_ca"]) if sip["transport"] == "tls" else None
        self.transports = Transports(self._on_receive, self._on_flow_failed, tls_context=tls)
        try:
            await self.transports.listen(host, port)
        except OSError:
            self.transports.close()
            raise
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
        if self._idle is not None:
            self._idle.cancel()
        self._stop_cue()
        await self._stop_sip()
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
        key = (event.source.host, event.source.port) if event.source else None
        now = self.loop.time()
        if now - self._rejected_at.get(key, -REJECT_LOG_INTERVAL) < REJECT_LOG_INTERVAL:
            return
        if len(self._rejected_at) >= MAX_REJECT_SOURCES:
            self._rejected_at.clear()
        self._rejected_at[key] = now
        where = "%s:%s" % key if key else "?"
        log.info("rejected from %s: %s", where, event.reason)
        request = event.request
        if request is not None and request.method == "INVITE":
            # INTERFACE.md: an untrusted call attempt is logged with caller and source.
            self.eventlog.append(
                "caller_rejected", caller=request.headers.get("From"),
                source="%s:%s:%s" % (event.source.transport, event.source.host,
                                     event.source.port),
                direction="incoming", outcome="rejected", reason=event.reason)

    def _incoming(self, call, now):
        self.sip_calls[call.id] = call
        source = call.source
        media = self._new_media(call.id, source.transport == "tls")
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
        media = self._new_media(call_id, secure)
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
            "state": "unregistered", "error": None, "next_refresh": None}
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
        }

    async def apply_config(self, cfg):
        old, self.cfg = self.cfg, cfg
        self.controller.update_config(cfg, self.loop.time())
        if self.calls is not None:
            self.calls.identity = cfg["answer"]["identity"]  # applies to the next INVITE
        if old["sip"] != cfg["sip"] or old["media"]["rtp_ports"] != cfg["media"]["rtp_ports"] \
                or old["calls"] != cfg["calls"]:
            log.info("SIP settings changed: restarting the user agent")
            await self._stop_sip()
            try:
                await self._start_sip()
            except OSError as exc:
                await self._roll_back(old, exc)
        self.eventlog.append("config", changed=sorted(k for k in cfg if cfg[k] != old.get(k)))
        self._kick()

    async def _roll_back(self, old, exc):
        """The new SIP settings cannot be used (e.g. the port is taken): run and keep the old
        ones, and tell the caller which field failed."""
        log.error("cannot apply the new SIP settings (%s); keeping the previous ones", exc)
        self.cfg = old
        self.controller.update_config(old, self.loop.time())
        if self.config_path:
            configuration.save_atomic(self.config_path, old)
        await self._start_sip()
        self._kick()
        raise configuration.ConfigError(
            {"sip.listen": "cannot be used: %s" % (exc.strerror or exc)})

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


def _short_stats(stats):
    keys = ("packets_sent", "packets_received", "lost", "jitter_ms", "concealed", "late")
    return ", ".join("%s=%s" % (k, stats[k]) for k in keys if k in stats)
