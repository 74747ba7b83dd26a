"""MQTT and Home Assistant discovery (issue 17) against a real mosquitto on loopback.

The station runs as its own process (pc-sim, direct-IP mode: no registrar is needed for what
is tested here); a paho-mqtt observer of the test's own watches the broker.

- discovery (direct-IP mode: no registration entity): one device, the configs retained
  under homeassistant/<component>/<id>/<object>/config and valid per Home Assistant's
  documented schema (tests/integration/house.py);
  availability `online` retained; the state retained;
- a button press → the event entity's message `{"event_type": "ring"}` on its topic and the
  event on `<prefix>/event` (not retained); the delay from the API press is measured;
- `door/open` PRESS is ignored while `allow_door_open` is off, and opens the door (a
  `door_open` event with by = "mqtt", the relay open in the state) once it is turned on
  through PUT /api/config, which also adds the "Open door" button entity; removing a button
  from the config empties its entity's retained config;
- a broker restart: back online within 30 s with the state published again, and the rings
  made while the broker was down delivered after it;
- SIGKILL of the station: `offline` through the last will;
- registered at Kamailio, a call to a baresip flat1: the registration entity, the call sensor
  calling → ringing → active → idle;
- TLS with a CA made by the test: verified with `tls_ca`, refused without it; SIGTERM
  publishes `offline` and still exits within 3 s.
"""

import json
import signal
import time

import pytest

from tests.integration.house import check_discovery
from tests.peers.process import wait_until

pytestmark = pytest.mark.peers

USERS = {"door": "mqtt-door-secret", "observer": "mqtt-observer-secret"}
PREFIX = "doorline/test"


def mqtt_config(broker, **extra):
    section = {"broker": broker.address, "username": "door", "password": USERS["door"],
               "topic_prefix": PREFIX}
    section.update(extra)
    return section


def observer(broker, topics, session=None):
    from tests.peers.mosquitto import Observer

    return Observer(broker, topics, "observer", USERS["observer"], ca_path=broker.ca_path,
                    session=session)


def payload(record):
    return json.loads(record[2]) if record[2] else None


