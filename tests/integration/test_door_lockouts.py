"""One flat's wrong codes never lock out another flat (issue 12).

Behind a PBX every call reaches the station from the registrar's address. Two callers with their
own codes call through Kamailio: caller A (the concierge) types three wrong codes and is locked
out; caller B (flat2) then types its right code and the door opens (door_open event and the relay
open in /api/status); A, calling again with its right code, stays locked out. With a lockout
counted per source address, B's digits were ignored ("locked out: digits ignored").
"""

import json
import time

import pytest

from tests.integration.test_door_station import (  # noqa: F401  (door_station is a fixture)
    CONCIERGE,
    DOOR_CODE,
    PHONE_HZ,
    door_station,
    phone_calls_station,
    send_code,
    wait_established,
)
from tests.peers.fixtures import CONCIERGE_USER, FLAT2_USER
from tests.peers.process import wait_until

pytestmark = pytest.mark.peers

FLAT2 = "sip:flat2@127.0.0.1"
FLAT2_CODE = "2580"


def _hang_up(phone, since):
    phone.hangup()
    phone.wait_event("CALL_CLOSED", 5, since=since)


def test_wrong_codes_of_one_caller_behind_the_registrar_do_not_lock_out_another(
        kamailio, baresip_factory, door_station):  # noqa: F811
    concierge = baresip_factory(CONCIERGE_USER, registrar=kamailio, tone_hz=PHONE_HZ)
    flat2 = baresip_factory(FLAT2_USER, registrar=kamailio, tone_hz=PHONE_HZ)
    concierge.wait_registered(5)
    flat2.wait_registered(5)
    station = door_station(
        answer={"mode": "auto", "allow": [CONCIERGE, FLAT2], "max_duration_s": 60},
        door={"codes": [{"caller": CONCIERGE, "code": DOOR_CODE},
                        {"caller": FLAT2, "code": FLAT2_CODE}],
              "pulse_ms": 2000, "max_failures": 3, "lockout_s": 60})
    station.require_api()

    # A: three wrong codes → locked out (per caller identity, not per the registrar's address).
    since = phone_calls_station(concierge, kamailio)
    wait_established(concierge, station, since)
    mark = station.event_count()
    played = send_code(concierge, "0000" * 3)
    station.wait_event("code_failed", played + 2.0, since=mark, count=3)
    lockouts = station.wait_event("lockout", 1.0, since=mark)
    _hang_up(concierge, since)
    station.wait_idle(3.0)

    # B: its right code opens the door.
    mark = station.event_count()
    since = phone_calls_station(flat2, kamailio)
    wait_established(flat2, station, since)
    played = send_code(flat2, FLAT2_CODE)
    found = wait_until(lambda: {"code_failed", "door_open"} & {
        e.get("type") for e in station.events()[mark:]}, played + 2.0, 0.05)
    new = station.events()[mark:]
    opened = [e for e in new if e.get("type") == "door_open"]
    relay = station.status()["door"]["relay"]
    ignored = [e for e in new if e.get("type") == "code_failed"]
    print(f"lockouts after A's three wrong codes: {[(e['kind'], e['subject']) for e in lockouts]}"
          f"; B's right code: door_open events {len(opened)}, relay {relay}, "
          f"B's digits refused {len(ignored)} time(s) {[e.get('reason') for e in ignored]}")
    assert found and opened, (f"flat2's right code did not open the door after the concierge's "
                              f"lockout: {ignored}{station.describe()}")
    assert "flat2" in json.dumps(opened[0]), opened
    assert relay == "open", f"relay {relay} right after door_open{station.describe()}"
    assert not ignored, ignored
    assert all(e["kind"] == "caller" and "concierge" in e["subject"] for e in lockouts), lockouts
    _hang_up(flat2, since)
    station.wait_idle(3.0)

    # A again, now with the right code: still locked out.
    mark = station.event_count()
    since = phone_calls_station(concierge, kamailio)
    wait_established(concierge, station, since)
    sent = time.monotonic()
    played = send_code(concierge, DOOR_CODE)
    wait_until(lambda: {"code_failed", "door_open"} & {
        e.get("type") for e in station.events()[mark:]}, played + 2.0, 0.05)
    time.sleep(max(0.0, sent + played - time.monotonic()))  # every digit has arrived
    new = station.events()[mark:]
    assert not [e for e in new if e.get("type") == "door_open"], (
        f"the locked-out concierge opened the door{station.describe()}")
    assert [e for e in new if e.get("type") == "code_failed"
            and "locked out" in e.get("reason", "")], station.describe()
    _hang_up(concierge, since)
    station.check_event_ids()
