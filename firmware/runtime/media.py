"""Media for one call: an executor that PLAYS a negotiated stream on a thread.

The session layer (firmware/session/) negotiates; the runtime binds the call's RTP/RTCP port
pair (`PortPool.open_pair`) and hands it to a `MediaStream` with `play(negotiated)`. Its thread
is the only code touching the call's `RtpSession`: it sleeps until the next deadline (the 20 ms
frame tick, with which the session's send slots coincide, or an RTCP/DTMF timer: the session
computes deadlines from the packet index, so sending is paced by the monotonic clock and never
drifts), then reads every datagram that arrived meanwhile, pulls one frame from the jitter
buffer for the speaker, captures one from the microphone and sends what is due: one wake-up per
frame (issue 14; waking for each
received packet as well doubled the wake-ups, and on a loaded machine each wake-up of Python
code costs far more than the work it does). The jitter buffer still sees each packet's real
arrival time: the kernel stamps it (SO_TIMESTAMPNS). Digits (RFC 4733, or in-band tones when
the peer negotiated no telephone-event) go to the event loop with `loop.call_soon_threadsafe`.
Work from the event loop reaches the thread through one small command queue: `update(negotiated)`
(a re-INVITE) and `send_dtmf(key)`, each an explicit command the thread looks up in a table.

Cues (feedback tones) are mixed into the speaker, and into what we send when `to_caller`.

Audio rate (issue 15): the call's audio runs at the negotiated codec's PCM rate,
`negotiated.audio_rate` (16 kHz for G.722, else 8 kHz), in frames of
`negotiated.frame_samples`; the sound device, the jitter buffer, the in-band DTMF detector, the
cues and the echo canceller all work at that rate. A re-INVITE to a codec of another rate keeps
the device's rate and resamples at the codec (`_Rated`).

Microphone and speaker processing (issue 15, runtime/audioproc.py): every 20 ms tick plays one
frame (after `AudioProcessor.playback`: volume, kept as the echo reference) and right after
captures one microphone frame (`AudioProcessor.capture`: gain, echo cancellation, noise
suppression, AGC), so the canceller's reference is the frame the speaker plays while the
microphone hears it; the captured frame waits in a short queue for the RTP session's send
deadline, which falls on the same 20 ms schedule.
"""

import array
import collections
import logging
import os
import queue
import select
import socket
import struct
import sys
import threading
import time
from typing import TYPE_CHECKING

from firmware.codecs.g711 import CODECS
from firmware.codecs.tones import CUES, InbandDtmfDetector, cue_frames
from firmware.rtp.dtmf import DtmfReceiver
from firmware.rtp.jitter import JitterBuffer
from firmware.rtp.session import RtpSession

if TYPE_CHECKING:
    import asyncio
    import types
    from collections.abc import Callable
    from typing import Any

    from firmware.rtp.packet import RtpPacket
    from firmware.runtime.audioproc import AudioProcessor
    from firmware.runtime.conference import Mixer
    from firmware.sdp.offer_answer import NegotiatedMedia
    from firmware.settings import AudioConfig
    from hal.base import AudioDevice, AudioStream

log = logging.getLogger("doorline.media")

