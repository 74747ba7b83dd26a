"""PBX dialects against the running station (issue 19): one SIPp scenario per quirk, written
from what FRITZ!Box, Asterisk/FreePBX, 3CX and Kamailio-based PBXs send (docs/INSTALL.md has
the settings per PBX). The scenarios live in tests/integration/scenarios/pbx_*.xml and
registrar_*.xml, each documenting its flow; SIPp exits 0 only when every expected message
arrived and every `ereg check_it` matched.

- PBX → station (SIPp UAC, the station in direct-IP mode as in test_calls_sipp.py): delayed
  offer + re-INVITE without SDP + UPDATE; a delayed offer whose ACK brings no answer (BYE); a
  delayed offer requiring 100rel (our offer in the reliable 180, the answer in the PRACK);
  Require with an unsupported extension (420); a caller requiring 100rel (reliable 180,
  retransmitted until PRACKed).
- station → PBX (the call button rings a SIPp UAS through Kamailio, as test_early_media.py):
  reliable 18x that need PRACK, early media in a reliable 183; a challenged PRACK; digest with
  qop=auth-int and SHA-256 on the INVITE and an MD5 401 on the BYE, and the other way round
  (MD5 by 407 on the INVITE, SHA-256 auth-int on the BYE); `[calls] delayed_offer`: the PBX's
  offer in its 200 (answered in the ACK) or in a reliable 183 (answered in the PRACK, early
  media), and to a real phone (baresip) with two-way audio.
- station → registrar (SIPp as the registrar): 423 Min-Expires, MD5 and SHA-256 challenges
  with qop="auth,auth-int", a stale nonce, a 200 listing another phone's binding besides ours,
  Path and Service-Route; 503 with Retry-After; 403.
"""

import math
import re
import socket
import struct
import time

import pytest

from firmware.codecs.g711 import alaw_encode, ulaw_encode
from tests.integration.helpers import Firmware, LiveCapture, station_config
from tests.integration.test_calls_sipp import (  # noqa: F401 (stations: a fixture)
    SCENARIOS,
    sipp_call,
    stations,
)
from tests.integration.test_door_station import (  # noqa: F401 (fixtures)
    MIC_HZ,
    PHONE_HZ,
    DoorStation,
    _incoming_established,
    door_config,
    door_station,
    recording_phone,
)
from tests.peers.audio import has_tone, read_wav, rms, tone_power_ratio
from tests.peers.fixtures import FLAT1_USER
from tests.peers.process import free_port
from tests.peers.sipp import start_sipp

pytestmark = pytest.mark.peers


# -- the PBX calls the door ------------------------------------------------------------------
def test_delayed_offer_reinvite_without_sdp_and_update(stations, tmp_path):  # noqa: F811
    station = stations()
    result = sipp_call("pbx_delayed_offer.xml", station, tmp_path / "sipp").wait()
    assert result.returncode == 0 and not result.timed_out, result.describe()
    station.wait_log(r"call \S+ ended", timeout=5)
    assert not re.search(r"unusable answer|Traceback", station.log), station.log[-3000:]


def test_an_unsupported_required_extension_gets_420(stations, tmp_path):  # noqa: F811
    station = stations()
    result = sipp_call("pbx_require_unsupported.xml", station, tmp_path / "sipp").wait()
    assert result.returncode == 0 and not result.timed_out, result.describe()
    assert "SIP/2.0 420" in result.messages and "call from" not in station.log


def test_a_caller_requiring_100rel_gets_a_reliable_180(stations, tmp_path):  # noqa: F811
    station = stations(answer_mode="ring")
    result = sipp_call("pbx_100rel_caller.xml", station, tmp_path / "sipp").wait()
    assert result.returncode == 0 and not result.timed_out, result.describe()
    ringing = re.findall(r"SIP/2.0 180 .*?RSeq: (\d+)", result.messages, re.S)
    assert len(ringing) >= 2 and len(set(ringing)) == 1, ringing  # resent, same RSeq
    assert "SIP/2.0 487" in result.messages


def test_a_delayed_offer_requiring_100rel_gets_our_offer_in_the_reliable_180(
        stations, tmp_path):  # noqa: F811
    station = stations(answer_mode="ring")
    result = sipp_call("pbx_delayed_offer_100rel_caller.xml", station, tmp_path / "sipp").wait()
    assert result.returncode == 0 and not result.timed_out, result.describe()
    assert "SIP/2.0 487" in result.messages
    assert not re.search(r"unusable answer|Traceback", station.log), station.log[-3000:]


