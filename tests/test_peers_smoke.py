"""Smoke tests of the real-peer harness in tests/peers: if these fail, integration tests
built on Kamailio, baresip, SIPp and tcpdump cannot be trusted either."""

import socket
import ssl
import struct
import subprocess
import time

import pytest

from tests.peers.audio import dominant_frequency, has_tone, read_wav, write_tone_wav
from tests.peers.capture import Capture, dtmf_packets, read_pcap, write_dtmf_pcap
from tests.peers.fixtures import DOOR_PASSWORD, DOOR_USER, FLAT1_USER, FLAT2_USER
from tests.peers.process import require_binary
from tests.peers.sipp import run_sipp, uac_scenario

pytestmark = pytest.mark.peers


def sipsak_register(proxy, user, password, contact_port):
    return subprocess.run(
        [require_binary("sipsak"), "-U", "-s", f"sip:{user}@127.0.0.1:{proxy.udp_port}",
         "-a", password, "-C", f"sip:{user}@127.0.0.1:{contact_port}", "-x", "30"],
        capture_output=True, text=True, timeout=20,
    )


def test_sipsak_digest_register_over_udp_creates_binding(kamailio):
    result = sipsak_register(kamailio, DOOR_USER, DOOR_PASSWORD, 4444)
    assert result.returncode == 0, result.stdout + result.stderr
    assert kamailio.contacts(DOOR_USER) == ["sip:door@127.0.0.1:4444"]
    binding = kamailio.bindings(DOOR_USER)[0]
    assert 0 < int(binding["Expires"]) <= 30
    assert binding["Received"].startswith("sip:127.0.0.1:")


def test_register_with_wrong_password_is_refused(kamailio):
    result = sipsak_register(kamailio, DOOR_USER, "not-the-password", 4445)
    assert result.returncode != 0
    assert kamailio.contacts(DOOR_USER) == []


