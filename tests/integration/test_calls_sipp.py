"""Calls from SIPp to the real firmware process (issue 4): DTMF, CANCEL, BYE, hold, 488.

The station runs in direct-IP mode. SIPp's From is `sip:sipp@127.0.0.1`, which is in
`[answer] allow` with a numeric host, so its calls are trusted by source address and
auto-answered; the same caller owns the door code that the DTMF test types. The scenarios live
in tests/integration/scenarios/*.xml (each documents its flow). SIPp exits 0 only when every
expected message arrived (and every `ereg check_it` matched).

Also used by the other media tests: `start_station`, `rtp_stream`, `parse_rtp`, `SIPP_CALLER`.
"""

import json
import os
import pathlib
import re
import struct
import time

import pytest

from tests.conftest import VECTORS
from tests.integration.helpers import Firmware, LiveCapture, station_config
from tests.peers.audio import write_tone_wav
from tests.peers.capture import write_dtmf_pcap
from tests.peers.process import free_port
from tests.peers.sipp import start_sipp

pytestmark = pytest.mark.peers

SCENARIOS = pathlib.Path(__file__).resolve().parent / "scenarios"
SIPP_CALLER = "sip:sipp@127.0.0.1"
DOOR_CODE = "1590"
MIC_HZ = 1000


