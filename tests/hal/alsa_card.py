"""A "sound card" for the Pi HAL made of ALSA `file` plugins, for whole-firmware tests.

    env = write_card(directory, seen_as="/var/lib/x")   # board.toml, asound.conf, mic.raw
    env = write_card(directory, mic_pipe=fifo)          # the microphone reads a named pipe
    samples = speaker_samples(directory)                  # what the firmware played, -1..1
    figures = call_both_ways(station, phone, kamailio, directory, talk_s=3.0)

`write_card` writes into `directory`: a Pi board file (kind "pi", the required pins, which
gpiozero's mock factory serves) whose `[audio]` is `door_mic`/`door_speaker` at `rate`, an ALSA
configuration defining them (capture reads `mic.raw`, a `seconds` long `mic_hz` tone, 16-bit mono
at `rate`; playback writes `speaker.raw`; both over `null`, so neither has a clock), and returns
the environment the firmware needs (`ALSA_CONFIG_PATH`, `GPIOZERO_PIN_FACTORY=mock`,
`DOORLINE_ALSA_UNTIMED=1`: the runtime paces the clock-less devices). `seen_as` is where the
firmware sees `directory` (inside a chroot); `alsa_dir` is libasound's own configuration there.

Limit of this card, not of the HAL: under the HAL's rate converter (`speexrate` over `plug`) the
`file` plugin's capture skips input (libasound 1.2.8 reads `infile` in mmap_begin for more frames
than the converter then commits), so 3 of 4 frames of the microphone tone carry a phase jump:
`call_both_ways` reports the microphone direction's window share, and checks there use the
dominant frequency and level. The playback direction is exact.
"""

import math
import os
import pathlib
import time

from firmware.codecs.tones import pcm_to_samples

BOARD = """\
schema_version = 1
name = "alsa-files"
kind = "pi"
header = "40pin"
description = "tests: a Pi board with mock pins and ALSA file plugins as sound card"
[buttons.call]
pin = 17
[leds.status]
pin = 24
[relays.door]
pin = 23
[audio]
capture = "door_mic"
playback = "door_speaker"
rate = {rate}
"""
ASOUND = """\
pcm.door_mic {{ type file slave.pcm "null" file "/dev/null" infile "{where}/mic.raw" format "raw" }}
pcm.door_speaker {{ type file slave.pcm "null" file "{where}/speaker.raw" format "raw" }}
"""


def tone_pcm(freq, rate, seconds, amplitude=12000):
    return b"".join(int(amplitude * math.sin(2 * math.pi * freq * n / rate))
                    .to_bytes(2, "little", signed=True) for n in range(int(rate * seconds)))


def write_card(directory, rate=48000, mic_hz=1000, seconds=40.0, seen_as=None,
               alsa_dir=None, mic_pipe=None):
    """`mic_pipe`: the capture reads that named pipe (the caller makes and feeds it) instead
    of a `mic.raw` tone."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    where = seen_as or os.fspath(directory)
    alsa_dir = alsa_dir or os.environ.get("ALSA_CONFIG_DIR", "/usr/share/alsa")
    (directory / "board.toml").write_text(BOARD.format(rate=rate))
    asound = ASOUND.format(where=where)
    if mic_pipe is not None:
        asound = asound.replace(f"{where}/mic.raw", os.fspath(mic_pipe))
    else:
        (directory / "mic.raw").write_bytes(tone_pcm(mic_hz, rate, seconds))
    (directory / "asound.conf").write_text(asound)
    return {"ALSA_CONFIG_PATH": f"{alsa_dir}/alsa.conf:{where}/asound.conf",
            "GPIOZERO_PIN_FACTORY": "mock", "DOORLINE_ALSA_UNTIMED": "1"}


def speaker_samples(directory):
    """What the firmware played, as floats in -1..1 (empty before the first write)."""
    path = pathlib.Path(directory) / "speaker.raw"
    data = path.read_bytes() if path.exists() else b""
    return [s / 32768 for s in pcm_to_samples(data)]


def window_share(samples, rate, freq, window_s=0.1, skip_s=0.5):
    """(share of the `window_s` windows after `skip_s` that `freq` dominates, window count).
    Windows, not one long Goertzel: a frame dropped or repeated shifts the phase."""
    from tests.peers.audio import tone_power_ratio

    samples = samples[int(skip_s * rate):]
    size = int(window_s * rate)
    ratios = [tone_power_ratio(samples[i:i + size], rate, freq)
              for i in range(0, len(samples) - size + 1, size)]
    return (round(sum(r >= 0.5 for r in ratios) / len(ratios), 3) if ratios else 0.0), len(ratios)


def call_both_ways(station, phone, registrar, card, talk_s, mic_hz=1000, phone_hz=440,
                   rate=48000, timeout_scale=1.0):
    """baresip (`phone`, registered, auto-answering off) calls the station (registered with
    `registrar`, auto-answer) through the registrar, talks `talk_s`, hangs up. Returns figures:
    the share of windows with the station's microphone tone in baresip's recording and with
    baresip's tone in what the station played to `card`'s speaker, their levels, and whether
    baresip reported media encryption."""
    from tests.peers.audio import dominant_frequency, read_wav, rms

    phone.dial(f"sip:door@127.0.0.1:{registrar.udp_port}")
    phone.wait_event("CALL_ESTABLISHED", 10 * timeout_scale)
    time.sleep(talk_s)
    phone.hangup()
    phone.wait_event("CALL_CLOSED", 5 * timeout_scale)
    station.wait_log(r"call \S+ ended", timeout=5 * timeout_scale)
    encrypted = any(e.get("type") == "CALL_MENC" for e in phone.events)
    phone.stop()
    recordings = phone.recordings("dec")
    assert recordings, "baresip wrote no recording"
    heard, heard_rate = read_wav(recordings[-1])
    speaker = speaker_samples(card)
    figures = {"encrypted": encrypted}
    figures["phone_heard_share"], figures["phone_windows"] = window_share(heard, heard_rate,
                                                                           mic_hz)
    figures["phone_heard_rms"] = round(rms(heard), 3)
    middle = heard[heard_rate:2 * heard_rate]
    figures["phone_heard_peak_hz"] = dominant_frequency(middle, heard_rate, range(100, 3900, 10))
    figures["station_heard_share"], figures["station_windows"] = window_share(speaker, rate,
                                                                               phone_hz)
    figures["station_heard_rms"] = round(rms(speaker), 3) if speaker else 0.0
    return figures
