"""firmware/app/homeassistant.py: topics, rings, the state and the discovery configs (issue 17).
Portable: runs under MicroPython too (make test-micropython)."""

from firmware.app import homeassistant as ha


def device(**changes):
    values = {"device_id": "0123456789ab", "prefix": "doorline/front",
              "discovery_prefix": "homeassistant", "name": "Front door", "model": "pc-sim",
              "version": "0.1.0", "buttons": ["call", "call2"], "relays": ["door", "gate"],
              "contact": True, "door_command": False, "camera": False}
    values.update(changes)
    return ha.Device(**values)


def configs(info):
    return dict(ha.discovery(info))


def test_one_entity_per_role_on_the_documented_topics():
    found = configs(device())
    assert sorted(found) == [
        "homeassistant/binary_sensor/0123456789ab/door_contact/config",
        "homeassistant/binary_sensor/0123456789ab/door_held_open/config",
        "homeassistant/binary_sensor/0123456789ab/registration/config",
        "homeassistant/binary_sensor/0123456789ab/relay_door/config",
        "homeassistant/binary_sensor/0123456789ab/relay_gate/config",
        "homeassistant/event/0123456789ab/call2_ring/config",
        "homeassistant/event/0123456789ab/call_ring/config",
        "homeassistant/sensor/0123456789ab/call_state/config",
    ]
    ring = found["homeassistant/event/0123456789ab/call_ring/config"]
    assert ring["event_types"] == ["ring"] and ring["device_class"] == "doorbell"
    assert ring["state_topic"] == "doorline/front/ring/call"
    blocks = [c["device"] for c in found.values()]
    assert all(b == blocks[0] for b in blocks)
    assert blocks[0]["identifiers"] == ["doorline_0123456789ab"]
    ids = [c["unique_id"] for c in found.values()]
    assert len(set(ids)) == len(ids)
    for config in found.values():
        assert config["availability_topic"] == "doorline/front/availability"
        assert config["payload_available"] == "online"
        assert config["payload_not_available"] == "offline"


def test_door_button_only_when_allowed_and_image_only_with_a_camera():
    assert not [t for t in configs(device()) if "/button/" in t or "/image/" in t]
    found = configs(device(door_command=True, camera=True, contact=False))
    button = found["homeassistant/button/0123456789ab/open_door/config"]
    assert button["command_topic"] == "doorline/front/door/open"
    assert button["payload_press"] == "PRESS"
    image = found["homeassistant/image/0123456789ab/snapshot/config"]
    assert image["image_topic"] == "doorline/front/snapshot"
    assert not [t for t in found if "door_contact" in t or "held_open" in t]


def test_no_registration_entity_in_direct_ip_mode():
    assert not [t for t in configs(device(registrar=False)) if "registration" in t]


def test_rings_are_presses_of_configured_buttons():
    roles = ["call"]
    assert ha.is_ring({"type": "button", "role": "call", "outcome": "call"}, roles)
    assert ha.is_ring({"type": "button", "role": "call", "outcome": "no call"}, roles)
    assert not ha.is_ring({"type": "button", "role": "call", "outcome": "released"}, roles)
    assert not ha.is_ring({"type": "button", "role": "hangup", "outcome": "hangup"}, roles)
    assert not ha.is_ring({"type": "door_open", "role": "call"}, roles)
    assert not ha.is_ring({"type": "button", "role": "exit", "outcome": "door"}, ["exit"])
    payload = ha.ring_payload({"id": 7, "time": 1.5, "type": "button", "role": "call",
                               "outcome": "call"})
    assert payload["event_type"] == "ring" and payload["id"] == 7


def test_state_summarises_calls_and_the_door():
    state = ha.state("registered", [{"id": "a", "direction": "outgoing", "state": "ringing",
                                     "peer": "sip:flat1@x", "stats": {}}],
                     {"relay": "open", "relays": {"door": "open", "gate": "closed"},
                      "contact": "closed", "held_open": False})
    assert state["registration"] == "registered"
    assert state["call"] == "ringing"
    assert state["calls"] == [{"id": "a", "direction": "outgoing", "state": "ringing",
                               "peer": "sip:flat1@x"}]
    assert state["door"] == {"relay": "open", "relays": {"door": "open", "gate": "closed"},
                             "contact": "closed", "held_open": False}
    assert ha.state("disabled", [], {"contact": None})["door"] == {
        "relay": "closed", "relays": {}, "held_open": False}
    assert ha.call_state([{"state": "active"}, {"state": "ringing"}]) == "active"
    assert ha.call_state([]) == "idle"
