"""Audio for a real housing (issue 15), through real calls with baresip.

One G.711-only baresip (440 Hz `ausine`) and one with baresip's own `g722` module (6 kHz) serve
the whole module; each case starts a station (pc-sim) with its own `[audio]` settings, room
(`--echo-path`, a response made by tools/rooms.py at the call's rate) and microphone WAV, takes
one short call from the phone, and measures what each side recorded: baresip's
`dump-*-dec.wav` (what the station sent) and the station's speaker WAV (what its speaker
played, after the volume).

- Echo (ERLE): microphone silent, the room adds the speaker's echo. The echo the microphone
  heard is computed here from the speaker WAV and the room's response (numpy, not the code
  under test); the residual is what baresip received. From 2 s after the far end's audio
  reached the speaker: >= 25 dB for each room at 8 and 16 kHz; < 10 dB with echo_cancel=false.
- Double talk: a 1 kHz microphone tone while the far end talks into the box: the 1 kHz level
  at baresip with the canceller on is within 6 dB of the level with it off.
- Noise: speech-like bursts over steady noise: the floor between bursts drops >= 10 dB with
  noise_suppress, the bursts stay within 6 dB.
- Wideband: with baresip's g722 both ways carry 6 kHz (16 kHz WAVs); the G.711-only baresip
  gets G.711 from a station that prefers G.722 (8 kHz speaker WAV, and no 6 kHz arrives).
- Gain/volume: mic_gain_db=+6 and speaker_volume 50 (of 100) move the levels by +6 and -6 dB
  (+-1 dB).
"""

import math
import pathlib
import re
import time
import wave

import numpy as np
import pytest

from tests.integration.helpers import Firmware, station_config
from tests.integration.test_calls_sipp import free_rtp_range
from tests.peers.baresip import Baresip
from tests.peers.fixtures import FLAT1_USER
from tests.peers.process import require_binary
from tools import rooms  # tools/rooms.py: the simulated rooms' impulse responses

pytestmark = pytest.mark.peers

FLAT1_CALLER = f"sip:{FLAT1_USER}@127.0.0.1"
TALK_S = 3.6  # per call: 2 s to converge, then > 1 s measured
CONVERGE_S = 2.0
END_MARGIN_S = 0.3
PHONE_HZ = 440
WIDE_HZ = 6000
MIC_HZ = 1000
OFF = {"echo_cancel": False, "noise_suppress": False, "agc": False}
AEC_ONLY = {"echo_cancel": True, "noise_suppress": False, "agc": False}


# -- WAV helpers (numpy) -------------------------------------------------------------------

def read(path):
    with wave.open(str(path), "rb") as wav:
        rate, channels = wav.getframerate(), wav.getnchannels()
        data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(float)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data / 32768.0, rate


def write(path, samples, rate, channels=1):
    pcm = np.clip(np.rint(np.asarray(samples) * 32767), -32768, 32767).astype("<i2")
    pcm = np.repeat(pcm, channels)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


def tone(freq, rate, seconds=2.0, amplitude=0.25):
    return amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)


def db(power):
    return 10 * math.log10(max(power, 1e-12))


def power(samples):
    return float(np.mean(np.square(samples))) if len(samples) else 0.0


def band_power(samples, rate, freq, width=60):
    """Power of `samples` within +-width Hz of `freq` (a Hann-windowed FFT, scaled so that a
    sine of amplitude A gives A^2/2 whatever the window's length)."""
    if not len(samples):
        return 0.0
    window = np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(samples * window)) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    band = float(spectrum[(freqs > freq - width) & (freqs < freq + width)].sum())
    return 2 * band / (len(samples) * float(np.sum(window ** 2)))


def onset(samples, rate, threshold=1e-3):
    """Seconds until the first 20 ms window whose RMS exceeds `threshold`."""
    size = rate // 50
    for start in range(0, len(samples) - size, size):
        if math.sqrt(power(samples[start:start + size])) > threshold:
            return start / rate
    return None


# -- peers and stations --------------------------------------------------------------------

