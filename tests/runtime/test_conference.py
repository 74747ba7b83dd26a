"""runtime/conference.py: the conference mixer's arithmetic and queues (no threads, no I/O)."""

import array

from firmware.runtime.conference import MAX_QUEUED, Mixer, mix_frames


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
