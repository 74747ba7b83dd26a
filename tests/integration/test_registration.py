"""Registration of the real firmware process with a real Kamailio (issue 3).

Kamailio grants at most 60 s (fixture `max_expires=60`), so the station refreshes every ~30 s
(the E/2 rule for short registrations in firmware/sip/registration.py).
"""

import re
import signal
import time

import pytest

from tests.integration.helpers import (
    Firmware,
    LiveCapture,
    measure_time_to_registered,
    sip_messages,
    station_config,
    time_to_registered,
    wait_contacts,
)

pytestmark = pytest.mark.peers

CONTACT_PATTERNS = {
    "udp": r"^sip:door@127\.0\.0\.1:{port}$",
    "tcp": r"^sip:door@127\.0\.0\.1:{port};transport=tcp$",
    "tls": r"^sips:door@127\.0\.0\.1:{port}$",
}


@pytest.fixture
def firmware(tmp_path):
    """`firmware(config, name="fw")` starts a Firmware; all are killed (by PID) afterwards."""
    started = []

    def make(config, name="fw"):
        process = Firmware(tmp_path / f"{name}-{len(started)}", config).start()
        started.append(process)
        return process

    yield make
    for process in started:
        process.kill()
        print(f"--- firmware log {process.workdir} (tail) ---\n{process.log[-4000:]}")


def _headers(payload, name):
    wanted = name.lower().encode()
    values = []
    for line in payload.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == wanted:
            values.append(value.strip().decode(errors="replace"))
    return values


def _registers(payloads):
    return [p for p in payloads if p.startswith(b"REGISTER ")]


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
def test_registers_over_each_transport(kamailio, firmware, transport):
    fw = firmware(station_config(kamailio, transport))
    contacts = wait_contacts(kamailio, "door", timeout=5.0)
    took = time.monotonic() - fw.started_mono
    print(f"{transport}: start → contact visible in Kamailio (kamcmd polling): {took:.3f} s")
    assert len(contacts) == 1
    assert re.match(CONTACT_PATTERNS[transport].format(port=fw.port), contacts[0]), contacts
    fw.wait_log(r"registration registered", timeout=2.0)
    binding = kamailio.bindings("door")[0]
    # The binding lives on the flow we opened: Kamailio reaches us over it (connection reuse).
    assert binding.get("Socket", "").startswith(f"{transport}:127.0.0.1:"), binding
    assert "registration failed" not in fw.log


def test_time_from_start_to_register_200(kamailio, tmp_path):
    """Issue 3's closing note: process start → the registrar's 200 OK, kernel timestamps."""
    took = measure_time_to_registered(kamailio, tmp_path / "measure")
    print(f"start → 200 OK for REGISTER (loopback capture): {took['capture']:.3f} s; "
          f"start → contact seen by polling kamcmd: {took['polling']:.3f} s")
    assert took["capture"] is not None, "no 200 for REGISTER captured"
    assert 0 < took["capture"] <= took["polling"] + 0.05 < 5.0


def test_wrong_password_fails_clearly_without_hammering(kamailio, firmware, tmp_path):
    watch = 10.0
    with LiveCapture(tmp_path / "wrong.pcap", udp_ports=[kamailio.udp_port]) as capture:
        fw = firmware(station_config(kamailio, "udp", password="not-the-password"))
        fw.wait_log(r"registration failed: 401\b[^\n]*(password|credentials)", timeout=5.0)
        time.sleep(watch - (time.monotonic() - fw.started_mono))
        assert fw.alive
    registers = _registers(sip_messages(capture.packets(), kamailio.udp_port))
    print(f"REGISTERs received by Kamailio in {watch:.0f} s with a wrong password: "
          f"{len(registers)}")
    # One unauthenticated REGISTER, one with (wrong) credentials; the retry comes 15-30 s later.
    assert 2 <= len(registers) <= 4
    assert kamailio.contacts("door") == []
    assert fw.count_log(r"registration registered") == 0


def test_registrar_restart_udp_refresh_recovers(kamailio, firmware, tmp_path):
    """Over UDP nothing tells the station that Kamailio lost its bindings: the next refresh
    (~30 s after the first 200, same Call-ID, higher CSeq, RFC 3261 §10.2.4) restores them."""
    with LiveCapture(tmp_path / "restart.pcap", udp_ports=[kamailio.udp_port]) as capture:
        fw = firmware(station_config(kamailio, "udp"))
        wait_contacts(kamailio, "door", timeout=5.0)
        kamailio.stop()
        time.sleep(5.0)
        kamailio.start()
        back = time.monotonic()
        assert kamailio.contacts("door") == []  # Kamailio's usrloc is memory-only
        wait_contacts(kamailio, "door", timeout=35.0)
        recovered = time.monotonic() - back
        time.sleep(0.2)
    print(f"UDP: contact back {recovered:.1f} s after Kamailio returned")
    packets = capture.packets()
    registers = [p for p in packets
                 if p.dst[1] == kamailio.udp_port and p.payload.startswith(b"REGISTER ")]
    first_ok = time_to_registered(packets, ("127.0.0.1", kamailio.udp_port), fw.started_at)
    refresh = [p for p in registers if p.ts - fw.started_at > first_ok + 1.0]
    assert refresh, "no refresh REGISTER captured"
    interval = refresh[0].ts - fw.started_at - first_ok
    print(f"refresh sent {interval:.1f} s after the first 200 (granted 60 s)")
    assert 25.0 <= interval <= 32.0
    call_ids = {_headers(p.payload, "Call-ID")[0] for p in registers}
    assert len(call_ids) == 1, call_ids
    sequence = [int(_headers(p.payload, "CSeq")[0].split()[0]) for p in registers]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence), sequence


def test_registrar_restart_tcp_flow_failure_reregisters(kamailio, firmware):
    fw = firmware(station_config(kamailio, "tcp"))
    wait_contacts(kamailio, "door", timeout=5.0)
    mark = fw.log_offset()
    kamailio.stop()
    # The closed connection is noticed at once, not at the next refresh.
    fw.wait_log(r"registration failed", timeout=3.0, since=mark)
    time.sleep(5.0)
    kamailio.start()
    back = time.monotonic()
    # Unreachable back-off is 2, 4, 8, 16, 20 s (50-100 % jitter): the next try is < 20 s away.
    wait_contacts(kamailio, "door", timeout=25.0)
    recovered = time.monotonic() - back
    print(f"TCP: contact back {recovered:.1f} s after Kamailio returned")
    assert recovered < 20.0
    assert fw.alive


@pytest.mark.parametrize("transport", ["udp", "tls"])
def test_sigterm_unregisters_and_exits_zero(kamailio, firmware, transport):
    fw = firmware(station_config(kamailio, transport))
    wait_contacts(kamailio, "door", timeout=5.0)
    code, elapsed = fw.stop(signal.SIGTERM, timeout=5.0)
    print(f"{transport}: SIGTERM → exit {code} in {elapsed:.3f} s")
    assert code == 0
    assert elapsed < 3.0
    # The Expires: 0 was answered before the exit, so the binding is already gone.
    assert kamailio.contacts("door") == []
    assert "registration unregistered" in fw.log.split("stopping", 1)[1]