def far_end_speech(rate=16000, seconds=8.0, seed=4):
    """Speech-like far-end audio: noise bursts with a syllable rhythm (about 4 per second,
    each a different length and loudness) and short pauses. Not stationary, so a noise
    suppressor cannot take it for noise, and broadband, as speech is to a canceller."""
    rng = np.random.default_rng(seed)
    count = int(seconds * rate)
    out = np.zeros(count)
    position = 0
    while position < count:
        length = int(rng.uniform(0.12, 0.3) * rate)
        gap = int(rng.uniform(0.02, 0.12) * rate)
        burst = rng.standard_normal(length)
        burst = np.convolve(burst, np.ones(4) / 4, mode="same")  # some spectral tilt
        burst *= np.hanning(length) * rng.uniform(0.1, 0.3)
        out[position:position + length] = burst[:count - position]
        position += length + gap
    return out


@pytest.fixture(scope="module")
def phones(tmp_path_factory):
    """Direct by IP (no registrar), shared by every case: "g711" (PCMU/PCMA) and "g722"
    (baresip's g722 module) play speech-like audio through `aufile`; "wide" (g722) a 6 kHz
    tone; "tone" (PCMU/PCMA) a 440 Hz tone."""
    require_binary("baresip")
    base = tmp_path_factory.mktemp("phones")
    # aufile takes the source's format as configured: 48 kHz stereo (ausrc_srate/channels)
    speech = write(base / "speech.wav", far_end_speech(48000), 48000, channels=2)
    made = {
        "g711": Baresip(base / "g711", FLAT1_USER, source_wav=speech),
        "g722": Baresip(base / "g722", FLAT1_USER, source_wav=speech, modules=("g722.so",),
                        codecs=("G722/16000/1",)),
        "wide": Baresip(base / "wide", FLAT1_USER, tone_hz=WIDE_HZ, modules=("g722.so",),
                        codecs=("G722/16000/1",)),
        "tone": Baresip(base / "tone", FLAT1_USER, tone_hz=PHONE_HZ),
    }
    try:
        for phone in made.values():
            phone.start()
        yield made
    finally:
        for phone in made.values():
            phone.stop()


@pytest.fixture(scope="module")
def room_files(tmp_path_factory):
    """tools/rooms.py's responses at 8 and 16 kHz: {(room, rate): path}."""
    base = tmp_path_factory.mktemp("rooms")
    return {(name, rate): path for rate in (8000, 16000)
            for name, path in rooms.generate(base / str(rate), rate).items()}


class Call:
    def __init__(self, speaker, received, log):
        self.speaker = speaker  # (samples, rate) the station's speaker played
        self.received = received  # (samples, rate) baresip received
        self.log = log


