"""A call's card on the page (issue 18, docs/API.md GET /api/status `calls[]`): `started`,
`wideband`, `stats.loss_percent` and `stats.jitter_ms`, from the real firmware process calling a
real baresip (through Kamailio) with G.722 offered; and a test call nobody takes ends with a
`call` event carrying its SIP status and reason.

Every wait is bounded; the processes are stopped by PID by their fixtures."""

import time

import pytest

from tests.integration.test_web_live import FLAT1, live_station, registered_config  # noqa: F401
from tests.peers.fixtures import FLAT1_USER

pytestmark = pytest.mark.peers


def test_call_card_fields_for_a_wideband_call(kamailio, baresip_factory,
                                              live_station):  # noqa: F811
    phone = baresip_factory(FLAT1_USER, registrar=kamailio, answer_mode="auto",
                            codecs=("G722/16000/1", "PCMU/8000/1"), modules=("g722.so",))
    phone.wait_registered(5.0)
    station = live_station(registered_config(
        kamailio, buttons=[{"role": "call", "targets": [FLAT1]}],
        media={"codecs": ["G722", "PCMU"]}))
    station.set_password()
    station.wait_status(lambda s: s["registration"]["state"] == "registered", 5.0, "registered")
    pressed = time.time()
    station.api("POST", "/api/sim/button/call", {"press_ms": 100})
    first = station.wait_status(lambda s: s["calls"], 5.0, "the call")["calls"][0]
    assert pressed - 0.5 <= first["started"] <= time.time() + 0.1, first  # (0.1 s steps)
    if first["state"] in ("calling", "ringing"):  # no media stream yet: no figures
        assert first["stats"]["loss_percent"] is None and first["stats"]["jitter_ms"] is None, \
            first
    status = station.wait_status(
        lambda s: s["calls"] and s["calls"][0]["state"] == "active"
        and s["calls"][0]["stats"].get("packets_received", 0) > 25, 6.0,
        "an active call with received audio")
    call = status["calls"][0]
    assert call["codec"] == "G722" and call["wideband"] is True, call
    assert call["started"] == first["started"], (first, call)
    stats = call["stats"]
    assert isinstance(stats["loss_percent"], float) and 0 <= stats["loss_percent"] < 5, stats
    assert isinstance(stats["jitter_ms"], float) and 0 <= stats["jitter_ms"] < 40, stats
    station.api("POST", "/api/hangup", {})
    station.wait_status(lambda s: s["calls"] == [], 5.0, "no call")


def test_a_test_call_nobody_answers_ends_with_status_and_reason(kamailio, live_station):  # noqa: F811,E501
    station = live_station(registered_config(kamailio, calls={"ring_timeout_s": 5}))
    station.set_password()
    station.wait_status(lambda s: s["registration"]["state"] == "registered", 5.0, "registered")
    # nobody is registered as "nobody"
    reply = station.api("POST", "/api/call", {"target": "sip:nobody@" + kamailio.domain})
    station.wait_status(lambda s: s["calls"] == [], 10.0, "the call ended")
    ended = [e for e in station.events("call") if e.get("call_id") == reply["id"]
             and e.get("outcome") not in (None, "calling", "ringing", "placed")]
    assert ended, station.events("call")
    last = ended[-1]
    # Kamailio knows no contact for it and answers 408 (as a PBX does when nobody picks up)
    assert (last["outcome"], last["status"], last["reason"]) == \
        ("unanswered", 408, "no answer"), last
