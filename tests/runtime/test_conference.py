"""runtime/conference.py: the conference mixer's arithmetic and queues, and the shared audio
device of a conference on a paced board (a fake paced device, no I/O)."""

import array
import threading
import time

from firmware.runtime.conference import MAX_QUEUED, Mixer, SharedAudio, mix_frames


def frame(value, samples=160):
    return array.array("h", [value] * samples).tobytes()


def values(data):
    return set(array.array("h", data))


def test_mix_sums_with_clipping_and_leaves_other_lengths_out():
    assert values(mix_frames(frame(100), [frame(20), frame(3)])) == {123}
    assert values(mix_frames(frame(30000), [frame(30000)])) == {32767}
    assert values(mix_frames(frame(-30000), [frame(-30000)])) == {-32768}
    # a 16 kHz frame (320 samples) is not mixed into an 8 kHz one (160): left out, not garbled
    assert mix_frames(frame(7), [frame(5, 320)]) == frame(7)
    assert values(mix_frames(frame(7, 320), [frame(5, 320)])) == {12}  # rate-agnostic


def test_each_member_hears_the_others_never_itself():
    mixer = Mixer()
    for member in ("a", "b", "c"):
        mixer.join(member)
    mixer.heard("a", frame(1))
    mixer.heard("b", frame(10))
    mixer.heard("c", frame(100))
    assert values(mixer.mix_for("a", frame(1000))) == {1110}
    assert values(mixer.mix_for("b", frame(1000))) == {1101}
    assert values(mixer.mix_for("c", frame(1000))) == {1011}
    # each frame is sent once per listener: nothing queued any more
    assert values(mixer.mix_for("a", frame(1000))) == {1000}


def test_queues_are_bounded_and_leaving_drops_a_member():
    mixer = Mixer()
    mixer.join("a")
    mixer.join("b")
    for i in range(MAX_QUEUED + 10):
        mixer.heard("a", frame(i))
    sent = [values(mixer.mix_for("b", frame(0))) for _ in range(MAX_QUEUED + 1)]
    assert sent[0] == {10} and sent[-1] == {0}  # the oldest were dropped, 100 ms kept
    mixer.leave("a")
    mixer.heard("a", frame(5))
    assert mixer.members == ["b"] and values(mixer.mix_for("b", frame(0))) == {0}


# -- SharedAudio: one paced device for every call of a conference -----------------------------
class PacedStream:
    """A fake paced device stream: a mic frame counting up every `frame_s`, writes recorded."""

    def __init__(self, device, rate, frame_ms):
        self.device, self.rate, self.frame_s = device, rate, frame_ms / 1000.0
        self.count = 0
        self.written = []
        self.closed = False

    def read_frame(self):
        time.sleep(self.frame_s)
        self.count += 1
        return frame(self.count, 8)

    def write_frame(self, pcm):
        self.written.append(pcm)

    def close(self):
        self.closed = True


class PacedDevice:
    paced = True

    def __init__(self):
        self.opened = []

    def open(self, rate=8000, frame_ms=20):
        if any(not s.closed and (s.rate, s.frame_s) == (rate, frame_ms / 1000.0)
               for s in self.opened):
            raise RuntimeError("device busy")  # as an ALSA plughw: PCM
        stream = PacedStream(self, rate, frame_ms)
        self.opened.append(stream)
        return stream


def wait_for(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.002)


def test_shared_audio_fans_the_mic_out_and_sums_what_the_calls_play():
    device = PacedDevice()
    shared = SharedAudio(device)
    a, b = shared.open(8000, 2), shared.open(8000, 2)
    assert len(device.opened) == 1  # one real stream for both calls
    real = device.opened[0]
    heard_a = [a.read_frame() for _ in range(3)]
    heard_b = [b.read_frame() for _ in range(3)]
    assert heard_a and heard_a == heard_b  # both calls get the same door microphone frames
    stop = threading.Event()

    def play(stream, value):
        while not stop.is_set():
            stream.write_frame(frame(value, 8))
            time.sleep(0.002)

    players = [threading.Thread(target=play, args=(a, 100)),
               threading.Thread(target=play, args=(b, 20))]
    for player in players:
        player.start()
    wait_for(lambda: any(values(w) == {120} for w in real.written))  # both on one speaker
    stop.set()
    for player in players:
        player.join()
    other = shared.open(16000, 2)  # another rate: the device directly, unshared
    assert other is device.opened[1]
    a.close()
    b.close()
    wait_for(lambda: real.closed)  # the last call gone: the real stream is closed
