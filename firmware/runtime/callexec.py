"""The executors of a call: what the runtime does for each session event (bind ports, start,
update and stop a media player, tell the controller) and for the controller's call actions
(place, answer, ring, reject, hang up). A part of `runtime.station.Station` (the state it
reads is declared in runtime/parts.py); each method carries out one thing the session layer or
the controller decided."""

import asyncio
import logging
import os
import time
from typing import Any

from firmware.app import actions
from firmware.runtime.parts import Pair, StationParts
from firmware.runtime.resolver import LocateError, Locator
from firmware.session import events as ev
from firmware.session.routing import route_targets
from firmware.sip.uri import URI

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.runtime.conference import Mixer, SharedAudio
    from firmware.runtime.media import PortPool
    from hal.base import AudioDevice

log = logging.getLogger("doorline")

# runtime/media.py (and with it the codecs' tables and the RTP stack) is imported at the first
# need, not at start: Station.warm_up() imports it right after the first registration, so that
# neither the REGISTER nor the first INVITE waits for it (issue 14, docs/BENCH.md "Profiles").
LOG_DIGITS = os.environ.get("DOORLINE_TEST_HOOKS") == "1"  # as runtime/media.py


class CallExecutors(StationParts):
    # -- media executors (session events) -----------------------------------------------------
    def _port_pool(self) -> "PortPool":
        """The RTP port pool of the running UA, made at the first need (runtime/media.py is
        imported then, unless Station.warm_up() did it already)."""
        if self.ports is None:
            from firmware.runtime.media import PortPool

            low, high = self.cfg.media.port_range()
            self.ports = PortPool(self.rtp_host, low, high)
        return self.ports

    def _conference_mixer(self) -> "Mixer":
        if self._mixer is None:
            from firmware.runtime.conference import Mixer

            self._mixer = Mixer()
        return self._mixer

    def _shared_audio(self, device: "AudioDevice") -> "SharedAudio":
        if self._shared is None or self._shared.device is not device:
            from firmware.runtime.conference import SharedAudio

            self._shared = SharedAudio(device)
        return self._shared

    def _open_media(self, event: ev.OpenMedia) -> None:
        assert self.sessions is not None  # session events: SIP runs
        ports = self._port_pool()
        spare, self._spare_pair = self._spare_pair, None
        if spare is not None:
            port, pair = spare
        else:
            try:
                port, pair = ports.open_pair()
            except OSError as exc:  # no free RTP port pair, no file descriptor (issue 12)
                self.sessions.media_unavailable(event.call_id, str(exc), self.loop.time())
                return
        # the next incoming call's pair is bound once this turn (and its answer) is over
        self.loop.call_soon(self._bind_spare_pair)
        self._pairs[event.call_id] = pair
        self._started_at.setdefault(event.call_id, time.time())
        video_port = self._open_video_pair(event.call_id)
        self.sessions.media_opened(event.call_id, ports.host, port, self.loop.time(),
                                   video_port=video_port)

    def _bind_spare_pair(self) -> None:
        """Bind, at random as ever (issue 12), the pair the next incoming call will take: its
        INVITE's answer then does not wait for the draw and the two binds (~60 µs on the
        bench machine, issue 14). Made after a call took one, so a station that never had a
        call holds no port; whatever arrives on it before its call is dropped when that call's
        media starts (runtime/media.py), as on any pair bound while a call rings. When the
        range has no other free pair the next call binds its own."""
        if self._spare_pair is not None or self.ua is None or self.ports is None or \
                self.transports is None or self.transports.closed:  # SIP stopping
            return
        try:
            self._spare_pair = self.ports.open_pair()
        except OSError:
            pass

    def _close_spare_pair(self) -> None:
        spare, self._spare_pair = self._spare_pair, None
        if spare is not None:
            close_pair(spare[1])

    def _open_video_pair(self, call_id: str) -> "int | None":
        """A second port pair for H.264 when the station offers video (a camera, `[camera]
        enabled` and `video = "offer"`); None otherwise or when no pair is free (the call is
        then offered and answered audio-only)."""
        camera = self.cfg.camera
        if self.board is None or self.board.camera is None or not camera.enabled or \
                camera.video != "offer":
            return None
        try:
            port, pair = self._port_pool().open_pair()
        except OSError as exc:
            log.warning("no port pair for video (%s): audio only", exc)
            return None
        self._video_pairs[call_id] = pair
        if self.sessions is not None:  # the level this camera's stream has (RFC 6184 §8.1)
            from firmware.runtime.video import BITRATE
            from firmware.sdp.video import profile_level_id

            self.sessions.video_profile_level_id = profile_level_id(
                camera.width, camera.height, camera.fps, BITRATE // 1000)
        return port

    def _start_video(self, call_id: str, negotiated: "Any") -> None:
        pair = self._video_pairs.pop(call_id, None)
        video = getattr(negotiated, "video", None)
        if pair is None:
            return
        if video is None:  # the peer took no video: audio only, as before
            log.info("call %s: the peer takes no video; audio only", call_id)
            close_pair(pair)
            return
        from firmware.runtime.video import VideoStream

        stream = VideoStream(call_id, pair, self.camera_service())
        self.videos[call_id] = stream
        stream.play(video)

    def _start_media(self, event: ev.StartMedia) -> None:
        pair = self._pairs.pop(event.call_id)
        assert pair is not None  # StartMedia comes only after media_opened / a placed call's pair
        from firmware.runtime.media import MediaStream

        audio = self.board.audio if self.board is not None else None
        if self.cfg.calls.conference and audio is not None and audio.paced:
            audio = self._shared_audio(audio)  # one real device for every call at once
        stream = MediaStream(event.call_id, pair, audio, self.loop,
                             self._on_digit, on_beat=lambda: self.health.beat("audio"),
                             audio_cfg=self.cfg.audio)
        self.streams[event.call_id] = stream
        if self.cfg.calls.conference:  # each party hears the others (runtime/conference.py)
            stream.mixer = self._conference_mixer()
            stream.mixer.join(event.call_id)
        if self.board is not None:
            self.board.audio.begin_call(event.call_id)
        stream.play(event.negotiated)
        self.health.require("audio", True)
        self._start_video(event.call_id, event.negotiated)

    def _update_media(self, event: ev.UpdateMedia) -> None:
        stream = self.streams.get(event.call_id)
        if stream is not None:
            stream.update(event.negotiated)
        video = self.videos.get(event.call_id)
        if video is not None:
            video.update(event.negotiated.video)

    def _stop_media(self, event: ev.StopMedia) -> None:
        pair = self._pairs.pop(event.call_id, None)
        if pair is not None:
            close_pair(pair)
        close_pair(self._video_pairs.pop(event.call_id, None))
        video = self.videos.pop(event.call_id, None)
        if video is not None:
            video.stop()
            log.info("video %s: %s", event.call_id, video.stats())
        stream = self.streams.pop(event.call_id, None)
        if stream is not None:
            self._stats[event.call_id] = stream.stats()
            stream.stop()
            if stream.mixer is not None:
                stream.mixer.leave(event.call_id)
            if self.board is not None:
                self.board.audio.end_call(event.call_id)
        if not self.streams:
            self.health.require("audio", False)
        self._stop_cue()

    def _on_digit(self, call_id: str, digit: str) -> None:
        """From a media thread, through call_soon_threadsafe."""
        if self.sessions is not None:
            self.sessions.digit(call_id, digit, self.loop.time())
            self._kick()

    # -- controller executors (session events) ------------------------------------------------
    def _call_offered(self, event: ev.CallOffered) -> None:
        self.controller.incoming_call(event.call_id, event.caller, event.source, event.trusted,
                                      event.answer_mode, self.loop.time(),
                                      source_ip=event.source_ip, replaces=event.replaces,
                                      local=self.local_now())

    def _call_started(self, event: ev.CallStarted) -> None:
        self.counters["calls_total"] += 1
        self.controller.call_started(event.call_id, event.role, self.loop.time())

    def _call_not_started(self, event: ev.CallNotStarted) -> None:
        self._started_at.pop(event.call_id, None)
        if event.reason != "busy":
            log.warning("not calling: %s", event.reason)
        self.controller.call_failed_to_start(event.call_id, event.reason, self.loop.time())

    def _call_ringing(self, event: ev.CallRinging) -> None:
        self.controller.call_ringing(event.call_id, self.loop.time(), early=event.early)

    def _call_established(self, event: ev.CallEstablished) -> None:
        if event.direction == "outgoing":
            self._stop_cue()
        self.controller.call_established(event.call_id, self.loop.time(), peer=event.peer)

    def _digit(self, event: ev.DigitReceived) -> None:
        if LOG_DIGITS and event.via == "info":
            log.info("call %s: DTMF digit %s received (INFO)", event.call_id, event.digit)
        self.controller.dtmf(event.call_id, event.digit, self.loop.time(),
                             local=self.local_now())

    def _call_ended(self, event: ev.CallEnded) -> None:
        log.info("call %s ended: %s %s", event.call_id, event.reason, event.status or "")
        self.controller.call_ended(event.call_id, event.reason, event.status, self.loop.time())
        self._started_at.pop(event.call_id, None)
        stats = self._stats.pop(event.call_id, None)
        if stats:
            log.info("call %s media: %s", event.call_id, _short_stats(stats))

    def _call_refused(self, event: ev.CallRefused) -> None:
        if event.status is None:  # our call, hung up: the answer was unusable
            log.warning("call %s: %s", event.call_id, event.reason)
            return
        log.warning("call from %s refused: %s", event.peer, event.reason)
        self.eventlog.append("call", direction="incoming", peer=event.peer,
                             outcome="rejected", reason=event.reason)

    def _redirect_refused(self, event: ev.RedirectRefused) -> None:
        log.warning("call %s: %d redirect from %s to %s refused: %s", event.call_id,
                    event.status, event.target, event.uri, event.reason)
        self.eventlog.append("redirect_refused", call_id=event.call_id, target=event.target,
                             uri=event.uri, status=event.status, reason=event.reason)

    # -- controller actions -----------------------------------------------------------------
    def _do_place_call(self, action: actions.PlaceCall) -> None:
        if self.ua is None:
            self.controller.call_failed_to_start(action.call_id, "SIP not running",
                                                 self.loop.time())
            return
        routed = route_targets(action.targets, self.ua.registrar, self.cfg.sip.transport)
        if routed is None:  # a host name: RFC 3263 lookups first
            asyncio.ensure_future(self._place_call_resolving(action))
            return
        self._place_call(action, routed)

    async def _place_call_resolving(self, action: actions.PlaceCall) -> None:
        routed = []
        locator = Locator()
        for target in action.targets:
            uri = URI.parse(target)
            assert uri.host is not None  # a sip: or sips: URI (the controller checked)
            try:
                peers = await locator.locate(uri.host, uri.port, uri.transport,
                                             uri.scheme == "sips")
                routed.append((target, peers[0]))
            except LocateError as exc:
                log.warning("cannot call %s: %s", target, exc)
        if self.ua is None:
            self.controller.call_failed_to_start(action.call_id, "SIP not running",
                                                 self.loop.time())
        elif routed:
            self._place_call(action, routed)
        else:
            self.controller.call_failed_to_start(action.call_id, "no target could be resolved",
                                                 self.loop.time())
        self._kick()

    def _place_call(self, action: actions.PlaceCall, routed: list[Any]) -> None:
        assert self.sessions is not None  # the UA runs
        ports = self._port_pool()
        try:
            port, pair, no_media = ports.open_pair() + (None,)
        except OSError as exc:  # no free RTP port pair, no file descriptor
            port, pair, no_media = None, None, exc
        self._started_at.setdefault(action.call_id, time.time())
        button = self.cfg.button(action.role)
        answer_mode = button.answer_mode if button is not None else ""
        video_port = self._open_video_pair(action.call_id) if pair is not None else None
        session = self.sessions.place_call(
            action.role, routed, ports.host, port, self.loop.time(),
            sequential=action.sequential, target_timeout=action.target_timeout_s,
            answer_mode=answer_mode or None, no_media=no_media,
            call_id=action.call_id, video_port=video_port)
        if session is not None:
            self._pairs[session.id] = pair
            if session.id != action.call_id and action.call_id in self._video_pairs:
                self._video_pairs[session.id] = self._video_pairs.pop(action.call_id)
        else:
            if pair is not None:
                close_pair(pair)
            close_pair(self._video_pairs.pop(action.call_id, None))

    def _do_answer(self, action: actions.Answer) -> None:
        assert self.sessions is not None  # a call to answer: SIP has run
        if self.sessions.answer(action.call_id, self.loop.time()):
            self.counters["calls_total"] += 1

    def _do_ring(self, action: actions.Ring) -> None:
        assert self.sessions is not None  # a call to ring: SIP has run
        self.sessions.ring(action.call_id, self.loop.time())

    def _do_reject(self, action: actions.Reject) -> None:
        assert self.sessions is not None  # a call to reject: SIP has run
        self.sessions.reject(action.call_id, action.status, self.loop.time())

    def _do_hangup(self, action: actions.Hangup) -> None:
        if self.sessions is not None:
            self.sessions.hangup(action.call_id, self.loop.time())

def close_pair(pair: "Pair | None") -> None:
    for sock in pair or ():
        sock.close()


def _short_stats(stats: dict) -> str:
    keys = ("packets_sent", "packets_received", "lost", "jitter_ms", "concealed", "late",
            "inserted", "dropped", "audio_rate", "erle_db")
    return ", ".join("%s=%s" % (k, stats[k]) for k in keys if k in stats)
