"""hal.pi audio against the real libasound (pyalsaaudio), no sound card: ALSA `file` plugins
over `null` stand in for a 48 kHz USB codec, from a config the test writes (ALSA_CONFIG_PATH).

Checks the C conversion path (libasound2-plugins' `speexrate`, issue 14): the stream says it uses
it, a 1 kHz tone written at 8 kHz reaches the "device" at 48 kHz at the right frequency and level,
and the converter the HAL names meets the resampler's quality bar in both directions (pass band
to 3.4 kHz flat within 0.5 dB, >= 60 dB alias/image rejection) at a fraction of the pure-Python
Resampler's CPU.

The 48 kHz -> 8 kHz direction is measured through playback into an 8 kHz file with the same
converter: libasound 1.2.8's `file` plugin reads its `infile` ahead in mmap_begin, so capture
under a rate plugin skips input (a limit of the test device, not of a real card).
"""

import math
import os
import pathlib
import time

import pytest

from firmware.codecs.tones import ToneGenerator, goertzel_power, mean_square, pcm_to_samples
from hal.board import AudioSpec
from hal.pi import C_CONVERTER, AlsaAudio, converting_device

alsaaudio = pytest.importorskip(
    "alsaaudio", reason="pyalsaaudio is not installed (pip install '.[pi]'; needs libasound2-dev)")

AMPLITUDE = 10000
ALSA_CONF = pathlib.Path(os.environ.get("ALSA_CONFIG_DIR", "/usr/share/alsa")) / "alsa.conf"


def _use_config(monkeypatch, tmp_path, text):
    if not ALSA_CONF.exists():
        pytest.skip(f"no {ALSA_CONF}: libasound's own configuration is missing")
    conf = tmp_path / "asound.conf"
    conf.write_text(text)
    monkeypatch.setenv("ALSA_CONFIG_PATH", f"{ALSA_CONF}:{conf}")
    if "speexrate" not in alsaaudio.pcms():
        pytest.skip("libasound has no `speexrate` PCM: install libasound2-plugins")


@pytest.fixture
def card(monkeypatch, tmp_path):
    """A mono 48 kHz 'card': playback goes to out.raw, capture is silence."""
    out = tmp_path / "out.raw"
    _use_config(monkeypatch, tmp_path, f"""
pcm.testcard_play {{ type file slave.pcm "null" file "{out}" format "raw" }}
pcm.testcard_cap {{ type file slave.pcm "null" file "/dev/null" format "raw" }}
""")
    return out


def _db(power):
    return 10 * math.log10(max(power, 1e-12) / (AMPLITUDE**2 / 2))


def _tone(frequency, rate, seconds=0.6):
    return ToneGenerator([frequency], AMPLITUDE, rate=rate).samples(int(rate * seconds))


def test_pi_stream_converts_in_libasound_and_a_tone_reaches_the_48k_device(card):
    spec = AudioSpec(capture="testcard_cap", playback="testcard_play", rate=48000)
    audio = AlsaAudio(spec)
    stream = audio.open(rate=8000, frame_ms=20)
    try:
        assert stream.conversion == f"libasound {C_CONVERTER} (C)"
        tone = _tone(1000, 8000, seconds=1.0)
        for start in range(0, len(tone), 320):
            stream.write_frame(tone[start:start + 320])
        captured = [stream.read_frame() for _ in range(5)]
        assert all(frame is not None and len(frame) == 320 for frame in captured)
        assert stream.stats["dropped"] == 0
    finally:
        audio.close()
    samples = pcm_to_samples(card.read_bytes())
    assert len(samples) == pytest.approx(48000, abs=2 * 960)  # 1 s at 48 kHz, mono
    settled = samples[4800:]
    at_1k = goertzel_power(settled, 1000, 48000)
    assert _db(at_1k) == pytest.approx(0, abs=0.5)
    assert at_1k > 0.99 * mean_square(settled)


