"""Local mixing for a conference at the door (`[calls] conference = true`, issue 20).

With two or more calls up at once, each party must hear the other parties and the door: what
the station sends on a call is its microphone frame plus the audio received on every other
call of the conference. Each call's media thread (runtime/media.py) touches the mixer through
two narrow hooks:
- `heard(member, frame)`: the frame it just pulled from its jitter buffer (what that party
  said); it is queued for every other member;
- `mix_for(member, frame)`: the microphone frame it is about to send; one queued frame of each
  other member is added to it.
Queues are per (speaker, listener) pair and bounded (`MAX_QUEUED` frames: 100 ms; the oldest is
dropped), so threads ticking slightly apart never build up delay. The mixer is rate-agnostic:
it sums frames of equal length (16-bit PCM, clipped), whatever their sample rate; a frame of
another length (a call at another rate) is left out rather than mixed wrongly.
All methods are thread-safe (one lock, held only to move frames between queues).

`SharedAudio` lets the calls of a conference share one real (paced) audio device: the door's
microphone goes to every call, every call's audio to the one speaker.
"""

import array
import collections
import threading

from hal.base import AudioDevice, AudioStream

MAX_QUEUED = 5  # frames per (speaker, listener) pair: 100 ms of 20 ms frames


def mix_frames(base: bytes, others: "list[bytes]") -> bytes:
    """`base` plus each frame of `others` of the same length, as 16-bit PCM with clipping."""
    same = [frame for frame in others if len(frame) == len(base)]
    if not same:
        return base
    total = array.array("h", base)
    for frame in same:
        samples = array.array("h", frame)
        total = array.array("h", [max(-32768, min(32767, a + b))
                                  for a, b in zip(total, samples, strict=True)])
    return total.tobytes()


class Mixer:
    """The conference's members (call ids) and the frames queued between them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # (speaker, listener) -> frames the speaker said that the listener has not sent yet
        self._queues: dict[tuple[str, str], collections.deque[bytes]] = {}
        self._members: list[str] = []

    @property
    def members(self) -> "list[str]":
        with self._lock:
            return list(self._members)

    def join(self, member: str) -> None:
        with self._lock:
            if member in self._members:
                return
            for other in self._members:
                self._queues[(member, other)] = collections.deque(maxlen=MAX_QUEUED)
                self._queues[(other, member)] = collections.deque(maxlen=MAX_QUEUED)
            self._members.append(member)

    def leave(self, member: str) -> None:
        with self._lock:
            if member not in self._members:
                return
            self._members.remove(member)
            for key in [k for k in self._queues if member in k]:
                del self._queues[key]

    def heard(self, member: str, frame: bytes) -> None:
        """What `member`'s party said (one decoded frame): queued for every other member."""
        with self._lock:
            for other in self._members:
                if other != member:
                    queue = self._queues.get((member, other))
                    if queue is not None:
                        queue.append(frame)

    def mix_for(self, member: str, frame: bytes) -> bytes:
        """`frame` (the door's microphone) plus one queued frame of each other member."""
        with self._lock:
            others = []
            for other in self._members:
                if other != member:
                    queue = self._queues.get((other, member))
                    if queue:
                        others.append(queue.popleft())
        return mix_frames(frame, others)


# -- one real audio device for every call of a conference -------------------------------------
class SharedAudio(AudioDevice):
    """An audio device for several calls at once over one real, paced device (an ALSA
    `plughw:` PCM takes one open at a time): one reader thread captures the door's microphone
    and hands every frame to every call's stream; what the calls play is summed (mix_frames,
    one queued frame of each per captured frame, so the device's clock paces the output too)
    and written to the one real stream. Only for paced devices (the simulated board records
    each call apart and is not paced); a stream asking for another rate or frame length than
    the first one gets the device directly (unshared, as without a conference)."""

    paced = True

    def __init__(self, device: AudioDevice) -> None:
        self.device = device
        self._cond = threading.Condition()
        self._streams: list[SharedStream] = []
        self._real: AudioStream | None = None
        self._shape: tuple[int, int] | None = None  # (rate, frame_ms) of the real stream
        self._reader: threading.Thread | None = None

    def open(self, rate: int = 8000, frame_ms: int = 20) -> AudioStream:
        with self._cond:
            if self._real is not None and self._shape != (rate, frame_ms):
                return self.device.open(rate, frame_ms)
            if self._real is None:
                self._real = self.device.open(rate, frame_ms)
                self._shape = (rate, frame_ms)
                self._reader = threading.Thread(target=self._read, args=(self._real,),
                                                name="conference-audio", daemon=True)
                self._reader.start()
            stream = SharedStream(self, frame_ms / 1000.0)
            self._streams.append(stream)
            return stream

    def begin_call(self, call_id: str) -> None:
        self.device.begin_call(call_id)

    def end_call(self, call_id: "str | None" = None) -> None:
        self.device.end_call(call_id)

    def close(self) -> None:
        with self._cond:
            streams = list(self._streams)
        for stream in streams:
            stream.close()

    def _forget(self, stream: "SharedStream") -> None:
        with self._cond:
            if stream in self._streams:
                self._streams.remove(stream)
            if not self._streams:
                self._real, self._shape = None, None  # the reader closes it and ends
            self._cond.notify_all()

    def _read(self, real: AudioStream) -> None:
        try:
            while True:
                with self._cond:
                    if self._real is not real:
                        return
                frame = real.read_frame()  # paced by the device
                with self._cond:
                    streams = list(self._streams)
                    played = [s._out.popleft() for s in streams if s._out]
                    if frame is not None:
                        for stream in streams:
                            stream._in.append(frame)
                    self._cond.notify_all()
                if played:
                    real.write_frame(mix_frames(played[0], played[1:]))
        finally:
            real.close()


class SharedStream(AudioStream):
    """One call's view of a `SharedAudio` device."""

    def __init__(self, owner: SharedAudio, frame_s: float) -> None:
        self.owner = owner
        self.frame_s = frame_s
        self._in: collections.deque[bytes] = collections.deque(maxlen=MAX_QUEUED)
        self._out: collections.deque[bytes] = collections.deque(maxlen=MAX_QUEUED)
        self.closed = False

    def read_frame(self) -> "bytes | None":
        """The next microphone frame; None after two frame times without one."""
        with self.owner._cond:
            if not self._in and not self.closed:
                self.owner._cond.wait(2 * self.frame_s)
            return self._in.popleft() if self._in else None

    def write_frame(self, pcm: bytes) -> None:
        with self.owner._cond:
            self._out.append(pcm)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.owner._forget(self)