def test_discovery_ring_and_door_command(mosquitto_factory, house_stations):
    broker = mosquitto_factory(users=USERS)
    watch = observer(broker, [PREFIX + "/#", "homeassistant/#"])
    try:
        station = house_stations({
            "mqtt": mqtt_config(broker), "door": {"pulse_ms": 500},
            "buttons": [{"role": "call", "targets": []}, {"role": "call2", "targets": []}]})
        watch.wait_for(lambda r: r[1] == PREFIX + "/availability" and r[2] == b"online",
                       10, "online")
        device = station.device_id()
        status, metrics = station.request("GET", "/metrics")
        assert b"doorline_mqtt_connected 1\n" in metrics
        state = watch.wait_for(lambda r: r[1] == PREFIX + "/state", 5, "the state")
        assert payload(state)["registration"] == "disabled"
        assert payload(state)["door"]["relay"] == "closed"
        # every entity, once the discovery round is through (its last one: the held-open alarm)
        watch.wait_for(lambda r: r[1].endswith("/door_held_open/config"), 5, "discovery")
        configs = {r[1]: payload(r) for r in watch.messages() if r[1].endswith("/config")}
        expected = {
            f"homeassistant/event/{device}/call_ring/config",
            f"homeassistant/event/{device}/call2_ring/config",
            f"homeassistant/sensor/{device}/call_state/config",
            f"homeassistant/binary_sensor/{device}/relay_door/config",
            f"homeassistant/binary_sensor/{device}/relay_gate/config",
            f"homeassistant/binary_sensor/{device}/door_contact/config",
            f"homeassistant/binary_sensor/{device}/door_held_open/config",
        }
        assert set(configs) == expected, sorted(configs)
        devices = set()
        for topic, config in configs.items():
            check_discovery(topic.split("/")[1], config)
            devices.add(json.dumps(config["device"], sort_keys=True))
            assert config["availability_topic"] == PREFIX + "/availability"
        assert len(devices) == 1, "one device for every entity"
        ring_config = configs[f"homeassistant/event/{device}/call_ring/config"]
        assert ring_config["device_class"] == "doorbell"
        assert ring_config["event_types"] == ["ring"]
        print("discovery payloads:\n" + "\n".join(
            f"{t} {json.dumps(c, sort_keys=True)}" for t, c in sorted(configs.items())))
        # the retained ones come back to a new subscriber
        late = observer(broker, ["homeassistant/#", PREFIX + "/availability",
                                 PREFIX + "/state"])
        try:
            late.wait_for(lambda r: r[1] == PREFIX + "/state" and r[3], 5, "retained state")
            late.wait_for(lambda r: r[1] == PREFIX + "/availability" and r[3], 5)
            assert {r[1] for r in late.messages() if r[3] and r[1] in expected} == expected
        finally:
            late.close()

        # a press: the event entity's message, and the event
        delays = []
        for _ in range(5):
            began = time.monotonic()
            station.press("call")
            ring = watch.wait_for(lambda r, t=began: r[0] >= t and
                                  r[1] == PREFIX + "/ring/call", 3, "the ring")
            delays.append(ring[0] - began)
            time.sleep(0.4)  # the controller ignores presses within 0.3 s (debounce)
        assert payload(ring)["event_type"] == "ring" and not ring[3]
        event = watch.wait_for(lambda r: r[1] == PREFIX + "/event" and
                               payload(r)["type"] == "button", 3, "the button event")
        assert payload(event)["role"] == "call" and not event[3]
        delays.sort()
        print(f"button press (API) → MQTT ring: median {delays[2] * 1000:.1f} ms, "
              f"max {delays[-1] * 1000:.1f} ms")

        # the door command: ignored while off
        mark = time.monotonic()
        watch.publish(PREFIX + "/door/open", "PRESS")
        station.fw.wait_log(r"MQTT door/open ignored", 5)
        time.sleep(0.5)
        assert not station.events("door_open")
        assert not [r for r in watch.messages(PREFIX + "/event") if r[0] >= mark
                    and payload(r)["type"] == "door_open"]

        # on through the API: the button entity appears; call2 removed: its entity goes
        config = station.api("GET", "/api/config")
        config["mqtt"]["allow_door_open"] = True
        config["buttons"] = [b for b in config["buttons"] if b["role"] != "call2"]
        mark = time.monotonic()
        station.api("PUT", "/api/config", config)
        button = watch.wait_for(lambda r: r[0] >= mark and
                                r[1] == f"homeassistant/button/{device}/open_door/config",
                                5, "the Open door button")
        check_discovery("button", payload(button))
        assert payload(button)["command_topic"] == PREFIX + "/door/open"
        removed = watch.wait_for(lambda r: r[0] >= mark and
                                 r[1] == f"homeassistant/event/{device}/call2_ring/config", 5)
        assert removed[2] == b"" and removed[3] is False  # delivered live: retain flag off
        mark = time.monotonic()
        watch.publish(PREFIX + "/door/open", "PRESS")
        opened = watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/event" and
                                payload(r)["type"] == "door_open", 5, "the door opening")
        assert payload(opened)["by"] == "mqtt"
        opened_at = watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/state" and
                                   payload(r)["door"]["relay"] == "open", 3, "the relay open")[0]
        # the relay closes by itself after its pulse: the retained state follows
        watch.wait_for(lambda r: r[0] > opened_at and r[1] == PREFIX + "/state" and
                       payload(r)["door"]["relay"] == "closed", 3, "the relay closed again")
        assert [e["by"] for e in station.events("door_open")] == ["mqtt"]
        station.fw.wait_log(r"door opened by mqtt", 3)

        # the door contact (pc-sim's input) reaches the door binary_sensor's state
        mark = time.monotonic()
        station.api("POST", "/api/sim/input/door_contact", {"state": "open"})
        watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/state" and
                       payload(r)["door"].get("contact") == "open", 3, "the contact open")
        watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/event" and
                       payload(r)["type"] == "door_opened", 3, "the door_opened event")
        station.api("POST", "/api/sim/input/door_contact", {"state": "closed"})
        watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/state" and
                       payload(r)["door"].get("contact") == "closed", 3, "the contact closed")

        # a retained PRESS opens once (it is delivered live), never again at a reconnection
        time.sleep(0.6)  # the relay closed
        watch.publish(PREFIX + "/door/open", "PRESS", retain=True)
        assert wait_until(lambda: len(station.events("door_open")) == 2, 3)
        station.fw.kill()
        again = house_stations({"mqtt": mqtt_config(broker, allow_door_open=True)})
        again.fw.wait_log(r"MQTT door/open: ignored a retained message", 10)
        watch.publish(PREFIX + "/door/open", b"", retain=True)  # cleared
        assert not again.events("door_open")
    finally:
        watch.close()