# -- the door calls the PBX --------------------------------------------------------------------
def _call_the_pbx(tmp_path, kamailio, scenario, media=None, during=None, calls=None):
    """The call button rings a SIPp UAS (`scenario`, MEDIA_PORT replaced by `media`'s port)
    through Kamailio; `during(station)` runs once the button is pressed; the call is hung up
    through the API once established. `calls`: [calls] keys. Returns (SIPp result, station,
    established event, what `during` returned)."""
    sipp_port = free_port(("udp", "tcp"))
    target = f"sip:pbx@127.0.0.1:{sipp_port}"  # no Kamailio user: relayed to the UAS
    config = door_config(kamailio, buttons=[{"role": "call", "targets": [target]}])
    config.setdefault("calls", {}).update(calls or {})
    station = DoorStation(tmp_path / "station", config)
    text = (SCENARIOS / scenario).read_text()
    if media is not None:
        text = text.replace("MEDIA_PORT", str(media.getsockname()[1]))
    uas = start_sipp(text, None, local_port=sipp_port, workdir=tmp_path / "sipp", timeout=20)
    try:
        station.start(kamailio)
        station.require_api()
        mark = station.event_count()
        station.press("call")
        extra = during(station) if during is not None else None
        established = station.wait_event("call", 10.0, since=mark,
                                         match=lambda e: e.get("outcome") == "established")
        station.request("POST", "/api/hangup", {})
        result = uas.wait(timeout=10)
        station.wait_event("call", 5.0, since=mark,
                           match=lambda e: e.get("outcome") not in ("established", "call"))
    finally:
        uas.stop()
        station.fw.kill()
    return result, station, established[0], extra


def _early_media(media, seconds=3.0, payload_type=0, encode=ulaw_encode):
    """Until the station's first RTP packet reaches the 183's address: then answer it with
    0.8 s of a 440 Hz tone (the PBX's ringback) from there (G.711: `payload_type` 0 with
    `encode` ulaw_encode, or 8 with alaw_encode). Returns (time.time() of the first packet,
    packets received) or (None, 0)."""
    first, count = None, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data, source = media.recvfrom(2048)
        except TimeoutError:
            continue
        if len(data) < 12 or data[0] >> 6 != 2:
            continue
        count += 1
        if first is None:
            first = time.time()
            for n in range(40):
                pcm = [int(12000 * math.sin(2 * math.pi * 440 * (n * 160 + i) / 8000))
                       for i in range(160)]
                media.sendto(bytes([0x80, payload_type]) + n.to_bytes(2, "big") +
                             (n * 160).to_bytes(4, "big") + (0xEA21).to_bytes(4, "big") +
                             encode(struct.pack("<160h", *pcm)), source)
                time.sleep(0.02)
    return first, count


def test_reliable_18x_are_pracked_and_the_183s_early_media_reaches_the_speaker(tmp_path,
                                                                                kamailio):
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.settimeout(0.05)
    try:
        result, station, established, (first_rtp, packets) = _call_the_pbx(
            tmp_path, kamailio, "pbx_100rel_callee.xml", media,
            during=lambda station: _early_media(media))
    finally:
        media.close()
    assert result.returncode == 0 and not result.timed_out, result.describe() + station.describe()
    print(f"early media: first RTP {established['time'] - first_rtp:.2f} s before the 200, "
          f"{packets} packets")
    assert first_rtp is not None, station.describe()
    assert first_rtp < established["time"] - 0.5  # media from the 183 on, not from the 200
    _assert_the_pbx_tone_on_the_speaker(station)


def _assert_the_pbx_tone_on_the_speaker(station):
    wavs = sorted(station.speaker_dir.glob("*.wav"))
    assert wavs, "no speaker recording"
    samples, rate = read_wav(wavs[-1])
    window = rate // 10
    toned = [start for start in range(0, len(samples) - window, window)
             if rms(samples[start:start + window]) > 0.01 and
             tone_power_ratio(samples[start:start + window], rate, 440) > 0.5]
    assert len(toned) >= 4, f"{len(toned)} windows of the PBX's 440 Hz on the speaker"


def test_digest_auth_int_sha256_on_the_invite_and_a_401_on_the_bye(tmp_path, kamailio):
    result, station, established, _ = _call_the_pbx(tmp_path, kamailio, "pbx_auth_callee.xml")
    assert result.returncode == 0 and not result.timed_out, result.describe() + station.describe()
    assert result.messages.count("BYE sip:") >= 2  # challenged, then answered


def test_digest_md5_by_407_on_the_invite_and_sha256_auth_int_on_the_bye(tmp_path, kamailio):
    result, station, established, _ = _call_the_pbx(tmp_path, kamailio,
                                                    "pbx_auth_proxy_callee.xml")
    assert result.returncode == 0 and not result.timed_out, result.describe() + station.describe()
    assert result.messages.count("BYE sip:") >= 2  # challenged, then answered