def start_station(workdir, registrar=None, answer_mode="auto", allow=(SIPP_CALLER,),
                  srtp="off", codes=(), transport="udp", **sections):
    """A started Firmware with a 1 kHz microphone and a speaker directory, ready for calls.
    `sections` are extra config tables laid over the defaults (e.g. buttons=[...])."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mic = write_tone_wav(workdir / "mic.wav", MIC_HZ, seconds=1.0)
    config = station_config(registrar, transport)
    low = free_port(("udp",), 20000, 29000) // 2 * 2
    config["media"] = {"srtp": srtp, "srtp_requires_tls": False, "rtp_ports": f"{low}-{low + 19}"}
    config["answer"] = {"mode": answer_mode, "allow": list(allow)}
    config["door"] = {"pulse_ms": 200, "codes": [dict(caller=c, code=k) for c, k in codes]}
    config.update(sections)
    firmware = Firmware(workdir, config, extra_args=(
        "--mic", mic, "--speaker-dir", workdir / "speaker")).start()
    firmware.speaker_dir = workdir / "speaker"
    firmware.rtp_low = low
    try:
        firmware.wait_log(r"listening on", timeout=10)
        firmware.wait_log(r"web page on", timeout=10)  # the simulated buttons are pressed there
        if registrar is not None:
            firmware.wait_log(r"registration registered", timeout=10)
    except AssertionError:
        firmware.kill()
        raise
    return firmware


@pytest.fixture
def stations(tmp_path):
    """`stations(**options)` starts a station (see start_station); all are killed afterwards
    and their log tails printed (pytest shows them for failing tests)."""
    started = []

    def make(**options):
        firmware = start_station(tmp_path / f"station-{len(started)}", **options)
        started.append(firmware)
        return firmware

    yield make
    for firmware in started:
        firmware.kill()
        print(f"--- firmware log {firmware.workdir} (tail) ---\n{firmware.log[-5000:]}")


def events(firmware, kind=None):
    path = os.path.join(firmware.state_dir, "events.jsonl")
    try:
        with open(path, encoding="utf-8") as log:
            entries = [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        return []
    return [e for e in entries if kind is None or e.get("type") == kind]


def parse_rtp(payload):
    """(marker, payload type, sequence, timestamp, ssrc, body) of an RTP datagram, or None
    for RTCP and anything that is not RTP version 2."""
    if len(payload) < 12 or payload[0] >> 6 != 2 or 192 <= payload[1] <= 223:
        return None
    first, second, sequence, timestamp, ssrc = struct.unpack_from("!BBHII", payload)
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10 and len(payload) >= offset + 4:  # header extension (RFC 3550 §5.3.1)
        offset += 4 + 4 * struct.unpack_from("!H", payload, offset + 2)[0]
    return second >> 7, second & 0x7F, sequence, timestamp, ssrc, payload[offset:]


def rtp_stream(packets, src_port=None, dst_port=None):
    """[(ts, rtp tuple)] of the captured RTP packets from `src_port` and/or to `dst_port`."""
    out = []
    for packet in packets:
        if src_port is not None and packet.src[1] != src_port:
            continue
        if dst_port is not None and packet.dst[1] != dst_port:
            continue
        rtp = parse_rtp(packet.payload)
        if rtp is not None:
            out.append((packet.ts, rtp))
    return out


def sipp_call(scenario, firmware, workdir, pause_ms=None, timeout=20):
    args = ["-d", pause_ms] if pause_ms is not None else []
    sipp = start_sipp(SCENARIOS / scenario, ("127.0.0.1", firmware.port), workdir=workdir,
                      service="door", extra_args=args, timeout=timeout)
    return sipp


def _sip_status(packet):
    return packet.payload.split(b"\r\n", 1)[0].decode(errors="replace")


def _cseq(packet):
    found = re.search(rb"\r\nCSeq:\s*(\d+)\s+(\w+)", packet.payload, re.IGNORECASE)
    return (int(found.group(1)), found.group(2).decode()) if found else None


def logged_digits(firmware, since=0):
    return "".join(re.findall(r"DTMF digit (\S) received", firmware.log[since:]))


# -- DTMF ------------------------------------------------------------------------------------

def test_dtmf_stream_yields_exactly_the_digits_and_opens_the_door(stations, tmp_path):
    digits = DOOR_CODE + "0"  # the door opens at the 4th digit; the 5th is still reported
    station = stations(codes=[(SIPP_CALLER, DOOR_CODE)])
    workdir = tmp_path / "sipp-dtmf"
    workdir.mkdir()
    write_dtmf_pcap(workdir / "dtmf.pcap", digits)
    result = sipp_call("dtmf_call.xml", station, workdir, pause_ms=2500).wait()
    assert result.returncode == 0, result.describe()
    station.wait_log(r"call \S+ ended", timeout=5)
    print(f"DTMF over RTP (RFC 4733, SIPp pcap replay, UDP): sent {digits}, "
          f"station detected {logged_digits(station)}")
    assert logged_digits(station) == digits, station.log[-4000:]
    opened = events(station, "door_open")
    assert len(opened) == 1, (events(station), station.log[-3000:])
    assert "sipp@127.0.0.1" in json.dumps(opened[0]), opened


@pytest.mark.parametrize("name,digit", [("dtmf_2833_5.pcap", "5"), ("dtmf_2833_pound.pcap", "#")])
def test_shipped_sipp_dtmf_pcap_yields_one_digit(stations, tmp_path, name, digit):
    """The pcaps shipped with SIPp send the end packet three times under one sequence number
    (RFC 4733 §2.5.1.4): exactly one digit must come out."""
    station = stations()
    workdir = tmp_path / "sipp-vector"
    workdir.mkdir()
    (workdir / "dtmf.pcap").write_bytes((VECTORS / "dtmf" / name).read_bytes())
    result = sipp_call("dtmf_call.xml", station, workdir, pause_ms=1200).wait()
    assert result.returncode == 0, result.describe()
    station.wait_log(r"call \S+ ended", timeout=5)
    assert logged_digits(station) == digit, station.log[-4000:]


# -- call control ----------------------------------------------------------------------------

def test_cancel_before_answer(stations, tmp_path):
    station = stations(answer_mode="ring")
    result = sipp_call("cancel_before_answer.xml", station, tmp_path / "sipp-cancel").wait()
    assert result.returncode == 0, result.describe()
    station.wait_log(r"call \S+ ended", timeout=5)
    assert "SIP/2.0 487" in result.messages
    assert "SIP/2.0 200 OK" not in result.messages.split("CANCEL sip:", 1)[0], \
        "the station answered before the CANCEL"
    assert not list(station.speaker_dir.glob("*.wav")), "media started for a cancelled call"


def test_bye_from_far_end_stops_media(stations, tmp_path):
    station = stations()
    with LiveCapture(tmp_path / "bye.pcap", expression="udp") as capture:
        sipp = sipp_call("bye_from_far_end.xml", station, tmp_path / "sipp-bye", pause_ms=1500)
        result = sipp.wait()
        assert result.returncode == 0, result.describe()
        station.wait_log(r"call \S+ ended", timeout=5)
        time.sleep(0.3)  # anything the station still sends after the BYE would show here
    packets = capture.packets()
    bye = [p for p in packets if p.dst[1] == station.port and p.payload.startswith(b"BYE ")]
    assert bye, "no BYE captured"
    sent = rtp_stream(packets, dst_port=sipp.media_port)
    assert len(sent) >= 50, f"the station sent only {len(sent)} RTP packets in 1.5 s"
    after = [ts for ts, _ in sent if ts > bye[0].ts + 0.05]
    assert not after, f"{len(after)} RTP packets sent more than 50 ms after the BYE"
    wavs = list(station.speaker_dir.glob("*.wav"))
    assert len(wavs) == 1, wavs


def test_hold_and_resume_by_reinvite(stations, tmp_path):
    station = stations()
    with LiveCapture(tmp_path / "hold.pcap", expression="udp") as capture:
        sipp = sipp_call("hold_resume.xml", station, tmp_path / "sipp-hold")
        result = sipp.wait()
        assert result.returncode == 0, result.describe()
        station.wait_log(r"call \S+ ended", timeout=5)
    packets = capture.packets()
    oks = {_cseq(p)[0]: p.ts for p in packets
           if p.src[1] == station.port and _sip_status(p).startswith("SIP/2.0 200")
           and _cseq(p) and _cseq(p)[1] == "INVITE"}
    assert set(oks) >= {1, 2, 3}, f"200 OK to INVITE CSeq {sorted(oks)}"
    sent = [ts for ts, _ in rtp_stream(packets, dst_port=sipp.media_port)]
    before = [ts for ts in sent if oks[1] < ts < oks[2]]
    held = [ts for ts in sent if oks[2] + 0.06 < ts < oks[3]]
    resumed = [ts for ts in sent if ts > oks[3] + 0.06]
    print(f"hold/resume: station RTP packets {len(before)} before hold, {len(held)} while "
          f"held ({oks[3] - oks[2]:.2f} s), {len(resumed)} after resume")
    assert len(before) >= 50
    assert not held, f"the station kept sending {len(held)} RTP packets while on hold"
    assert len(resumed) >= 50, "the station did not resume sending after a=sendrecv"


def test_offer_with_only_an_unknown_codec_gets_488(stations, tmp_path):
    station = stations()
    result = sipp_call("unknown_codec.xml", station, tmp_path / "sipp-488").wait()
    assert result.returncode == 0, result.describe()
    assert "SIP/2.0 488" in result.messages
    station.wait_log(r"refused: no acceptable media", timeout=5)
    assert station.alive
