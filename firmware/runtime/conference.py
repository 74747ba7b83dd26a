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
"""

import array
import collections
import threading

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
