"""Two-way audio between the real firmware and a real baresip (issue 4).

Each case is one ~3 s call: baresip → station or station → baresip (the simulated call button,
pressed through `POST /api/sim/button/call`), through a real Kamailio or direct by IP, with
SRTP off or mandatory (SDES; `srtp_requires_tls = false` so keys may travel over UDP here).
Four cases instead of all eight keep the time down: every pair of values of any two
dimensions occurs once (a pairwise design), so each direction and each route is tried with
SRTP on and off.

In every case:
- the station's microphone is a 1 kHz tone; it must dominate baresip's recording of what it
  received (`dump-*-dec.wav`);
- baresip's microphone is a 440 Hz `ausine`; it must dominate the station's speaker WAV;
- calling in, baresip types the door code (RFC 4733): exactly those digits are detected
  and the door opens;
- a loopback capture of the station's RTP: decoded as G.711, the payload carries the 1 kHz tone
  with SRTP off, and none of it with SRTP mandatory (ciphertext, RFC 3711 §3.1).
"""

import base64
import json
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.helpers import LiveCapture
from tests.integration.test_calls_sipp import (
    DOOR_CODE,
    MIC_HZ,
    RTP_RANGE,
    logged_digits,
    rtp_stream,
    start_station,
    station_media_ports,
)
from tests.peers.audio import read_wav, rms, tone_power_ratio
from tests.peers.fixtures import FLAT1_USER

pytestmark = pytest.mark.peers

PHONE_HZ = 440
TALK_S = 3.0
ADMIN_PASSWORD = "Intercom-Test-Passphrase-7431"
FLAT1_CALLER = f"sip:{FLAT1_USER}@127.0.0.1"


# -- G.711 decoding, written out here so the check does not lean on the code under test -------

