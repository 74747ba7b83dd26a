"""Every door (issue 17) end to end on the pc-sim board: Kamailio as registrar, baresip as the
flat's phone, the firmware as its own process (tests/integration/test_door_station.py's
`DoorStation`).

One run through what the door hardware does:
- the call button rings flat1 (baresip answers by itself) through a schedule that is always
  active in Europe/Berlin: the button has no plain targets, so the call shows that the runtime
  hands the controller the wall-clock time (runtime/localtime.py, zoneinfo); flat1 types its
  code for the gate (`relay = "gate"`) → `door_open` with `relay = "gate"`, the gate relay
  pulses (seen open, then closed, in /api/status) and the door relay stays closed;
- the door contact (POST /api/sim/input/door_contact) opens → `door_opened`; held open past
  `held_open_alarm_s` → `door_held_open`; it closes → `door_closed` and, with
  `hangup_on_close`, the station ends the call (flat1 sees it closed);
- the exit button (POST /api/sim/button/exit) → `door_open` with `by = "exit"` on the door
  relay, and no call.
"""

import time

import pytest

from tests.integration.test_door_station import (  # noqa: F401  (fixtures)
    PHONE_HZ,
    door_station,
    send_code,
)
from tests.peers.fixtures import FLAT1_USER

pytestmark = pytest.mark.peers

FLAT1 = "sip:flat1@127.0.0.1"
GATE_CODE = "2580"
GATE_PULSE_MS = 1500
HELD_OPEN_ALARM_S = 1


def _incoming_established(event):
    return event.get("type") == "CALL_ESTABLISHED" and event.get("direction") == "incoming"


def test_gate_code_door_contact_hangup_on_close_and_exit_button(
        kamailio, baresip_factory, door_station):  # noqa: F811 (imported fixture)
    flat1 = baresip_factory(FLAT1_USER, registrar=kamailio, tone_hz=PHONE_HZ)
    flat1.wait_registered(5)
    station = door_station(
        time={"zone": "Europe/Berlin", "holidays": []},
        schedules=[{"name": "always", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun",
                                               "holiday"], "times": ["00:00-24:00"]}],
        buttons=[{"role": "call", "targets": [],
                  "schedule_targets": [{"schedule": "always", "targets": [FLAT1]}]}],
        relays=[{"role": "gate", "pulse_ms": GATE_PULSE_MS}],
        door={"codes": [{"caller": FLAT1, "code": GATE_CODE, "relay": "gate"}],
              "hangup_on_close": True, "held_open_alarm_s": HELD_OPEN_ALARM_S})
    station.require_api()
    status = station.status()
    assert status["door"]["relays"] == {"door": "closed", "gate": "closed"}, status
    assert status["door"]["contact"] == "closed", status  # pc-sim: the door rests shut

    # 1. the call button rings flat1, which answers and types the gate's code
    since = len(flat1.events)
    station.press("call")
    try:
        flat1.wait_event(_incoming_established, 5, since=since)
    except TimeoutError as error:
        raise AssertionError(f"{error}{station.describe()}") from None
    press = station.wait_event("button", 2.0, match=lambda e: e.get("outcome") == "call")[0]
    assert press["schedule"] == "always" and press["targets"] == [FLAT1], press
    mark = station.event_count()
    played = send_code(flat1, GATE_CODE)
    opened = station.wait_event("door_open", played + 2.0, since=mark)[0]
    assert opened["relay"] == "gate" and opened["how"] == "dtmf", opened
    assert "flat1" in opened["by"], opened
    states = []
    deadline = time.monotonic() + GATE_PULSE_MS / 1000 + 1.5
    while time.monotonic() < deadline:
        relays = station.status()["door"]["relays"]
        states.append((relays["gate"], relays["door"]))
        if states[-1][0] == "closed" and ("open", "closed") in states:
            break
        time.sleep(0.05)
    assert ("open", "closed") in states, f"the gate relay never showed open: {states}"
    assert states[-1] == ("closed", "closed"), f"the gate did not close again: {states}"
    assert all(door == "closed" for _, door in states), "the gate's code drove the door relay"

    # 2. the door contact: opened, held open (alarm), closed → the call is hung up
    mark = station.event_count()
    code, body = station.request("POST", "/api/sim/input/door_contact", {"state": "open"})
    assert code == 200, (code, body)
    station.wait_event("door_opened", 2.0, since=mark)
    alarm = station.wait_event("door_held_open", HELD_OPEN_ALARM_S + 2.0, since=mark)[0]
    assert alarm["alarm_s"] == HELD_OPEN_ALARM_S and alarm["held_s"] >= HELD_OPEN_ALARM_S
    status = station.status()
    assert status["door"]["held_open"] is True and status["leds"]["door"] == "blink_fast", status
    assert status["calls"], f"the call ended before the door closed{station.describe()}"
    closing = len(flat1.events)
    closed_at = time.monotonic()
    code, body = station.request("POST", "/api/sim/input/door_contact", {"state": "closed"})
    assert code == 200, (code, body)
    closed = station.wait_event("door_closed", 2.0, since=mark)[0]
    assert closed.get("alarm") == "ended", closed
    try:
        flat1.wait_event("CALL_CLOSED", 5, since=closing)
    except TimeoutError as error:
        raise AssertionError(f"door closed, call not hung up: {error}{station.describe()}") \
            from None
    hangup_s = time.monotonic() - closed_at
    hung_up = station.wait_event(
        "call", 2.0, since=mark, match=lambda e: e.get("outcome") == "hanging up")[0]
    assert "hangup_on_close" in hung_up["reason"], hung_up
    station.wait_idle(5.0)

    # 3. the exit button opens the door relay locally, without a call
    mark = station.event_count()
    pressed_at = time.time()
    station.press("exit")
    exit_open = station.wait_event("door_open", 2.0, since=mark)[0]
    print(f"door contact closed → flat1 saw the call closed: {hangup_s * 1000:.0f} ms; "
          f"exit press request → door_open logged: {(exit_open['time'] - pressed_at) * 1000:.0f}"
          " ms")
    assert (exit_open["by"], exit_open["how"], exit_open["relay"]) == ("exit", "button", "door")
    assert station.status()["door"]["relay"] == "open"
    time.sleep(0.5)
    assert not station.status()["calls"], "the exit button placed a call"
    assert not [e for e in station.events()[mark:]
                if e.get("type") == "call" and e.get("outcome") == "placed"]

    # bad input gets a clear error
    code, body = station.request("POST", "/api/sim/input/door_contact", {"state": "ajar"})
    assert code == 400 and "state" in body["error"], (code, body)
    code, body = station.request("POST", "/api/door/open", {"relay": "garage"})
    assert code == 400 and "garage" in body["error"], (code, body)
    station.check_event_ids()