def _through_converter(monkeypatch, tmp_path, frequency, in_rate, out_rate):
    """Play a tone at in_rate into a file at out_rate through the HAL's converter name."""
    out = tmp_path / f"conv-{frequency}-{in_rate}.raw"
    _use_config(monkeypatch, tmp_path,
                f'pcm.conv_out {{ type file slave.pcm "null" file "{out}" format "raw" }}\n')
    pcm = alsaaudio.PCM(type=alsaaudio.PCM_PLAYBACK, mode=alsaaudio.PCM_NONBLOCK,
                        device=converting_device("conv_out", out_rate), rate=in_rate,
                        channels=1, format=alsaaudio.PCM_FORMAT_S16_LE,
                        periodsize=in_rate // 50, periods=4)
    tone = _tone(frequency, in_rate)
    frame = in_rate // 50 * 2
    started = time.process_time()
    for start in range(0, len(tone), frame):
        pcm.write(tone[start:start + frame])
    cpu = (time.process_time() - started) / (len(tone) // frame)
    pcm.close()
    return pcm_to_samples(out.read_bytes())[out_rate // 10:], cpu


@pytest.mark.parametrize("in_rate, out_rate", [(48000, 8000), (8000, 48000)])
@pytest.mark.parametrize("frequency", [300, 1000, 3400])
def test_c_converter_pass_band_is_flat_to_3400hz(monkeypatch, tmp_path, in_rate, out_rate,
                                                  frequency):
    out, _ = _through_converter(monkeypatch, tmp_path, frequency, in_rate, out_rate)
    assert _db(goertzel_power(out, frequency, out_rate)) == pytest.approx(0, abs=0.5)


@pytest.mark.parametrize("frequency", [4600, 6000, 12000])
def test_c_converter_rejects_aliases_by_60db(monkeypatch, tmp_path, frequency):
    out, _ = _through_converter(monkeypatch, tmp_path, frequency, 48000, 8000)
    assert _db(mean_square(out)) < -60


def test_c_converter_images_are_60db_down_when_upsampling(monkeypatch, tmp_path):
    out, _ = _through_converter(monkeypatch, tmp_path, 1000, 8000, 48000)
    for image in (7000, 9000, 15000, 17000):
        assert _db(goertzel_power(out, image, 48000)) < -60


def test_c_converter_costs_a_fraction_of_the_python_resampler(monkeypatch, tmp_path):
    from firmware.codecs.resample import Resampler

    _, c_cpu = _through_converter(monkeypatch, tmp_path, 1000, 48000, 8000)
    resampler = Resampler(48000, 8000)
    tone = _tone(1000, 48000, seconds=0.2)
    started = time.process_time()
    for start in range(0, len(tone), 1920):
        resampler.process(tone[start:start + 1920])
    python_cpu = (time.process_time() - started) / (len(tone) // 1920)
    assert c_cpu < python_cpu / 5, (c_cpu, python_cpu)


def test_python_fallback_is_named_and_still_plays_at_48k(card, monkeypatch):
    monkeypatch.setenv("DOORLINE_ALSA_RESAMPLER", "python")
    spec = AudioSpec(capture="testcard_cap", playback="testcard_play", rate=48000)
    audio = AlsaAudio(spec)
    stream = audio.open(rate=8000, frame_ms=20)
    try:
        assert stream.conversion.startswith("python")
        tone = _tone(1000, 8000, seconds=0.5)
        for start in range(0, len(tone), 320):
            stream.write_frame(tone[start:start + 320])
        assert stream.read_frame() is not None
    finally:
        audio.close()
    settled = pcm_to_samples(card.read_bytes())[4800:]
    assert _db(goertzel_power(settled, 1000, 48000)) == pytest.approx(0, abs=0.5)


# -- the whole firmware on the Pi HAL and the real libasound, in a call -----------------------

@pytest.mark.peers
def test_two_way_srtp_call_through_libasound(tmp_path, kamailio, baresip_factory):
    """The firmware with a Pi board whose sound card is libasound's `file` plugin at 48 kHz
    (converting in C): baresip calls it through Kamailio with SRTP; the station's 1 kHz
    microphone is in baresip's recording (the dominant frequency, at a clear level), baresip's
    440 Hz in what the station played (>= 80 % of the 100 ms windows dominated by it)."""
    from tests.hal.alsa_card import call_both_ways, write_card
    from tests.integration.helpers import Firmware, station_config

    if not ALSA_CONF.exists():
        pytest.skip(f"no {ALSA_CONF}: libasound's own configuration is missing")
    card = tmp_path / "card"
    env = write_card(card, rate=48000, mic_hz=1000, seconds=15)
    config = station_config(kamailio)
    config["media"] = {"srtp": "mandatory", "srtp_requires_tls": False}
    config["answer"] = {"mode": "auto", "allow": ["sip:flat1@127.0.0.1"]}
    phone = baresip_factory("flat1", registrar=kamailio, srtp=True, tone_hz=440)
    phone.wait_registered(10)
    station = Firmware(tmp_path / "station", config, board=card / "board.toml", env=env).start()
    try:
        station.wait_log(r"registration registered", timeout=15)
        figures = call_both_ways(station, phone, kamailio, card, talk_s=3.0)
        print(f"libasound call: {figures}")
        assert "conversion: libasound speexrate_medium (C)" in station.log
        assert figures["encrypted"], "baresip reported no media encryption"
        assert figures["phone_windows"] >= 20 and figures["station_windows"] >= 20, figures
        # the microphone direction: see tests/hal/alsa_card.py for why not the window share
        assert abs(figures["phone_heard_peak_hz"] - 1000) <= 20, figures
        assert figures["phone_heard_rms"] > 0.05, figures
        assert figures["station_heard_share"] >= 0.8, figures
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-4000:]}")