def test_delayed_offer_to_a_real_phone_gives_a_call_with_two_way_audio(
        kamailio, recording_phone, door_station, tmp_path):  # noqa: F811
    """baresip as the flat's phone, reached through Kamailio: it answers the offerless INVITE
    with its offer in the 200 and takes the station's answer from the ACK (on the wire)."""
    flat1 = recording_phone(FLAT1_USER)
    flat1.wait_registered(5)
    station = door_station(calls={"delayed_offer": True})
    station.require_api()
    with LiveCapture(tmp_path / "sip.pcap", udp_ports=[kamailio.udp_port]) as capture:
        since = len(flat1.events)
        station.press("call")
        try:
            flat1.wait_event(_incoming_established, 5, since=since)
        except TimeoutError as error:
            raise AssertionError(f"{error}{station.describe()}") from None
        call_ids = [c["id"] for c in station.status()["calls"]]
        time.sleep(3.0)  # three seconds of audio both ways
        flat1.hangup()
        flat1.wait_event("CALL_CLOSED", 5, since=since)
        station.wait_idle(5.0)
        time.sleep(0.2)  # let tcpdump write the last packets
    packets = capture.packets()
    sent = [p.payload for p in packets if p.dst[1] == kamailio.udp_port and
            p.src[1] != kamailio.udp_port]
    invites = [m for m in sent if m.startswith(b"INVITE ")]
    acks = [p for p in packets if p.payload.startswith(b"ACK ") and b"m=audio" in p.payload
            and p.dst[1] == kamailio.udp_port]
    assert invites and not any(b"m=audio" in m for m in invites), invites[:1]
    assert acks, "no ACK with the station's answer on the wire"
    offers = [p for p in packets if p.src[1] == kamailio.udp_port and
              p.payload.startswith(b"SIP/2.0 200") and b" INVITE\r\n" in p.payload and
              b"m=audio" in p.payload and p.ts <= acks[0].ts]
    if offers:
        print(f"delayed offer to baresip: 200 with the offer -> ACK with our answer on the "
              f"wire {(acks[0].ts - offers[-1].ts) * 1000:.2f} ms")
    received = flat1.recordings("dec")
    assert received and has_tone(received[0], MIC_HZ, skip_seconds=0.5), (
        f"no {MIC_HZ} Hz tone from the door at the phone{station.describe()}")
    speaker = station.speaker_dir / f"{call_ids[0]}.wav"
    assert speaker.exists() and has_tone(speaker, PHONE_HZ, skip_seconds=0.5), (
        f"no {PHONE_HZ} Hz tone from the phone on the door's speaker{station.describe()}")


def test_a_challenged_prack_is_sent_again_with_credentials(tmp_path, kamailio):
    result, station, established, _ = _call_the_pbx(tmp_path, kamailio,
                                                    "pbx_prack_challenged.xml")
    assert result.returncode == 0 and not result.timed_out, result.describe() + station.describe()
    assert result.messages.count("PRACK sip:") == 2  # challenged, then answered


def _media_socket():
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind(("127.0.0.1", 0))
    media.settimeout(0.05)
    return media


def test_delayed_offer_the_pbxs_offer_in_the_200_is_answered_in_the_ack(tmp_path, kamailio):
    media = _media_socket()
    try:
        result, station, established, (first_rtp, packets) = _call_the_pbx(
            tmp_path, kamailio, "pbx_delayed_offer_in_200.xml", media,
            during=lambda station: _early_media(media, payload_type=8, encode=alaw_encode),
            calls={"delayed_offer": True})
    finally:
        media.close()
    assert result.returncode == 0 and not result.timed_out, result.describe() + station.describe()
    print(f"delayed offer (200): {packets} RTP packets from the station after the ACK")
    assert first_rtp is not None and packets >= 10, station.describe()
    _assert_the_pbx_tone_on_the_speaker(station)  # two-way: PCMA from the PBX heard


def test_delayed_offer_in_a_reliable_183_is_answered_in_its_prack_with_early_media(
        tmp_path, kamailio):
    media = _media_socket()
    try:
        result, station, established, (first_rtp, packets) = _call_the_pbx(
            tmp_path, kamailio, "pbx_delayed_offer_in_183.xml", media,
            during=lambda station: _early_media(media), calls={"delayed_offer": True})
    finally:
        media.close()
    assert result.returncode == 0 and not result.timed_out, result.describe() + station.describe()
    assert first_rtp is not None, station.describe()
    print(f"delayed offer (183): first RTP {established['time'] - first_rtp:.2f} s before "
          f"the 200, {packets} packets")
    assert first_rtp < established["time"] - 0.5  # early media from the PRACK's answer on
    _assert_the_pbx_tone_on_the_speaker(station)