FRAME = 0.020
FRAME_BYTES = 320
SILENCE = bytes(FRAME_BYTES)
MAX_DATAGRAMS_PER_WAKE = 64  # bounded work per wake-up, whatever arrives
MAX_COMMANDS_PER_WAKE = 16  # commands from the event loop run per wake-up, at most
MAX_STALE_DATAGRAMS = 4096  # dropped at media start at most (a socket buffer's worth)
# Received digits are door codes: they reach the log only in test runs.
LOG_DIGITS = os.environ.get("DOORLINE_TEST_HOOKS") == "1"
NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900 (NTP, RFC 3550 §4) to 1970
MEDIA_THREAD_RT_PRIORITY = 10  # see _raise_priority
MEDIA_THREAD_NICE = -10
STATS_EVERY_TICKS = 25  # statistics and the health beat twice a second, not on every frame
HOLD_ADDRESSES = ("0.0.0.0", "::")
CAPTURE_QUEUE_FRAMES = 5  # paced capture (ALSA): at most 100 ms queued, oldest dropped
# Kernel receive timestamps (CLOCK_REALTIME struct timespec): where the platform has them.
# Python's socket module does not name the option; 35 is Linux's SO_TIMESTAMPNS(_OLD) on x86
# and ARM (asm-generic/socket.h), also the type of the control message that carries it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None)
TIMESTAMP_ANCILLARY = socket.CMSG_SPACE(16) if SO_TIMESTAMPNS is not None else 0
TIMESPEC_FORMATS = {16: "@qq", 8: "@ii"}  # 64-bit, and 32-bit time_t (armhf)
TIMESPEC_UNPACK = {size: struct.Struct(form).unpack for size, form in TIMESPEC_FORMATS.items()}
TIMESPEC_SIZE = struct.calcsize("@qq" if sys.maxsize > 2 ** 32 else "@ii")  # this platform's
TIMESPEC = TIMESPEC_UNPACK[TIMESPEC_SIZE]
SOL_SOCKET = socket.SOL_SOCKET
MAX_ARRIVAL_AGE = 0.2  # s: older than this, a kernel stamp is not believed (a clock step)
SEND_QUEUE_FRAMES = 3  # processed microphone frames waiting for their send deadline


def _draw(n: int) -> int:
    """A uniform integer in [0, n) (n < 2**31) from os.urandom, as SystemRandom.randrange
    draws it, without the `random` module (its code, bisect, _random and _sha512: ~0.1 MB that
    every idle station held for this one call; issue 14, sixth round). Rejection sampling
    makes it uniform; the bound on redraws only matters after 2**-256 luck."""
    limit = (1 << 32) - (1 << 32) % n
    value = 0
    for _ in range(32):
        value = int.from_bytes(os.urandom(4), "big")
        if value < limit:
            break
    return value % n