def call(workdir, phone, audio, mic=None, echo_path=None, codecs=("PCMU", "PCMA")):
    """Start a station with `audio` ([audio] keys over the defaults), let `phone` call it for
    TALK_S and hang up; returns the Call's recordings."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    config = station_config(None)
    low = free_rtp_range()
    config["media"] = {"rtp_ports": f"{low}-{low + 19}", "codecs": list(codecs)}
    config["answer"] = {"mode": "auto", "allow": [FLAT1_CALLER]}
    config["audio"] = dict(audio)
    args = ["--speaker-dir", workdir / "speaker"]
    if mic is not None:
        args += ["--mic", mic]
    if echo_path is not None:
        args += ["--echo-path", echo_path]
    station = Firmware(workdir, config, extra_args=args, log_level="INFO").start()
    try:
        station.wait_log(r"listening on", timeout=10)
        before = set(phone.recordings("dec"))
        # baresip names recordings by the wall-clock second: never two calls in one second
        time.sleep(max(0.0, 1.05 - (time.time() % 1.0)) if before else 0.0)
        since = len(phone.events)
        phone.dial(f"sip:door@127.0.0.1:{station.port}")
        phone.wait_event("CALL_ESTABLISHED", 10, since=since)
        time.sleep(TALK_S)
        phone.hangup()
        phone.wait_event("CALL_CLOSED", 5, since=since)
        station.wait_log(r"call \S+ ended", timeout=5)
    finally:
        station.stop()
    speaker = sorted((workdir / "speaker").glob("*.wav"))
    assert len(speaker) == 1, f"station speaker files: {speaker}\n{station.log[-2000:]}"
    new = [p for p in phone.recordings("dec") if p not in before]
    assert len(new) == 1, f"baresip recordings of this call: {new}"
    return Call(read(speaker[0]), read(new[0]), station.log)


def media_line(log):
    found = re.findall(r"call \S+ media: (.*)", log)
    return found[-1] if found else "(no media line)"


def erle(result, response_path):
    """(ERLE in dB from CONVERGE_S after the far end reached the speaker, echo dB, residual
    dB): echo = what the speaker played convolved with the room (computed here)."""
    played, rate = result.speaker
    response, response_rate = read(response_path)
    assert response_rate == rate
    echo = np.convolve(played, response)[:len(played)]
    start = onset(played, rate)
    assert start is not None, "the far end's audio never reached the station's speaker"
    received, received_rate = result.received
    assert received_rate == rate
    begin = int((start + CONVERGE_S) * rate)
    end_echo = len(echo) - int(END_MARGIN_S * rate)
    end_received = len(received) - int(END_MARGIN_S * rate)
    assert end_received - begin > rate, "the call was too short to measure"
    echo_db = db(power(echo[begin:end_echo]))
    residual_db = db(power(received[begin:end_received]))
    return echo_db - residual_db, echo_db, residual_db


# -- echo --------------------------------------------------------------------------------

ROOM_CASES = [pytest.param(room, rate, id=f"{room}-{rate // 1000}k")
              for rate in (8000, 16000) for room in ("box", "hallway")]


@pytest.mark.parametrize("room,rate", ROOM_CASES)
def test_echo_cancelled_in_each_room(room, rate, phones, room_files, tmp_path):
    phone = phones["g722" if rate == 16000 else "g711"]
    codecs = ("G722", "PCMU") if rate == 16000 else ("PCMU",)
    # the shipped defaults: echo_cancel, noise_suppress and agc on
    result = call(tmp_path, phone, {}, echo_path=room_files[(room, rate)], codecs=codecs)
    value, echo_db, residual_db = erle(result, room_files[(room, rate)])
    print(f"[{room}, {rate} Hz] echo {echo_db:.1f} dB, residual at baresip {residual_db:.1f} dB:"
          f" ERLE {value:.1f} dB; station: {media_line(result.log)}")
    received, _ = result.received
    print("  residual per 200 ms:", " ".join(
        "%.0f" % db(power(received[i:i + rate // 5])) for i in range(0, len(received), rate // 5)))
    played, _ = result.speaker
    print("  played per 200 ms:  ", " ".join(
        "%.0f" % db(power(played[i:i + rate // 5])) for i in range(0, len(played), rate // 5)))
    assert echo_db > -40, f"no echo to cancel ({echo_db:.1f} dB): the room did nothing"
    assert value >= 25, f"ERLE {value:.1f} dB < 25 dB in the {room} at {rate} Hz"


def test_without_echo_cancel_the_echo_reaches_the_far_end(phones, room_files, tmp_path):
    result = call(tmp_path, phones["g711"], {"echo_cancel": False},
                  echo_path=room_files[("box", 8000)])
    value, echo_db, residual_db = erle(result, room_files[("box", 8000)])
    print(f"[box, 8000 Hz, echo_cancel=false] echo {echo_db:.1f} dB, at baresip "
          f"{residual_db:.1f} dB: ERLE {value:.1f} dB")
    assert value < 10, f"ERLE {value:.1f} dB with the canceller off: the measure is wrong"


# -- double talk -----------------------------------------------------------------------------

def test_double_talk_keeps_the_near_end(phones, room_files, tmp_path):
    mic = write(tmp_path / "mic.wav", tone(MIC_HZ, 8000), 8000)
    levels = {}
    for name, audio in (("on", AEC_ONLY), ("off", OFF)):
        result = call(tmp_path / name, phones["g711"], audio, mic=mic,
                      echo_path=room_files[("box", 8000)])
        received, rate = result.received
        window = received[int(CONVERGE_S * rate):len(received) - int(END_MARGIN_S * rate)]
        levels[name] = (db(band_power(window, rate, MIC_HZ)),
                        db(max(power(window) - band_power(window, rate, MIC_HZ), 0.0)))
    print(f"double talk: 1 kHz at baresip {levels['on'][0]:.1f} dB with AEC, "
          f"{levels['off'][0]:.1f} dB without; everything else (the echo) "
          f"{levels['on'][1]:.1f} / {levels['off'][1]:.1f} dB")
    assert abs(levels["on"][0] - levels["off"][0]) <= 6, levels


# -- noise ---------------------------------------------------------------------------------

def noisy_speech(rate, seconds=4.0, seed=15):
    """Bursts (0.4 s of a 200 Hz-pitched harmonic sound with a syllable envelope, every 1 s)
    over steady white noise at about -36 dBFS."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    voiced = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 10))
    envelope = ((t % 1.0) < 0.4) * np.sin(np.pi * np.clip((t % 1.0) / 0.4, 0, 1))
    return 0.2 * voiced * envelope + 0.015 * rng.standard_normal(len(t))


