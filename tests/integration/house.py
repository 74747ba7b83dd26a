"""Helpers for the "Telling the house" tests (issue 17): a station process with its web API,
and Home Assistant's MQTT discovery schema as its documentation states it.

- `HouseStation(workdir, config)`: `tests.integration.helpers.Firmware` plus `api(method, path,
  body)` over HTTP Basic (the admin password is set at start), `press(role)`.
- fixture `house_stations`: `house_stations(config)` starts a HouseStation; each is killed
  by PID after the test, its log tail printed (tests/integration/conftest.py).
- `check_discovery(component, config)`: the config must hold what Home Assistant's MQTT docs
  require for that component (`event`, `binary_sensor`, `sensor`, `button`, `image`), with
  every key one the docs list, of the documented type, enum values among the documented ones,
  and a valid `device` block (identifiers or connections; a `unique_id` with it) and `origin`
  (`name`). Raises AssertionError naming the key.
"""

import base64
import http.client
import json
import os

import pytest

from tests.integration.helpers import Firmware
from tests.peers.process import free_port

ADMIN_PASSWORD = "Klingel-Draht-4182"

# -- Home Assistant MQTT discovery, from its documentation ------------------------------------
# Keys every MQTT entity may carry (the "Configuration variables" common to all of these
# components: availability, device, origin, entity naming and categories, templates).
COMMON = {
    "availability_topic": str, "availability_mode": str, "availability_template": str,
    "payload_available": str, "payload_not_available": str, "availability": list,
    "device": dict, "origin": dict, "name": (str, type(None)), "unique_id": str,
    "default_entity_id": str, "enabled_by_default": bool, "entity_category": str,
    "entity_picture": str, "icon": str, "json_attributes_topic": str,
    "json_attributes_template": str, "qos": int, "encoding": str, "platform": str,
}
COMPONENTS = {
    # https://www.home-assistant.io/integrations/event.mqtt/
    "event": {"required": {"state_topic": str, "event_types": list},
              "optional": {"device_class": str, "value_template": str},
              "device_class": ("button", "doorbell", "motion")},
    # https://www.home-assistant.io/integrations/binary_sensor.mqtt/
    "binary_sensor": {"required": {},
                      "optional": {"state_topic": str, "device_class": str, "payload_on": str,
                                   "payload_off": str, "value_template": str,
                                   "expire_after": int, "force_update": bool,
                                   "off_delay": int},
                      "device_class": ("battery", "battery_charging", "carbon_monoxide",
                                       "cold", "connectivity", "door", "garage_door", "gas",
                                       "heat", "light", "lock", "moisture", "motion",
                                       "moving", "occupancy", "opening", "plug", "power",
                                       "presence", "problem", "running", "safety", "smoke",
                                       "sound", "tamper", "update", "vibration", "window")},
    # https://www.home-assistant.io/integrations/sensor.mqtt/
    "sensor": {"required": {"state_topic": str},
               "optional": {"device_class": str, "options": list, "value_template": str,
                            "unit_of_measurement": str, "state_class": str,
                            "expire_after": int, "force_update": bool,
                            "suggested_display_precision": int, "last_reset_value_template":
                            str},
               "device_class": None},  # many; `enum` is checked below
    # https://www.home-assistant.io/integrations/button.mqtt/
    "button": {"required": {"command_topic": str},
               "optional": {"payload_press": str, "device_class": str, "retain": bool,
                            "command_template": str},
               "device_class": ("identify", "restart", "update")},
    # https://www.home-assistant.io/integrations/image.mqtt/
    "image": {"required": {},
              "optional": {"image_topic": str, "url_topic": str, "content_type": str,
                           "image_encoding": str, "url_template": str},
              "device_class": ()},
}
DEVICE_KEYS = {"identifiers": (list, str), "connections": list, "name": str,
               "manufacturer": str, "model": str, "model_id": str, "sw_version": str,
               "hw_version": str, "serial_number": str, "suggested_area": str,
               "via_device": str, "configuration_url": str}
ORIGIN_KEYS = {"name": str, "sw_version": str, "support_url": str}