class PortPool:
    """Even/odd RTP/RTCP port pairs from `[media] rtp_ports` (RFC 3550 §11), picked at random
    (issue 12: ports handed out in order let a stranger guess the next call's port and spray
    it while the call rings). At most `MAX_PAIR_ATTEMPTS` pairs are tried, each once."""

    MAX_PAIR_ATTEMPTS = 128

    def __init__(self, host: str, low: int, high: int) -> None:
        self.host = host
        self.low = low + (low % 2)
        self.high = high

    @property
    def pairs(self) -> int:
        return max(0, (self.high - self.low + 1) // 2)

    def open_pair(self) -> "tuple[int, list[socket.socket]]":
        """One random draw per attempt, not a sample of all 128 up front: this runs while an
        INVITE waits for its 200, and each draw is one getrandom() call (`_draw`)."""
        pairs = self.pairs
        tried: set[int] = set()
        for _ in range(min(pairs, self.MAX_PAIR_ATTEMPTS)):
            index = _draw(pairs)
            while index in tried:  # each pair once: the next untried one after a repeat
                index = (index + 1) % pairs
            tried.add(index)
            port = self.low + 2 * index
            pair = _bind_pair(self.host, port)
            if pair is not None:
                return port, pair
        raise OSError("no free RTP port pair in %d-%d" % (self.low, self.high))


def _bind_pair(host: str, port: int) -> "list[socket.socket] | None":
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    socks = []
    try:
        for p in (port, port + 1):
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setblocking(False)
            s.bind((host, p))
            socks.append(s)
        return socks
    except OSError:
        for s in socks:
            s.close()
        return None


class MediaStream:
    """Plays one call's negotiated stream on the port pair `sockets` ((rtp, rtcp), bound by the
    runtime; closed by `stop`)."""

    UPDATE = "update"
    DTMF = "dtmf"
    AUDIO = "audio"

    def __init__(self, call_id: str, sockets: "list[socket.socket]", audio: "AudioDevice | None",
                 loop: "asyncio.AbstractEventLoop", on_digit: "Callable[[str, str], object]",
                 on_beat: "Callable[[], object] | None" = None,
                 audio_cfg: "AudioConfig | None" = None) -> None:
        self.call_id = call_id
        self.audio_cfg = audio_cfg
        self.loop = loop
        self.on_digit = on_digit
        self.on_beat = on_beat
        self.audio = audio
        self.rtp_sock, self.rtcp_sock = sockets
        self.negotiated: NegotiatedMedia | None = None
        self.session: RtpSession | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._stopping = False  # what the media loop reads: Event.is_set is a Python call
        # (command, argument) for the media thread
        self._commands: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._run_command: dict[str, Callable[[Any], None]] = {
            self.UPDATE: self._update_session, self.DTMF: self._send_dtmf,
            self.AUDIO: self._set_audio}
        self._speaker_cues: collections.deque[bytes] = collections.deque()
        self._caller_cues: collections.deque[bytes] = collections.deque()
        self._stats: dict[str, float | None] = {}
        self.started_at: float | None = None
        self.dtmf: DtmfReceiver | None = None  # the media thread's, from the first session
        self._dtmf_live = False  # a telephone event arrived: its timer and events are due
        self.inband: InbandDtmfDetector | None = None
        self._source: Callable[[], bytes] | None = None
        # a conference's mixer (runtime/conference.py), set before `play`; None: a lone call
        self.mixer: Mixer | None = None
        self._poller = select.poll()
        self._by_fd = {sock.fileno(): sock for sock in sockets}
        # The thread sleeps in select() on this pipe: `stop` writes to it, so the thread ends
        # at once and `stop` (on the event loop) does not wait for the next frame tick.
        self._wake_r, self._wake_w = os.pipe()
        self.rate = 8000  # the call's audio rate, from the first negotiation (play)
        self._silence = SILENCE
        self._processor: AudioProcessor | None = None
        self._codec_state: Any = None  # a stateful codec's object (G.722), closed with the call

    # -- life cycle (event loop thread) ------------------------------------------------------
    def play(self, negotiated: "NegotiatedMedia") -> None:
        """Start the thread playing `negotiated` (sdp.NegotiatedMedia)."""
        if self._thread is not None:
            return
        self.negotiated = negotiated
        self.rate = negotiated.audio_rate
        self._silence = bytes(2 * negotiated.frame_samples)
        self.session = self._new_session(negotiated)
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="media-%s" % self.call_id,
                                        daemon=True)
        self._thread.start()

    def update(self, negotiated: "NegotiatedMedia") -> None:
        """A new negotiation (re-INVITE) for the playing stream."""
        previous, self.negotiated = self.negotiated, negotiated
        if self._thread is not None and previous is not None:
            self._commands.put((self.UPDATE, (negotiated, previous)))

    def stop(self) -> None:
        self._stopping = True
        self._stop.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        for s in (self.rtp_sock, self.rtcp_sock):
            s.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        if self._thread is None or not self._thread.is_alive():
            # What refers back to the stream (the command table's bound methods, the RTP
            # session's DTMF callback, the send path's closure) made each call's stream a
            # reference cycle, freed by whichever gen-0 collection came next: ~170 µs, often
            # in the middle of the next INVITE's answer (issue 14, the answer path). Cut, the
            # stream is freed when the station lets it go.
            self._run_command.clear()
            self._source = None
            self.session = None

    def send_dtmf(self, key: str) -> None:
        self._commands.put((self.DTMF, key))

    def set_audio(self, audio_cfg: "AudioConfig") -> None:
        """New `[audio]` settings during the call: the gain and the volume apply at once; the
        processing stages (echo_cancel, noise_suppress, agc) keep their state until the next
        call."""
        if self._thread is not None:
            self._commands.put((self.AUDIO, audio_cfg))

    def play_cue(self, name: str, to_caller: bool = False) -> None:
        frames = list(cue_frames(CUES[name], rate=self.rate,
                                 frame_samples=len(self._silence) // 2))
        self._speaker_cues.extend(frames)
        if to_caller:
            self._caller_cues.extend(frames)

    def stats(self) -> "dict[str, float | str | None]":
        stats: dict[str, float | str | None] = {
            k: round(v, 2) if isinstance(v, float) else v for k, v in self._stats.items()}
        if self.negotiated is not None:
            stats["codec"] = self.negotiated.codec
            stats["audio_rate"] = self.rate
        return stats

    @property
    def codec(self) -> "str | None":
        return self.negotiated.codec if self.negotiated else None

    @property
    def srtp(self) -> bool:
        return bool(self.negotiated and self.negotiated.srtp)

    # -- the media thread ------------------------------------------------------------------
    def _new_session(self, negotiated: "NegotiatedMedia") -> RtpSession:
        encode, decode = self._codec(negotiated)
        protection = None
        if negotiated.srtp is not None:
            p = negotiated.srtp
            protection = _srtp().SrtpSession(p.suite, p.local_key, p.local_salt,
                                                p.remote_key, p.remote_salt)
        self.dtmf = DtmfReceiver(negotiated.clock_rate)
        self.inband = None if negotiated.telephone_event_payload_type else \
            InbandDtmfDetector(self.rate)
        frame_bytes = 2 * negotiated.frame_samples * self.rate // negotiated.audio_rate
        session = RtpSession(
            negotiated.payload_type, encode, decode,
            jitter_buffer=JitterBuffer(negotiated.clock_rate, frame_bytes=frame_bytes),
            remote_addr=(negotiated.remote_address, negotiated.remote_port),
            remote_rtcp_addr=(negotiated.remote_rtcp_address, negotiated.remote_rtcp_port),
            rtcp_mux=negotiated.rtcp_mux,
            telephone_event_pt=negotiated.telephone_event_payload_type,
            srtp=protection, on_dtmf_packet=self._on_dtmf_packet,
            wallclock_offset=time.time() - time.monotonic() + NTP_EPOCH_OFFSET)
        return session

    def _codec(self, negotiated: "NegotiatedMedia") -> "tuple[Callable, Callable]":
        """(encode, decode) for the negotiated codec, at the stream's audio rate."""
        if self._codec_state is not None:
            self._codec_state.close()
            self._codec_state = None
        if negotiated.codec == "G722":
            from firmware.runtime.g722 import G722Codec  # libspandsp: only in a G.722 call

            self._codec_state = G722Codec()
            encode, decode = self._codec_state.encode, self._codec_state.decode
        else:
            codec = CODECS[negotiated.codec]
            encode, decode = codec.encode, codec.decode
        if negotiated.audio_rate != self.rate:
            rated = _Rated(encode, decode, self.rate, negotiated.audio_rate)
            return rated.encode, rated.decode
        return encode, decode

    def _set_audio(self, audio_cfg: "AudioConfig") -> None:
        """The media thread's side of `set_audio`."""
        processor = self._processor
        try:
            if processor is None:
                self.audio_cfg = audio_cfg
                self._processor = self._open_processor()
                return
            assert self.audio is not None  # a processor exists only with a sound device
            hardware_volume = self.audio.set_volume(audio_cfg.speaker_volume)
            processor.set_levels(audio_cfg.mic_gain_db, audio_cfg.speaker_volume,
                                 digital_volume=not hardware_volume)
        except Exception:  # the call goes on at the levels it had
            log.exception("call %s: new audio levels not applied", self.call_id)

    def _run_commands(self) -> None:
        if self._commands.empty():  # the usual case: no exception raised and caught per frame
            return
        for _ in range(MAX_COMMANDS_PER_WAKE):
            try:
                command, argument = self._commands.get_nowait()
            except queue.Empty:
                return
            self._run_command[command](argument)

    def _send_dtmf(self, key: str) -> None:
        self._playing()[0].send_dtmf(key, time.monotonic())

    def _playing(self) -> "tuple[RtpSession, DtmfReceiver]":
        """The media thread's RTP session and DTMF receiver: `play` made both before it
        started the thread (and `_update_session` replaces them together)."""
        session, dtmf = self.session, self.dtmf
        assert session is not None and dtmf is not None
        return session, dtmf

    def _update_session(
            self, negotiated_and_previous: "tuple[NegotiatedMedia, NegotiatedMedia]") -> None:
        """A re-INVITE: hold/resume changes direction; new keys or codec make a new session."""
        negotiated, previous = negotiated_and_previous
        session = self._playing()[0]
        if (negotiated.codec, negotiated.srtp and negotiated.srtp.remote_key) != \
                (previous.codec, previous.srtp and previous.srtp.remote_key):
            now = time.monotonic()
            session.close(now)
            session = self.session = self._new_session(negotiated)
            assert self._source is not None  # set by the thread before its first command
            session.set_source(self._source)
            session.start(now)
        elif _remote(negotiated) != _remote(previous) and \
                negotiated.remote_address not in HOLD_ADDRESSES:
            # The peer moved its media: latching starts over there. c=0.0.0.0 (RFC 2543 hold)
            # only says "do not send to me" (sending is off): the peer stays where it was.
            session.set_remote((negotiated.remote_address, negotiated.remote_port),
                                    (negotiated.remote_rtcp_address, negotiated.remote_rtcp_port),
                                    negotiated.rtcp_mux)
        session.set_sending(negotiated.sending, time.monotonic())

    def _on_dtmf_packet(self, packet: "RtpPacket", now: float) -> None:
        self._playing()[1].receive(packet.timestamp, packet.sequence, packet.marker,
                                   packet.payload, now)
        self._dtmf_live = True  # the loop runs the receiver's timer and takes its events

    def _open_processor(self) -> "AudioProcessor | None":
        """The call's microphone/speaker processing (runtime/audioproc.py), or None when no
        stage, gain or volume applies. libspeexdsp is loaded only when a stage is on."""
        cfg = self.audio_cfg
        if cfg is None or self.audio is None:
            return None
        hardware_volume = self.audio.set_volume(cfg.speaker_volume)
        if not cfg.processing() and cfg.mic_gain_db == 0 and \
                (hardware_volume or cfg.speaker_volume == 100):
            return None
        from firmware.runtime import audioproc

        samples = len(self._silence) // 2
        try:
            return audioproc.AudioProcessor(
                self.rate, samples, cfg, digital_volume=not hardware_volume,
                reference_delay=self.audio.reference_delay_frames())
        except audioproc.SpeexUnavailable as exc:
            log.warning("call %s: no echo cancellation or noise suppression: %s",
                        self.call_id, exc)
            from firmware.settings import AudioConfig

            plain = AudioConfig(False, False, False, cfg.mic_gain_db, cfg.speaker_volume)
            return audioproc.AudioProcessor(self.rate, samples, plain,
                                            digital_volume=not hardware_volume)

    def _run(self) -> None:
        stream = self.audio.open(rate=self.rate, frame_ms=20) if self.audio is not None else None
        capture: collections.deque[bytes] | None = None
        # A stream that captures on its own thread (hal/pi.py, issue 19) hands over its frames
        # at the tick without waiting; another paced one gets a capture thread here.
        reads_ahead = stream is not None and getattr(stream, "reads_ahead", False)
        if stream is not None and getattr(self.audio, "paced", False) and not reads_ahead:
            capture = collections.deque(maxlen=CAPTURE_QUEUE_FRAMES)
            threading.Thread(target=self._capture, args=(stream, capture), daemon=True,
                             name="capture-%s" % self.call_id).start()
        # After starting the capture thread: threads inherit the scheduling policy, and only
        # this loop, which always blocks until its next deadline, should run in real time.
        _raise_priority()
        silence = self._silence
        try:
            self._processor = self._open_processor()
        except Exception:
            log.exception("call %s: audio processing failed to start", self.call_id)
        # microphone frames, processed at the tick, waiting for their send deadline
        to_send: collections.deque[bytes] = collections.deque(maxlen=SEND_QUEUE_FRAMES)

        def source() -> bytes:
            frame = to_send.popleft() if to_send else silence
            if self._caller_cues:
                frame = _mix(frame, self._caller_cues.popleft())
            if self.mixer is not None:  # the other parties of a conference, too
                frame = self.mixer.mix_for(self.call_id, frame)
            return frame

        self._source = source
        session, dtmf = self._playing()
        negotiated = self.negotiated
        assert negotiated is not None  # set by play
        session.set_source(source)
        # Whatever queued on the sockets while the call rang is nobody's media yet (issue 12).
        dropped = sum(_discard_queued(sock) for sock in (self.rtp_sock, self.rtcp_sock))
        if dropped:
            log.info("call %s: dropped %d datagrams that arrived before media started",
                     self.call_id, dropped)
        for sock in (self.rtp_sock, self.rtcp_sock):
            _stamp_arrivals(sock)
            self._poller.register(sock, select.POLLIN)
        now = time.monotonic()
        session.start(now)
        session.set_sending(negotiated.sending, now)
        next_tick = now  # the first tick captures the frame the first packet sends
        ticks = 0
        wake = [self._wake_r]
        # Per wake-up only what can be due (issue 14: a wake-up after 20 ms of other jobs runs
        # with cold caches, so every call and lookup it makes costs far more than hot):
        # functions bound once, rebound only after a command (which may replace the session);
        # the DTMF receiver's timer and events only while a telephone event is live;
        # commands only when the queue holds one.
        # Sixth round: receiving and sending inline here (a Python frame each less per wake-up;
        # `_flush` stays for the stop path), the kernel timestamp unpacked by this platform's
        # `Struct` without a table lookup.
        commands_pending = self._commands.qsize
        monotonic, wall = time.monotonic, time.time
        sleep, poll = select.select, self._poller.poll
        by_fd = self._by_fd
        rtp_sock, rtcp_sock = self.rtp_sock, self.rtcp_sock
        session_timer, session_due = session.get_timer, session.handle_timer
        pull_audio, outgoing = session.pull_audio, session.datagrams_to_send
        processor = self._processor
        try:
            while not self._stopping:
                if commands_pending():
                    self._run_commands()
                    session, dtmf = self._playing()
                    session_timer, session_due = session.get_timer, session.handle_timer
                    pull_audio, outgoing = session.pull_audio, session.datagrams_to_send
                    processor = self._processor  # `set_audio` may have made one
                deadline = next_tick
                timer = session_timer()
                if timer is not None and timer < deadline:
                    deadline = timer
                if self._dtmf_live:
                    timer = dtmf.get_timer()
                    if timer is not None and timer < deadline:
                        deadline = timer
                timeout = deadline - monotonic()
                if timeout > 0:
                    sleep(wake, [], [], timeout)
                now = monotonic()
                # What arrived since the last frame, before the tick pulls from the buffer:
                # every datagram from both sockets (at most MAX_DATAGRAMS_PER_WAKE rounds).
                # `poll(0)` says which socket holds one, so an empty socket costs no failed
                # read and no exception (measured: cheaper cold than reading until
                # BlockingIOError). Each goes to the session with the time the kernel received
                # it (on the monotonic clock) where the kernel stamps datagrams, else with
                # `now`: the jitter buffer measures transit with it. The stamp is on the wall
                # clock: a step of it (NTP after boot) between arrival and now would move it
                # far; then `now` is the better guess.
                ready = poll(0)
                if ready:
                    to_monotonic = now - wall()
                    receive = session.receive
                    for _ in range(MAX_DATAGRAMS_PER_WAKE):
                        for fd, _events in ready:
                            try:
                                data, ancillary, _flags, addr = by_fd[fd].recvmsg(
                                    2048, TIMESTAMP_ANCILLARY)
                            except OSError:
                                continue  # e.g. ICMP port unreachable (now cleared)
                            arrival = now
                            for level, kind, value in ancillary:
                                if kind != SO_TIMESTAMPNS or level != SOL_SOCKET:
                                    continue
                                unpack = TIMESPEC if len(value) == TIMESPEC_SIZE else \
                                    TIMESPEC_UNPACK.get(len(value))
                                if unpack is not None:
                                    seconds, nanoseconds = unpack(value)
                                    stamp = seconds + nanoseconds * 1e-9 + to_monotonic
                                    if now - MAX_ARRIVAL_AGE < stamp <= now:
                                        arrival = stamp
                            receive(data, addr if len(addr) == 2 else addr[:2], arrival)
                        ready = poll(0)
                        if not ready:
                            break
                if now >= next_tick:
                    # The playout clock is the tick schedule, not the wake-up time: wake-up
                    # jitter would otherwise move the jitter buffer's measured delay across
                    # its adjustment thresholds and make it drop and repeat frames in turn.
                    frame = pull_audio(next_tick)
                    if self.mixer is not None:  # what this party said, for the others
                        self.mixer.heard(self.call_id, frame)
                    if self.inband is not None:
                        for digit in self.inband.feed(frame):
                            self._digit(digit.digit)
                    if self._speaker_cues:
                        frame = _mix(frame, self._speaker_cues.popleft())
                    if processor is not None:
                        frame = processor.playback(frame)
                    if stream is not None:
                        stream.write_frame(frame)
                    if capture is not None:  # the microphone's frame, as its kind hands it
                        mic = capture.popleft() if capture else silence
                    elif stream is None:
                        mic = silence
                    elif reads_ahead:
                        mic = stream.ready_frame() or silence
                    else:
                        mic = stream.read_frame() or silence
                    if processor is not None:
                        mic = processor.capture(mic)
                    to_send.append(mic)
                    next_tick += FRAME
                    if now - next_tick > 0.2:
                        next_tick = now + FRAME  # the thread was starved: do not burst
                    ticks += 1
                    if ticks % STATS_EVERY_TICKS == 0:
                        self._stats = session.stats()
                        if processor is not None:
                            self._stats.update(processor.stats())
                        if self.on_beat is not None:
                            self.on_beat()
                # After the tick: a send deadline on the same schedule takes the frame the
                # tick just captured.
                session_due(now)
                if self._dtmf_live:
                    dtmf.handle_timer(now)
                    self._deliver_digits(dtmf)
                for data, addr in outgoing():  # as `_flush`
                    sock = rtp_sock
                    if len(data) > 1 and 192 <= data[1] <= 223 and not session.rtcp_mux:
                        sock = rtcp_sock  # RTCP (RFC 5761 §4)
                    try:
                        sock.sendto(data, addr)
                    except OSError as exc:
                        log.debug("rtp send to %s failed: %s", addr, exc)
            session.close(time.monotonic())
            self._flush(session)
            self._stats = session.stats()
            if self._processor is not None:
                self._stats.update(self._processor.stats())
        except Exception:
            log.exception("media thread of call %s failed", self.call_id)
        finally:
            if stream is not None:
                stream.close()
            if self._processor is not None:
                self._processor.close()
            if self._codec_state is not None:
                self._codec_state.close()

    def _capture(self, stream: "AudioStream", queue: "collections.deque[bytes]") -> None:
        while not self._stop.is_set():
            frame = stream.read_frame()
            if frame is not None:
                queue.append(frame)

    def _flush(self, session: RtpSession) -> None:
        outgoing = session.datagrams_to_send()
        if not outgoing:
            return
        mux = session.rtcp_mux
        for data, addr in outgoing:
            sock = self.rtp_sock
            if not mux and len(data) > 1 and 192 <= data[1] <= 223:  # RTCP (RFC 5761 §4)
                sock = self.rtcp_sock
            try:
                sock.sendto(data, addr)
            except OSError as exc:
                log.debug("rtp send to %s failed: %s", addr, exc)

    def _deliver_digits(self, dtmf: DtmfReceiver) -> None:
        """The receiver's events; once it is idle with none left, the loop stops asking it."""
        while True:
            event = dtmf.next_event()
            if event is None:
                break
            digit = getattr(event, "digit", None)
            if digit is not None and type(event).__name__ == "Digit":
                self._digit(digit)
        if dtmf.get_timer() is None:
            self._dtmf_live = False

    def _digit(self, digit: str) -> None:
        if LOG_DIGITS:
            log.info("call %s: DTMF digit %s received", self.call_id, digit)
        self.loop.call_soon_threadsafe(self.on_digit, self.call_id, digit)


def _raise_priority() -> None:
    """Ask the scheduler to run this thread as soon as it wakes, so a busy neighbour does not
    delay packets: SCHED_FIFO at a low real-time priority (measured on 2 cores next to a busy
    loop: send-interval p99 20.2 ms instead of 23 ms; a nice value alone did not help), else a
    lower nice value. Both need root, CAP_SYS_NICE or an RLIMIT_RTPRIO of at least the priority
    (the systemd unit sets LimitRTPRIO=10, no capability); without them the thread keeps the
    default priority and works, with more send jitter under load.
    The loop sleeps between deadlines and uses a few % of a core, and the kernel's
    real-time throttling (sched_rt_runtime_us) bounds the damage of a bug that would spin."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(MEDIA_THREAD_RT_PRIORITY))
        return
    except (AttributeError, OSError) as exc:
        log.debug("media thread: no real-time priority: %s", exc)
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), MEDIA_THREAD_NICE)
    except (AttributeError, OSError) as exc:
        log.debug("media thread keeps the default priority: %s", exc)


def _stamp_arrivals(sock: socket.socket) -> None:
    """Ask the kernel to stamp each received datagram (SO_TIMESTAMPNS), where it can."""
    if SO_TIMESTAMPNS is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        except OSError:
            pass


def _srtp() -> "types.ModuleType":
    """libsrtp (through cffi) costs ~5 MB of memory: loaded only by a station that uses SRTP."""
    from firmware.rtp import srtp

    return srtp


def _remote(negotiated: "NegotiatedMedia") -> "tuple[str, int, str, int, bool]":
    return (negotiated.remote_address, negotiated.remote_port, negotiated.remote_rtcp_address,
            negotiated.remote_rtcp_port, negotiated.rtcp_mux)


def _discard_queued(sock: socket.socket) -> int:
    for count in range(MAX_STALE_DATAGRAMS):
        try:
            sock.recvfrom(2048)
        except (BlockingIOError, InterruptedError):
            return count
        except OSError:
            continue  # e.g. an ICMP error reported on the socket
    return MAX_STALE_DATAGRAMS


class _Rated:
    """A codec at another PCM rate than the call's sound device (a re-INVITE from G.722 to
    G.711 or back): resampled on the way in and out."""

    def __init__(self, encode: "Callable[[bytes], bytes]", decode: "Callable[[bytes], bytes]",
                 device_rate: int, codec_rate: int) -> None:
        from firmware.codecs.resample import Resampler

        self._encode, self._decode = encode, decode
        self._down = Resampler(device_rate, codec_rate)
        self._up = Resampler(codec_rate, device_rate)
        self._device_bytes = 2 * device_rate // 50  # one 20 ms frame at the device rate
        self._pending = b""

    def encode(self, pcm: bytes) -> bytes:
        return self._encode(self._down.process(pcm))

    def decode(self, payload: bytes) -> bytes:
        """One device frame per packet (the jitter buffer keys frames by RTP timestamp): the
        resampler's uneven output is carried over, at most one frame of it."""
        pcm = self._pending + self._up.process(self._decode(payload))
        size = self._device_bytes
        self._pending = pcm[size:size * 2]
        return pcm[:size].ljust(size, b"\0")


def _mix(a: bytes, b: bytes) -> bytes:
    """Sum two frames of 16-bit PCM with clipping."""
    x = array.array("h", a)
    y = array.array("h", b[:len(a)].ljust(len(a), b"\0"))
    mixed = [max(-32768, min(32767, p + q)) for p, q in zip(x, y, strict=True)]
    return array.array("h", mixed).tobytes()