def test_tls_port_presents_certificate_signed_by_test_ca(kamailio):
    context = ssl.create_default_context(cafile=str(kamailio.ca_path))
    with socket.create_connection(("127.0.0.1", kamailio.tls_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert ("IP Address", "127.0.0.1") in tls.getpeercert()["subjectAltName"]
            request = (
                f"OPTIONS sip:127.0.0.1:{kamailio.tls_port};transport=tls SIP/2.0\r\n"
                "Via: SIP/2.0/TLS 127.0.0.1:5999;branch=z9hG4bK-smoke-tls;rport\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:probe@127.0.0.1>;tag=smoke\r\n"
                "To: <sip:127.0.0.1>\r\nCall-ID: smoke-tls@127.0.0.1\r\n"
                "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            )
            tls.sendall(request.encode())
            assert tls.recv(4096).startswith(b"SIP/2.0 200")


def test_tls_port_is_not_trusted_without_the_test_ca(kamailio):
    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", kamailio.tls_port), timeout=5) as raw:
        with pytest.raises(ssl.SSLCertVerificationError):
            context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_baresip_registers_with_kamailio(kamailio, baresip_factory):
    phone = baresip_factory(FLAT1_USER, registrar=kamailio)
    event = phone.wait_registered(timeout=5)
    assert event["param"].startswith("200")
    contacts = kamailio.contacts(FLAT1_USER)
    assert len(contacts) == 1 and contacts[0].endswith(f"@127.0.0.1:{phone.sip_port}")


def test_baresip_registers_over_tls(kamailio, baresip_factory):
    phone = baresip_factory(FLAT2_USER, registrar=kamailio, transport="tls")
    phone.wait_registered(timeout=5)
    assert kamailio.bindings(FLAT2_USER)[0]["Socket"] == f"tls:127.0.0.1:{kamailio.tls_port}"


def test_call_through_kamailio_carries_each_side_tone(kamailio, baresip_factory):
    callee = baresip_factory(FLAT1_USER, registrar=kamailio, tone_hz=440)
    caller = baresip_factory(FLAT2_USER, registrar=kamailio, tone_hz=1000)
    callee.wait_registered(5)
    caller.wait_registered(5)

    caller.dial(kamailio.uri(FLAT1_USER))
    incoming = callee.wait_event("CALL_ESTABLISHED", 5)
    assert incoming["direction"] == "incoming"
    assert caller.wait_event("CALL_ESTABLISHED", 5)["direction"] == "outgoing"
    time.sleep(1.2)
    caller.hangup()
    callee.wait_event("CALL_CLOSED", 5)
    caller.wait_event("CALL_CLOSED", 5)

    (heard_by_callee,) = callee.recordings("dec")
    (heard_by_caller,) = caller.recordings("dec")
    assert has_tone(heard_by_callee, 1000) and not has_tone(heard_by_callee, 440)
    assert has_tone(heard_by_caller, 440) and not has_tone(heard_by_caller, 1000)
    samples, rate = read_wav(heard_by_callee)
    assert len(samples) > 0.5 * rate
    assert dominant_frequency(samples, rate, [440, 697, 1000, 1209]) == 1000


def test_restart_keeps_ports_and_forgets_bindings(kamailio):
    ports = (kamailio.udp_port, kamailio.tcp_port, kamailio.tls_port)
    assert sipsak_register(kamailio, DOOR_USER, DOOR_PASSWORD, 4446).returncode == 0
    old_pid = kamailio.pid
    kamailio.restart()
    assert kamailio.pid != old_pid
    assert (kamailio.udp_port, kamailio.tcp_port, kamailio.tls_port) == ports
    assert kamailio.ping()
    assert kamailio.contacts(DOOR_USER) == []
    assert sipsak_register(kamailio, DOOR_USER, DOOR_PASSWORD, 4446).returncode == 0
    assert kamailio.contacts(DOOR_USER) == ["sip:door@127.0.0.1:4446"]


def test_sipp_dtmf_replay_reaches_baresip_and_the_wire(tmp_workdir, baresip_factory):
    phone = baresip_factory(FLAT1_USER, tone_hz=440)  # direct IP, no registrar
    pcap = write_dtmf_pcap(tmp_workdir / "digits.pcap", "1#")
    with Capture(tmp_workdir / "call.pcap", expression="udp portrange 10000-20000") as capture:
        result = run_sipp(uac_scenario(pcap=pcap, hold_ms=1000),
                          remote=("127.0.0.1", phone.sip_port), service=FLAT1_USER,
                          workdir=tmp_workdir / "sipp", timeout=15)
    assert result.returncode == 0 and result.successful == 1, result.describe()
    digits = [event["param"] for event in phone.events if event["type"] == "CALL_DTMF_START"]
    assert digits == ["1", "#"]
    events_on_wire = [packet.payload for packet in capture.packets()
                      if len(packet.payload) == 16 and packet.payload[1] & 0x7F == 101]
    assert [payload[12:] for payload in events_on_wire] == [
        packet.payload[12:] for packet in dtmf_packets("1#")
    ]


def test_pcap_writer_round_trips_through_reader(tmp_workdir):
    packets = dtmf_packets("5", src=("127.0.0.1", 7000), dst=("127.0.0.1", 7002))
    path = write_dtmf_pcap(tmp_workdir / "five.pcap", "5", src=("127.0.0.1", 7000),
                           dst=("127.0.0.1", 7002))
    read_back = read_pcap(path)
    assert [(p.src, p.dst, p.payload) for p in read_back] == [
        (p.src, p.dst, p.payload) for p in packets
    ]
    sequence_numbers = [struct.unpack_from("!H", p.payload, 2)[0] for p in read_back]
    assert sequence_numbers == list(range(sequence_numbers[0], sequence_numbers[0] + 7))


def test_tone_writer_and_detector_agree(tmp_workdir):
    path = write_tone_wav(tmp_workdir / "tone.wav", 1000, seconds=0.5, rate=16000, channels=2)
    assert has_tone(path, 1000, min_ratio=0.9)
    assert not has_tone(path, 440, min_ratio=0.01)
    samples, rate = read_wav(path)
    assert rate == 16000 and len(samples) == 8000