def check_discovery(component, config):
    spec = COMPONENTS[component]
    allowed = {**COMMON, **spec["required"], **spec["optional"]}
    for key in spec["required"]:
        assert key in config, f"{component}: required {key} missing"
    for key, value in config.items():
        assert key in allowed, f"{component}: {key} is no documented option"
        assert isinstance(value, allowed[key]), f"{component}.{key}: {value!r} not {allowed[key]}"
    if "device_class" in config and spec["device_class"] is not None:
        assert config["device_class"] in spec["device_class"], (component, config)
    if component == "event":
        assert config["event_types"] and all(isinstance(t, str) for t in config["event_types"])
    if component == "sensor" and config.get("device_class") == "enum":
        assert config.get("options"), "sensor: device_class enum needs options"
        assert "unit_of_measurement" not in config and "state_class" not in config
    if component == "image":
        assert ("image_topic" in config) != ("url_topic" in config), \
            "image: exactly one of image_topic and url_topic"
    if "entity_category" in config:
        assert config["entity_category"] in ("config", "diagnostic")
    if "availability_mode" in config:
        assert config["availability_mode"] in ("all", "any", "latest")
    device = config.get("device")
    if device is not None:
        assert "unique_id" in config, f"{component}: a device block needs a unique_id"
        assert device.get("identifiers") or device.get("connections"), \
            f"{component}: the device needs identifiers or connections"
        for key, value in device.items():
            assert key in DEVICE_KEYS, f"device.{key} is no documented option"
            assert isinstance(value, DEVICE_KEYS[key]), f"device.{key}: {value!r}"
        if "configuration_url" in device:
            assert device["configuration_url"].startswith(("http://", "https://"))
    origin = config.get("origin")
    if origin is not None:
        assert isinstance(origin.get("name"), str) and origin["name"], "origin.name required"
        for key in origin:
            assert key in ORIGIN_KEYS, f"origin.{key} is no documented option"


# -- the station -------------------------------------------------------------------------------
class HouseStation:
    def __init__(self, workdir, config, **kwargs):
        config.setdefault("web", {"listen": f"127.0.0.1:{free_port(('tcp',))}"})
        config.setdefault("sip", {"listen": f"127.0.0.1:{free_port(('udp', 'tcp'))}"})
        self.fw = Firmware(workdir, config, **kwargs)
        host, port = config["web"]["listen"].rsplit(":", 1)
        self.web = (host, int(port))

    def start(self, timeout=10.0):
        self.fw.start()
        self.fw.wait_log(r"web page on http://", timeout)
        status, body = self.request("POST", "/api/setup", {"password": ADMIN_PASSWORD},
                                    auth=False)
        assert status == 200, (status, body)
        return self

    def request(self, method, path, body=None, auth=True, timeout=5.0):
        connection = http.client.HTTPConnection(*self.web, timeout=timeout)
        try:
            headers = {"Host": "localhost", "Content-Type": "application/json"}
            if auth:
                headers["Authorization"] = "Basic " + base64.b64encode(
                    f"admin:{ADMIN_PASSWORD}".encode()).decode()
            data = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
            try:
                return response.status, json.loads(raw)
            except ValueError:
                return response.status, raw
        finally:
            connection.close()

    def api(self, method, path, body=None):
        status, reply = self.request(method, path, body)
        assert status == 200, f"{method} {path} → {status} {reply}\n{self.fw.log[-3000:]}"
        return reply

    def press(self, role="call"):
        return self.api("POST", f"/api/sim/button/{role}", {"press_ms": 50})

    def events(self, type_=None):
        events = self.api("GET", "/api/events?limit=1000")["events"]
        return [e for e in events if type_ is None or e["type"] == type_]

    def device_id(self):
        with open(os.path.join(self.fw.state_dir, "device_id"), encoding="ascii") as f:
            return f.read().strip()


@pytest.fixture
def house_stations(tmp_path):
    started = []

    def make(config, **kwargs):
        station = HouseStation(tmp_path / f"station-{len(started)}", config, **kwargs)
        started.append(station)
        return station.start()

    yield make
    for station in started:
        station.fw.kill()
        print(f"--- station log ---\n{station.fw.log[-5000:]}")
