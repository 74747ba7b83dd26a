"""Audio processing rows (issue 15): CPU of a call with AEC + NS + AGC on and off, G.711 and
G.722, Doorline beside baresip with and without its `speex_pp` preprocessor; ERLE per room.

Every call goes to one direct-IP baresip peer (auto-answer, `g722` loaded, playing the
speech-like far-end audio of the tests through `aufile`) started here; both UAs play the
bench's 8 kHz microphone WAV. ERLE: Doorline on pc-sim with
`--echo-path` (tools/rooms.py's responses at the call's rate) and a silent microphone; the echo
is computed from the station's speaker WAV, the residual is the peer's recording of what it
received (the same measure as tests/integration/test_audio_housing.py, whose helpers it uses).
"""

import time

from tests.peers.baresip import Baresip
from tools.bench.agents import BaresipUA, DoorlineUA, cpu_seconds

PEER_USER = "flat3"
ON = {"echo_cancel": True, "noise_suppress": True, "agc": True, "mic_gain_db": 0,
      "speaker_volume": 100}
CODECS = {"pcmu": (["PCMU"], ("PCMU/8000/1",)), "g722": (["G722"], ("G722/16000/1",))}
ERLE_CALL_S = 4.0


def _peer(bench):
    if "audio-peer" not in bench._peers:
        from tests.integration.test_audio_housing import far_end_speech, write

        speech = write(bench.workdir / "far-end-speech-48k.wav", far_end_speech(48000, 60.0),
                       48000, channels=2)
        phone = Baresip(bench._next_dir("audio-peer"), user=PEER_USER, source_wav=speech,
                        modules=("g722.so",), codecs=("G722/16000/1", "PCMU/8000/1"))
        bench._peers["audio-peer"] = phone.start()
    return bench._peers["audio-peer"]


def _cpu_of_call(bench, ua, target):
    ua.wait_ready(10)
    ua.call(target)
    ua.wait_established(10)
    time.sleep(bench.params["warmup_s"])
    before, wall_before = cpu_seconds(ua.pid), time.monotonic()
    time.sleep(bench.params["cpu_s"])
    after, wall = cpu_seconds(ua.pid), time.monotonic() - wall_before
    ua.hangup()
    ua.wait_idle(5)
    return {"cpu_percent": 100.0 * (after - before) / wall}


def _doorline(bench, codec, processing):
    peer = _peer(bench)
    ua = bench._track(DoorlineUA(bench._next_dir(f"doorline-audio-{codec}"), mic=bench.mic,
                                 audio=ON if processing else None, codecs=CODECS[codec][0]))
    try:
        return _cpu_of_call(bench, ua, peer.contact_uri)
    finally:
        bench.stop(ua)


def _baresip(bench, codec, processing):
    peer = _peer(bench)
    modules = ("g722.so",) if codec == "g722" else ()
    if processing:
        modules += ("speex_pp.so",)
    ua = BaresipUA(bench._next_dir(f"baresip-audio-{codec}"), mic=bench.mic, modules=modules)
    ua.phone.codecs = CODECS[codec][1]  # read when the account is made, at start
    bench._track(ua)
    try:
        return _cpu_of_call(bench, ua, peer.contact_uri)
    finally:
        bench.stop(ua)


def _pair(bench, kind, codec):
    measure = _doorline if kind == "doorline" else _baresip
    off = bench.guard(f"audio[{kind},{codec},off]", measure, bench, codec, False)
    on = bench.guard(f"audio[{kind},{codec},on]", measure, bench, codec, True)
    out = {"off": off, "on": on}
    if "cpu_percent" in on:
        out["on_cpu_percent"] = on["cpu_percent"]
    if "cpu_percent" in off and "cpu_percent" in on:
        if off["cpu_percent"] > 0:
            out["ratio_on_to_off"] = on["cpu_percent"] / off["cpu_percent"]
        else:
            out["error"] = "the call without processing measured no CPU at all"
    return out


def _erle(bench, room, rate):
    from tests.integration.test_audio_housing import erle, read
    from tools import rooms

    responses = rooms.generate(bench.workdir / "rooms" / str(rate), rate)
    peer = _peer(bench)
    workdir = bench._next_dir(f"doorline-erle-{room}-{rate}")
    before = set(peer.recordings("dec"))
    time.sleep(max(0.0, 1.05 - (time.time() % 1.0)))  # baresip names recordings by second
    ua = bench._track(DoorlineUA(workdir, audio=ON, speaker_dir=workdir / "speaker",
                                 codecs=CODECS["g722" if rate == 16000 else "pcmu"][0],
                                 echo_path=responses[room]))
    try:
        ua.wait_ready(10)
        ua.call(peer.contact_uri)
        ua.wait_established(10)
        time.sleep(ERLE_CALL_S)
        ua.hangup()
        ua.wait_idle(5)
    finally:
        bench.stop(ua)
    speaker = sorted((workdir / "speaker").glob("*.wav"))
    received = [path for path in peer.recordings("dec") if path not in before]
    if len(speaker) != 1 or len(received) != 1:
        raise RuntimeError(f"recordings: station {speaker}, peer {received}")

    class Result:
        pass

    result = Result()
    result.speaker, result.received = read(speaker[0]), read(received[0])
    value, echo_db, residual_db = erle(result, responses[room])
    return {"erle_db": value, "echo_db": echo_db, "residual_db": residual_db}


def audio_cases(bench):
    results = {"doorline": {}, "baresip": {}}
    for codec in CODECS:
        for kind in ("doorline", "baresip"):
            results[kind][codec] = _pair(bench, kind, codec)
    erle = {}
    for rate in (8000, 16000):
        for room in ("box", "hallway"):
            erle[f"{room}_{rate // 1000}k"] = bench.guard(
                f"audio[erle,{room},{rate}]", _erle, bench, room, rate)
    results["doorline"]["erle"] = erle
    results["baresip"]["erle"] = {"na": "baresip has no echo canceller module in Debian 12"}
    return results