def test_broker_restart_and_last_will(mosquitto_factory, house_stations):
    broker = mosquitto_factory(users=USERS)
    # one observer across the restart: a persistent session, so what the station publishes
    # while the observer is still reconnecting is kept for it by the broker
    watch = observer(broker, [PREFIX + "/#"], session="observer-restart")
    try:
        station = house_stations({"mqtt": mqtt_config(broker)})
        watch.wait_for(lambda r: r[1] == PREFIX + "/availability" and r[2] == b"online", 10)

        down = time.monotonic()
        broker.stop()
        # events while the broker is away are kept (a bounded queue) and sent after reconnecting
        station.press("call")
        time.sleep(0.4)  # debounce
        station.press("call")
        time.sleep(0.5)
        broker.start()
        back = watch.wait_for(lambda r: r[0] > down and r[1] == PREFIX + "/availability" and
                              r[2] == b"online" and not r[3], 30, "online again")
        state = watch.wait_for(lambda r: r[0] > down and r[1] == PREFIX + "/state", 5,
                               "the state republished")
        print(f"broker restart: online again {back[0] - down:.1f} s after it went down")
        assert payload(state)["door"]["relay"] == "closed"
        assert wait_until(lambda: len([r for r in watch.messages(PREFIX + "/ring/call")
                                       if r[0] > down]) == 2, 5), \
            "the two rings made while the broker was down"
        # an event that happens now still arrives
        mark = time.monotonic()
        station.press("call")
        watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/ring/call", 3)

        killed = time.monotonic()
        station.fw.stop(sig=signal.SIGKILL)
        will = watch.wait_for(lambda r: r[0] >= killed and r[1] == PREFIX + "/availability"
                              and r[2] == b"offline", 50, "the last will")
        print(f"SIGKILL → offline via the last will after {will[0] - killed:.3f} s")
    finally:
        watch.close()


def test_tls_with_a_ca_made_now(mosquitto_factory, house_stations, tmp_path):
    broker = mosquitto_factory(users=USERS, tls=True)
    watch = observer(broker, [PREFIX + "/availability"])
    try:
        untrusted = house_stations({"mqtt": mqtt_config(broker, tls=True,
                                                         topic_prefix=PREFIX + "x")})
        untrusted.fw.wait_log(r"MQTT 127\.0\.0\.1:\d+: .*(certificate verify failed|"
                              r"CERTIFICATE_VERIFY_FAILED)", 10)
        untrusted.fw.kill()
        station = house_stations({"mqtt": mqtt_config(broker, tls=True,
                                                       tls_ca=broker.ca_path)})
        watch.wait_for(lambda r: r[2] == b"online", 10, "online over TLS")
        assert not [r for r in watch.messages() if r[1] == PREFIX + "x/availability"
                    and r[2] == b"online"]
        # SIGTERM: `offline` said by the station itself, and the exit within 3 s
        code, elapsed = station.fw.stop()
        assert code == 0 and elapsed < 3.0, (code, elapsed)
        watch.wait_for(lambda r: r[2] == b"offline", 3, "offline at a clean stop")
    finally:
        watch.close()


