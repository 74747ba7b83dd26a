"""A call whose media cannot be set up is refused cleanly (issue 12), on the running station.

The station gets a tiny `rtp_ports` range (two RTP/RTCP pairs) and the test holds every port of
it. An INVITE from SIPp must then be answered 503 (not left ringing for ever with a 100
Trying), `/api/status` must list no call, a press of the call button places no call, and once
the test lets the ports go, the next call is answered and ends normally.
"""

import json
import socket

import pytest

from tests.integration.test_calls_baresip import _web_request, press_call_button
from tests.integration.test_calls_sipp import free_rtp_range, start_station
from tests.peers.sipp import run_sipp, uac_scenario

pytestmark = pytest.mark.peers

PAIRS = 2


def _hold_ports(low, high):
    held = []
    try:
        for port in range(low, high + 1):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            held.append(sock)
            sock.bind(("127.0.0.1", port))
    except OSError:
        for sock in held:
            sock.close()
        raise
    return held


def _calls(station):
    status, body = _web_request(station, "GET", "/api/status")
    assert status == 200, f"/api/status: {status} {body!r}"
    return json.loads(body)["calls"]


def test_no_free_rtp_port_answers_503_and_leaves_no_call(tmp_path):
    low = free_rtp_range(2 * PAIRS)
    high = low + 2 * PAIRS - 1
    station = start_station(tmp_path / "station",
                            media={"srtp": "off", "rtp_ports": f"{low}-{high}"},
                            buttons=[{"role": "call", "targets": ["sip:flat1@127.0.0.1:9"]}])
    try:
        status, text = _web_request(station, "POST", "/api/setup",
                                    {"password": "Intercom-Test-Passphrase-7431"}, auth=False)
        assert status in (200, 409), f"/api/setup: {status} {text!r}"
        held = _hold_ports(low, high)
        try:
            refused = run_sipp(uac_scenario(expect_status=503), ("127.0.0.1", station.port),
                               service="door", workdir=tmp_path / "sipp-503", timeout=10)
            calls_while_full = _calls(station)
            press_call_button(station)  # calling out needs ports too: the call does not start
            station.wait_log(r"not calling: no media", timeout=5)
            calls_after_press = _calls(station)
        finally:
            for sock in held:
                sock.close()
        print(f"ports {low}-{high} all taken: SIPp got "
              f"{[line for line in refused.messages.splitlines() if line.startswith('SIP/2.0')]}"
              f"; calls in /api/status: {calls_while_full}")
        assert refused.returncode == 0, refused.describe()
        assert "SIP/2.0 503" in refused.messages
        station.wait_log(r"refused: no media", timeout=5)
        assert calls_while_full == [] and calls_after_press == []

        answered = run_sipp(uac_scenario(hold_ms=500), ("127.0.0.1", station.port),
                            service="door", workdir=tmp_path / "sipp-200", timeout=15)
        assert answered.returncode == 0, answered.describe()
        assert "SIP/2.0 200" in answered.messages
        station.wait_log(r"call \S+ ended", timeout=5)
        assert _calls(station) == [] and station.alive
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-4000:]}")