def test_a_delayed_offer_call_whose_ack_brings_no_answer_is_ended_with_bye(
        stations, tmp_path):  # noqa: F811
    station = stations()
    result = sipp_call("pbx_delayed_offer_no_answer.xml", station, tmp_path / "sipp").wait()
    assert result.returncode == 0 and not result.timed_out, result.describe()
    station.wait_log(r"call \S+ ended", timeout=5)
    assert "unusable answer in the ACK" in station.log, station.log[-3000:]


# -- the station registers with the PBX --------------------------------------------------------
def _register_with(tmp_path, scenario):
    """A station registering with a SIPp registrar running `scenario` (keep-alives off: an
    OPTIONS would be a new call to SIPp). Returns (SIPp result, Firmware)."""
    port = free_port(("udp",))
    sipp = start_sipp(SCENARIOS / scenario, None, local_port=port, workdir=tmp_path / "sipp",
                      timeout=20)
    config = station_config(None, "udp", expires=600)
    config["sip"].update(registrar=f"127.0.0.1:{port}", domain="pbx.example",
                         username="door", password="door-secret", keepalive_s=0)
    firmware = Firmware(tmp_path / "fw", config).start()
    return sipp, firmware


def _sipp_times(messages, start):
    """Seconds of day at which SIPp's trace logged each message whose first line begins with
    `start` (SIPp stamps each message `----- 2026-12-05 14:32:19.373412`): what was on the
    wire, which the firmware's log lines (written when the station gets to them) only
    approximate."""
    times, stamp = [], None
    for line in messages.splitlines():
        if line.startswith("-----"):
            hours, minutes, seconds = line.split()[-1].split(":")
            stamp = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
        elif line.startswith(start) and stamp is not None:
            times.append(stamp)
    return times


def test_registrar_423_sha256_and_md5_challenges_a_stale_nonce_and_several_bindings(tmp_path):
    sipp, firmware = _register_with(tmp_path, "registrar_dialects.xml")
    try:
        firmware.wait_log(r"registration registered", timeout=10)
        result = sipp.wait(timeout=10)
        assert firmware.count_log(r"registration failed") == 0, firmware.log[-3000:]
    finally:
        sipp.stop()
        firmware.kill()
    assert result.returncode == 0 and not result.timed_out, result.describe()


def test_registrar_503_retry_after_is_waited_for_and_403_fails_the_registration(tmp_path):
    sipp, firmware = _register_with(tmp_path, "registrar_503_403.xml")
    try:
        firmware.wait_log(r".*registration failed: 503 Service Unavailable.*", timeout=10)
        firmware.wait_log(r".*registration failed: 403 Forbidden.*", timeout=15)
        result = sipp.wait(timeout=10)
    finally:
        sipp.stop()
        firmware.kill()
    assert result.returncode == 0 and not result.timed_out, result.describe()
    unavailable = _sipp_times(result.messages, "SIP/2.0 503")[0]
    registers = [t for t in _sipp_times(result.messages, "REGISTER ") if t > unavailable]
    assert registers, result.messages[-2000:]
    waited = registers[0] - unavailable
    print(f"503 with Retry-After: 4 -> next REGISTER after {waited:.3f} s (SIPp's trace)")
    assert waited >= 3.99, waited


def test_a_short_target_calls_sip_star_star_610_at_the_domain_via_the_service_route(tmp_path):
    port = free_port(("udp",))
    sipp = start_sipp(SCENARIOS / "registrar_short_target.xml", None, local_port=port,
                      workdir=tmp_path / "sipp", timeout=20, calls=3)  # REGISTER, OPTIONS, INVITE
    config = door_config(None, buttons=[{"role": "call", "targets": ["**610"]}])
    config["sip"].update(registrar=f"127.0.0.1:{port}", domain="pbx.example",
                         username="door", password="door-secret")
    station = DoorStation(tmp_path / "station", config)
    try:
        station.fw.start()
        station.fw.wait_log(r"registration registered", timeout=10)
        station.require_api()
        mark = station.event_count()
        station.press("call")
        ended = station.wait_event("call", 10.0, since=mark,
                                   match=lambda e: e.get("outcome") not in ("placed", "call"))
        result = sipp.wait(timeout=10)
    finally:
        sipp.stop()
        station.fw.kill()
    assert result.returncode == 0 and not result.timed_out, result.describe() + station.describe()
    assert ended[0].get("status") == 486, ended