def test_registered_station_and_a_call_as_home_assistant_sees_them(
        mosquitto_factory, house_stations, kamailio, baresip_factory):
    """With Kamailio and a baresip flat1 (manual answer): the registration entity exists and
    reads registered; the call sensor goes calling/ringing → active → idle."""
    from tests.integration.helpers import station_config

    broker = mosquitto_factory(users=USERS)
    phone = baresip_factory("flat1", registrar=kamailio, answer_mode="manual")
    phone.wait_registered(10)
    watch = observer(broker, [PREFIX + "/state", "homeassistant/binary_sensor/#"])
    try:
        config = station_config(kamailio, "udp")
        config.update({"mqtt": mqtt_config(broker),
                       "buttons": [{"role": "call", "targets": ["sip:flat1@127.0.0.1"]}]})
        station = house_stations(config)
        registration = watch.wait_for(lambda r: r[1].endswith("/registration/config"), 10)
        check_discovery("binary_sensor", payload(registration))
        watch.wait_for(lambda r: r[1] == PREFIX + "/state" and
                       payload(r)["registration"] == "registered", 10, "registered")
        mark = time.monotonic()
        station.press("call")
        watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/state" and
                       payload(r)["call"] == "ringing", 10, "ringing")
        phone.accept()
        watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/state" and
                       payload(r)["call"] == "active", 10, "active")
        phone.hangup()
        watch.wait_for(lambda r: r[0] >= mark and r[1] == PREFIX + "/state" and
                       payload(r)["call"] == "idle" and not payload(r)["calls"], 10, "idle")
        calls = [payload(r)["call"] for r in watch.messages(PREFIX + "/state") if r[0] >= mark]
        seen = [c for i, c in enumerate(calls) if i == 0 or c != calls[i - 1]]
        print(f"call sensor over the call: {seen}")
    finally:
        watch.close()


def test_ring_picture_reaches_the_image_entity(mosquitto_factory, house_stations):
    """With a camera, the `image` entity's topic gets each ring's JPEG, retained: the same
    picture the API keeps for that ring."""
    broker = mosquitto_factory(users=USERS)
    watch = observer(broker, [PREFIX + "/#", "homeassistant/#"])
    try:
        station = house_stations({"mqtt": mqtt_config(broker),
                                  "camera": {"enabled": True, "width": 320, "height": 240},
                                  "buttons": [{"role": "call", "targets": []}]},
                                 extra_args=("--camera", "pattern"))
        device = station.device_id()
        config = watch.wait_for(
            lambda r: r[1] == f"homeassistant/image/{device}/snapshot/config", 10,
            "the image entity")
        check_discovery("image", payload(config))
        assert payload(config)["image_topic"] == PREFIX + "/snapshot"
        station.press("call")
        event = watch.wait_for(lambda r: r[1] == PREFIX + "/event" and
                               payload(r)["type"] == "button", 5, "the button event")
        ident = payload(event)["snapshot"]
        picture = watch.wait_for(lambda r: r[1] == PREFIX + "/snapshot", 5, "the picture")
        assert picture[2][:2] == b"\xff\xd8", picture[2][:8]
        status, stored = station.request("GET", f"/api/snapshots/{ident}")
        assert status == 200 and stored == picture[2]
        late = observer(broker, [PREFIX + "/snapshot"])
        try:
            kept = late.wait_for(lambda r: r[1] == PREFIX + "/snapshot", 5, "retained picture")
            assert kept[3] and kept[2] == picture[2]
        finally:
            late.close()
    finally:
        watch.close()