def _ulaw_sample(code):
    code = ~code & 0xFF
    magnitude = ((((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)) - 0x84
    return -magnitude if code & 0x80 else magnitude


def _alaw_sample(code):
    code ^= 0x55
    exponent = (code & 0x70) >> 4
    mantissa = (code & 0x0F) << 4
    magnitude = mantissa + 8 if exponent == 0 else (mantissa + 0x108) << (exponent - 1)
    return magnitude if code & 0x80 else -magnitude


G711 = {0: [_ulaw_sample(c) / 32768.0 for c in range(256)],
        8: [_alaw_sample(c) / 32768.0 for c in range(256)]}


def payload_tone_ratio(packets, src_ports, freq=MIC_HZ):
    """Mean over the station's captured RTP packets of the energy share of `freq` in the
    payload read as plain G.711 (each packet on its own: no phase jumps between packets),
    and the number of audio packets used."""
    ratios = []
    for port in src_ports:
        for _, (_, payload_type, _, _, _, body) in rtp_stream(packets, src_port=port):
            table = G711.get(payload_type)
            if table is None:
                continue
            # With SRTP the last 10 bytes are the authentication tag; dropping them either
            # way keeps the two cases comparable (160-byte frames become 150 samples).
            ratios.append(tone_power_ratio([table[byte] for byte in body[:150]], 8000, freq))
    return (sum(ratios) / len(ratios) if ratios else 0.0), len(ratios)


# -- driving the station ----------------------------------------------------------------------

def _web_request(firmware, method, path, body=None, auth=True):
    url = f"http://{firmware.config['web']['listen']}{path}"
    request = urllib.request.Request(url, method=method, data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
    if auth:
        token = base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def press_call_button(firmware):
    """Set the admin password once, then press the simulated call button over the API."""
    status, text = _web_request(firmware, "POST", "/api/setup", {"password": ADMIN_PASSWORD},
                                auth=False)
    assert status in (200, 409), f"/api/setup: {status} {text!r}"
    status, text = _web_request(firmware, "POST", "/api/sim/button/call", {"press_ms": 100})
    assert status == 200, f"/api/sim/button/call: {status} {text!r}"


def tone_windows(path, freq, window_s=0.1, skip_s=0.5):
    """(share of `freq` in each `window_s` window after `skip_s`, overall rms). Windows, not
    the whole file: a frame dropped or repeated by a jitter buffer shifts the phase, which
    would make a single long Goertzel miss a tone that is plainly there."""
    samples, rate = read_wav(path)
    samples = samples[int(skip_s * rate):]
    size = int(window_s * rate)
    ratios = [tone_power_ratio(samples[i:i + size], rate, freq)
              for i in range(0, len(samples) - size + 1, size)]
    return ratios, rms(samples)


def tone_found(path, freq):
    """The tone is there: audible level and at least 80 % of the windows dominated by it."""
    ratios, level = tone_windows(path, freq)
    return level > 0.01 and len(ratios) >= 10 and \
        sum(r >= 0.5 for r in ratios) >= 0.8 * len(ratios)


def _tone_report(path, freq):
    ratios, level = tone_windows(path, freq)
    return (f"{path.name}: {len(ratios) / 10:.1f} s after 0.5 s, rms {level:.3f}, "
            f"{freq} Hz dominates {sum(r >= 0.5 for r in ratios)}/{len(ratios)} 100 ms windows, "
            f"{sum(r < 0.9 for r in ratios)} with a glitch (share < 0.9)")


CASES = [
    pytest.param("incoming", "kamailio", "off", id="baresip-to-station-kamailio-rtp"),
    pytest.param("incoming", "direct", "mandatory", id="baresip-to-station-direct-srtp"),
    pytest.param("outgoing", "kamailio", "mandatory", id="station-to-baresip-kamailio-srtp"),
    pytest.param("outgoing", "direct", "off", id="station-to-baresip-direct-rtp"),
]


@pytest.fixture
def peers(request, tmp_path, baresip_factory):
    """Resolves the Kamailio fixture only for the cases that route through it."""
    route = request.node.callspec.params["route"]
    return request.getfixturevalue("kamailio") if route == "kamailio" else None


@pytest.mark.parametrize("direction,route,srtp", CASES)
def test_two_way_audio_with_baresip(direction, route, srtp, peers, baresip_factory, tmp_path):
    kamailio = peers
    secure = srtp == "mandatory"
    phone = baresip_factory(FLAT1_USER, registrar=kamailio, srtp=secure, tone_hz=PHONE_HZ)
    if kamailio is not None:
        phone.wait_registered(10)
    target = FLAT1_CALLER if kamailio is not None else phone.contact_uri
    station = start_station(
        tmp_path / "station", registrar=kamailio, allow=(FLAT1_CALLER,), srtp=srtp,
        codes=[(FLAT1_CALLER, DOOR_CODE)], buttons=[{"role": "call", "targets": [target]}])
    try:
        rtp_ports = f"{station.rtp_low}-{station.rtp_low + RTP_RANGE - 1}"
        with LiveCapture(tmp_path / "media.pcap", expression=f"udp and (portrange {rtp_ports} "
                         f"or port {station.port})") as capture:
            if direction == "incoming":
                # Through Kamailio: its address, where `door` is looked up in the location
                # table; direct: the station's own address.
                port = kamailio.udp_port if kamailio is not None else station.port
                phone.dial(f"sip:door@127.0.0.1:{port}")
            else:
                press_call_button(station)  # baresip auto-answers: no CALL_INCOMING event
            phone.wait_event("CALL_ESTABLISHED", 10)
            time.sleep(TALK_S)
            if direction == "incoming":
                # baresip's keypad: RFC 4733 events from a real phone, with SRTP too.
                phone.send_dtmf(DOOR_CODE)
                station.wait_log(r"door opened", timeout=5)
            phone.hangup()
            phone.wait_event("CALL_CLOSED", 5)
            station.wait_log(r"call \S+ ended", timeout=5)
        menc = [e for e in phone.events if e.get("type") == "CALL_MENC"]
        phone.stop()
        speaker = sorted(station.speaker_dir.glob("*.wav"))
        recordings = phone.recordings("dec")
        assert len(speaker) == 1, f"station speaker files: {speaker}"
        if direction == "incoming":
            print(f"[{direction}, {route}, srtp {srtp}] DTMF from baresip (RFC 4733): sent "
                  f"{DOOR_CODE}, station detected {logged_digits(station)}")
            assert logged_digits(station) == DOOR_CODE, station.log[-3000:]
        assert recordings, f"baresip wrote no recording: {list(phone.recordings_dir.iterdir())}"
        print(f"[{direction}, {route}, srtp {srtp}] station heard: "
              f"{_tone_report(speaker[0], PHONE_HZ)}; baresip heard: "
              f"{_tone_report(recordings[-1], MIC_HZ)}")
        assert tone_found(recordings[-1], MIC_HZ), \
            f"the station's 1 kHz tone is missing from baresip's recording " \
            f"({_tone_report(recordings[-1], MIC_HZ)})"
        assert tone_found(speaker[0], PHONE_HZ), \
            f"baresip's {PHONE_HZ} Hz tone is missing from the station's speaker " \
            f"({_tone_report(speaker[0], PHONE_HZ)})"

        packets = capture.packets()
        ports = station_media_ports(packets, station)
        assert len(ports) == 1, f"station SDP media ports in the capture: {ports}"
        ratio, count = payload_tone_ratio(packets, ports)
        print(f"[{direction}, {route}, srtp {srtp}] {count} captured station RTP packets; "
              f"1 kHz share of the payload read as G.711: {ratio:.3f}")
        assert count >= 100, f"only {count} station RTP packets captured"
        if secure:
            assert menc, "baresip reported no media encryption event"
            assert ratio < 0.05, "the tone is recoverable from SRTP payloads"
        else:
            assert ratio > 0.5, "the tone is not in the plain RTP payloads"
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-5000:]}")
