"""Calls from SIPp to the real firmware process (issue 4): DTMF, CANCEL, BYE, hold, 488.

The station runs in direct-IP mode. SIPp's From is `sip:sipp@127.0.0.1`, which is in
`[answer] allow` with a numeric host, so its calls are trusted by source address and
auto-answered; the same caller owns the door code that the DTMF test types. The scenarios live
in tests/integration/scenarios/*.xml (each documents its flow). SIPp exits 0 only when every
expected message arrived (and every `ereg check_it` matched).

Also used by the other media tests: `start_station` (its `rtp_low`..`rtp_low + RTP_RANGE - 1`
is the station's RTP port range), `station_media_ports`, `rtp_stream`, `parse_rtp`,
`logged_digits`, `SIPP_CALLER`, `DOOR_CODE`, `MIC_HZ`.
"""

import json
import math
import os
import pathlib
import re
import socket
import struct
import time

import pytest

from tests.conftest import VECTORS
from tests.integration.helpers import Firmware, LiveCapture, station_config
from tests.peers.audio import write_tone_wav
from tests.peers.capture import Packet, write_dtmf_pcap, write_pcap
from tests.peers.process import free_port
from tests.peers.sipp import start_sipp

pytestmark = pytest.mark.peers

SCENARIOS = pathlib.Path(__file__).resolve().parent / "scenarios"
SIPP_CALLER = "sip:sipp@127.0.0.1"
DOOR_CODE = "1590"
MIC_HZ = 1000
RTP_RANGE = 20


def start_station(workdir, registrar=None, answer_mode="auto", allow=(SIPP_CALLER,),
                  srtp="off", codes=(), transport="udp", **sections):
    """A started Firmware with a 1 kHz microphone and a speaker directory, ready for calls.
    `sections` are extra config tables laid over the defaults (e.g. buttons=[...])."""
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    mic = write_tone_wav(workdir / "mic.wav", MIC_HZ, seconds=1.0)
    config = station_config(registrar, transport)
    low = free_rtp_range()
    config["media"] = {"srtp": srtp, "srtp_requires_tls": False,
                       "rtp_ports": f"{low}-{low + RTP_RANGE - 1}"}
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


def free_rtp_range(size=RTP_RANGE, attempts=50):
    """The low end of `size` consecutive UDP ports that are all free right now, so captures
    filtered on the station's range see no other test's media."""
    for _ in range(attempts):
        low = free_port(("udp",), 20000, 29000) // 2 * 2
        sockets = []
        try:
            for port in range(low, low + size):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return low
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {size} consecutive free UDP ports")


def station_media_ports(packets, firmware):
    """The RTP ports in the SDP the station sent (m=audio lines of SIP messages from its SIP
    port), from a capture that includes its SIP traffic."""
    ports = set()
    for packet in packets:
        if packet.src[1] == firmware.port:
            ports.update(int(port) for port in re.findall(rb"\r\nm=audio (\d+) ",
                                                           packet.payload))
    return ports


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

DTMF_FREQUENCIES = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209),
    "5": (770, 1336), "6": (770, 1477), "7": (852, 1209), "8": (852, 1336),
    "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477),
}


def _ulaw(sample):
    """ITU-T G.711 µ-law code of a 16-bit sample (bias 0x84, 8 segments)."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, 32635) + 0x84
    exponent = (magnitude >> 7).bit_length() - 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | exponent << 4 | mantissa) & 0xFF


def write_inband_dtmf_pcap(path, digits, tone_ms=100, gap_ms=100, lead_ms=200):
    """One PCMU RTP stream (20 ms packets, consecutive sequence numbers and timestamps)
    carrying `digits` as dual tones of -9 dBm0 per frequency, silence around them."""
    samples = [0] * (lead_ms * 8)
    for digit in digits:
        low, high = DTMF_FREQUENCIES[digit]
        samples += [int(8000 * (math.sin(2 * math.pi * low * n / 8000)
                                + math.sin(2 * math.pi * high * n / 8000)))
                    for n in range(tone_ms * 8)]
        samples += [0] * (gap_ms * 8)
    packets = []
    for index in range(len(samples) // 160):
        header = struct.pack("!BBHII", 0x80, 0, (500 + index) & 0xFFFF, 80000 + index * 160,
                             0x1AB5EED)
        body = bytes(_ulaw(s) for s in samples[index * 160:(index + 1) * 160])
        packets.append(Packet(1.0 + index * 0.02, ("127.0.0.1", 6000), ("127.0.0.1", 6002),
                              header + body))
    write_pcap(path, packets)
    return path


DTMF_CASES = [
    pytest.param("rfc4733", "u1", id="rfc4733-udp"),
    pytest.param("rfc4733", "t1", id="rfc4733-tcp"),
    pytest.param("info", "u1", id="sip-info-udp"),
    pytest.param("inband", "u1", id="inband-udp"),
]


@pytest.mark.parametrize("method,transport", DTMF_CASES)
def test_dtmf_yields_exactly_the_digits_and_opens_the_door(stations, tmp_path, method,
                                                           transport):
    """The door code typed by a trusted caller opens the door once; RFC 4733 and in-band digits
    are logged by the media thread one by one, so the whole sequence is compared. SIP INFO
    digits go to the controller directly (no log line), so there only the door opening shows
    that all four arrived in order."""
    station = stations(codes=[(SIPP_CALLER, DOOR_CODE)])
    workdir = tmp_path / "sipp-dtmf"
    workdir.mkdir()
    extra = []
    if method == "rfc4733":
        digits = DOOR_CODE + "0"  # the door opens at the 4th digit; the 5th still counts
        write_dtmf_pcap(workdir / "dtmf.pcap", digits)
        scenario = "dtmf_call.xml"
    elif method == "inband":
        digits = DOOR_CODE + "0"
        write_inband_dtmf_pcap(workdir / "dtmf.pcap", digits)
        scenario = "inband_dtmf_call.xml"
    else:
        digits = DOOR_CODE
        (workdir / "keys.csv").write_text("SEQUENTIAL\n" + ";".join(digits) + ";\n")
        extra = ["-inf", workdir / "keys.csv"]
        scenario = "info_dtmf_call.xml"
    sipp = start_sipp(SCENARIOS / scenario, ("127.0.0.1", station.port), workdir=workdir,
                      service="door", transport=transport, timeout=20,
                      extra_args=["-d", 2000, *extra])
    result = sipp.wait()
    assert result.returncode == 0, result.describe()
    station.wait_log(r"call \S+ ended", timeout=5)
    opened = events(station, "door_open")
    detected = "(not logged)" if method == "info" else logged_digits(station)
    print(f"DTMF {method} over SIP/{'UDP' if transport == 'u1' else 'TCP'}: sent {digits}, "
          f"station detected {detected}, door_open events: {len(opened)}")
    if method != "info":
        assert logged_digits(station) == digits, station.log[-4000:]
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