def frame_levels(samples, rate):
    size = rate // 50
    return np.array([db(power(samples[i:i + size]))
                     for i in range(0, len(samples) - size, size)])


def test_noise_suppression_lowers_the_floor_and_keeps_the_bursts(phones, tmp_path):
    mic = write(tmp_path / "mic.wav", noisy_speech(8000), 8000)
    floors, bursts = {}, {}
    for name, ns in (("on", True), ("off", False)):
        result = call(tmp_path / name, phones["tone"],
                      {"echo_cancel": False, "noise_suppress": ns, "agc": False}, mic=mic)
        received, rate = result.received
        levels = frame_levels(received[int(CONVERGE_S * rate):], rate)
        floors[name], bursts[name] = np.percentile(levels, 10), np.percentile(levels, 95)
    print(f"noise: floor {floors['off']:.1f} -> {floors['on']:.1f} dB, bursts "
          f"{bursts['off']:.1f} -> {bursts['on']:.1f} dB with noise_suppress")
    assert floors["off"] - floors["on"] >= 10, (floors, bursts)
    assert bursts["off"] - bursts["on"] <= 6, (floors, bursts)


# -- wideband ------------------------------------------------------------------------------

def test_g722_carries_6khz_both_ways_and_g711_peer_gets_g711(phones, tmp_path):
    mic = write(tmp_path / "mic.wav", tone(WIDE_HZ, 16000), 16000)
    wide = call(tmp_path / "g722", phones["wide"], OFF, mic=mic, codecs=("PCMU", "G722"))
    received, rate = wide.received
    played, speaker_rate = wide.speaker
    assert rate == 16000 and speaker_rate == 16000, (rate, speaker_rate)
    skip = int(0.5 * rate)
    to_phone = band_power(received[skip:], rate, WIDE_HZ) / max(power(received[skip:]), 1e-12)
    to_station = band_power(played[skip:], rate, WIDE_HZ) / max(power(played[skip:]), 1e-12)
    print(f"G.722: 6 kHz share at baresip {to_phone:.2f}, at the station's speaker "
          f"{to_station:.2f}")
    assert power(received[skip:]) > 1e-4 and to_phone > 0.5
    assert power(played[skip:]) > 1e-4 and to_station > 0.5

    narrow = call(tmp_path / "g711", phones["tone"], OFF, mic=mic, codecs=("G722", "PCMU"))
    received, rate = narrow.received
    assert rate == 8000 and narrow.speaker[1] == 8000, "the G.711-only phone got no G.711"
    assert power(received[skip:]) < 1e-5, "6 kHz cannot pass G.711 at 8 kHz"


# -- gain and volume -----------------------------------------------------------------------

def test_mic_gain_and_speaker_volume_change_levels(phones, tmp_path):
    mic = write(tmp_path / "mic.wav", tone(MIC_HZ, 8000), 8000)
    results = {}
    for name, settings in (("plain", {"mic_gain_db": 0, "speaker_volume": 100}),
                           ("changed", {"mic_gain_db": 6, "speaker_volume": 50})):
        result = call(tmp_path / name, phones["tone"], {**OFF, **settings}, mic=mic)
        received, rate = result.received
        played, speaker_rate = result.speaker
        skip = int(0.5 * rate)
        results[name] = (db(band_power(received[skip:-skip], rate, MIC_HZ)),
                         db(band_power(played[skip:-skip], speaker_rate, PHONE_HZ)))
    mic_change = results["changed"][0] - results["plain"][0]
    speaker_change = results["changed"][1] - results["plain"][1]
    print(f"mic_gain_db +6: {mic_change:+.2f} dB at baresip; speaker_volume 100 -> 50: "
          f"{speaker_change:+.2f} dB at the speaker")
    assert abs(mic_change - 6) <= 1, results
    assert abs(speaker_change + 6) <= 1, results
