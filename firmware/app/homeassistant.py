"""What the station tells the house over MQTT (issue 17): its topics, the state it publishes,
which events are rings, and Home Assistant's MQTT discovery configs. Pure functions over plain
values (portable, sans-I/O): firmware/runtime/mqtt.py publishes what these return.

Home Assistant's MQTT discovery (its "MQTT" integration documentation, "Discovery messages"):
a retained config at `<discovery_prefix>/<component>/<node_id>/<object_id>/config`; here the
node id is the device id, so every entity shares one `device` block (`identifiers`, `name`,
`manufacturer`, `model`, `sw_version`) and one `origin` (`name`, `sw_version`),
and reports through the station's `availability` topic (`online`/`offline`, the last will).
An empty retained payload on a config topic removes that entity.

Entities (docs/HOME.md):
- `event` per configured button role: `<role>_ring`, device class `doorbell`, event types
  ["ring"], state topic `<prefix>/ring/<role>`, payload `{"event_type": "ring", ...}`;
- `binary_sensor` `registration` (device class `connectivity`; only with a registrar: in
  direct-IP mode there is nothing to be connected to) and one per relay
  `relay_<role>` (device class `lock`: on = unlocked, the relay is open), read from `state`;
- `binary_sensor` `door_contact` (device class `door`) and `door_held_open` (device class
  `problem`: the held-open alarm) where the board has that input;
- `sensor` `call_state` (device class `enum`: idle, calling, ringing, active);
- `button` `open_door` (command topic `<prefix>/door/open`, payload `PRESS`) only with
  `[mqtt] allow_door_open`;
- `image` `snapshot` (image topic `<prefix>/snapshot`, image/jpeg) where a camera exists.

Public API:
    topics(prefix) -> dict of topic names (availability, state, event, door_open, snapshot)
    ring_topic(prefix, role)
    is_ring(event, roles) -> bool; ring_payload(event) -> dict
    state(registration, calls, door_status) -> dict (the retained `state` JSON)
    discovery(info) -> [(topic, config dict)] for every entity the station has
    Device(...): what the discovery configs are built from
"""

AVAILABLE, NOT_AVAILABLE = "online", "offline"
PRESS = "PRESS"
CALL_STATES = ["idle", "calling", "ringing", "active"]
# button events that are no visitor's press (firmware/app/controller.py outcomes)
NOT_A_RING = ("hangup", "released", "stuck", "door")  # "door": the exit button opened it


def topics(prefix: str) -> dict:
    return {"availability": prefix + "/availability", "state": prefix + "/state",
            "event": prefix + "/event", "door_open": prefix + "/door/open",
            "snapshot": prefix + "/snapshot"}


def ring_topic(prefix: str, role: str) -> str:
    return prefix + "/ring/" + role


def is_ring(event: dict, roles: "list[str]") -> bool:
    """A visitor pressed a configured call button (whatever came of it: a call, busy...)."""
    return event.get("type") == "button" and event.get("role") in roles and \
        event.get("outcome") not in NOT_A_RING


def ring_payload(event: dict) -> dict:
    """The event entity's message: `event_type` (required by Home Assistant), plus attributes."""
    out = {"event_type": "ring", "role": event.get("role"), "outcome": event.get("outcome"),
           "id": event.get("id"), "time": event.get("time")}
    if event.get("snapshot") is not None:
        out["snapshot"] = event.get("snapshot")
    return out


def call_state(calls: "list[dict]") -> str:
    """One word for the sensor: the most advanced call's state."""
    states = [c.get("state") for c in calls]
    if "active" in states or "answering" in states:
        return "active"
    if "ringing" in states:
        return "ringing"
    if states and any(s not in ("ended", "closing") for s in states):
        return "calling"
    return "idle"


def state(registration: str, calls: "list[dict]", door_status: dict) -> dict:
    """The retained `state` message: registration, calls (id, direction, state, peer), the
    call state in one word, and the door as GET /api/status has it: `relay` (the door's),
    `relays` (every relay), `contact` (`open`/`closed`, where the board has the input and it
    was read) and `held_open` (the held-open alarm)."""
    relays = door_status.get("relays") or {}
    door = {"relay": door_status.get("relay") or relays.get("door", "closed"),
            "relays": dict(relays), "held_open": bool(door_status.get("held_open"))}
    if door_status.get("contact") is not None:
        door["contact"] = door_status["contact"]
    return {"registration": registration,
            "call": call_state(calls),
            "calls": [{"id": c.get("id"), "direction": c.get("direction"),
                       "state": c.get("state"), "peer": c.get("peer")} for c in calls],
            "door": door}


class Device:
    """What the discovery configs describe: ids, names, the board's roles and the options."""

    __slots__ = ("device_id", "prefix", "discovery_prefix", "name", "model", "version",
                 "buttons", "relays", "contact", "door_command", "camera", "url", "registrar")

    def __init__(self, device_id: str, prefix: str, discovery_prefix: str, name: str,
                 model: str, version: str, buttons: "list[str]", relays: "list[str]",
                 contact: bool, door_command: bool, camera: bool, url: str = "",
                 registrar: bool = True) -> None:
        self.device_id = device_id
        self.prefix = prefix
        self.discovery_prefix = discovery_prefix
        self.name = name
        self.model = model
        self.version = version
        self.buttons = buttons
        self.relays = relays
        self.contact = contact
        self.door_command = door_command
        self.camera = camera
        self.url = url
        self.registrar = registrar

    def __repr__(self) -> str:
        return "<Device %s buttons=%r relays=%r>" % (self.device_id, self.buttons, self.relays)


def _device_block(info: "Device") -> dict:
    block = {"identifiers": ["doorline_" + info.device_id], "name": info.name,
             "manufacturer": "Doorline", "model": info.model, "sw_version": info.version}
    if info.url:
        block["configuration_url"] = info.url
    return block


def _common(info: "Device", object_id: str, name: str) -> dict:
    t = topics(info.prefix)
    return {"name": name,
            "unique_id": "doorline_%s_%s" % (info.device_id, object_id),
            "availability_topic": t["availability"],
            "payload_available": AVAILABLE, "payload_not_available": NOT_AVAILABLE,
            "device": _device_block(info),
            "origin": {"name": "Doorline", "sw_version": info.version}}


def config_topic(info: "Device", component: str, object_id: str) -> str:
    return "%s/%s/%s/%s/config" % (info.discovery_prefix, component, info.device_id, object_id)


def discovery(info: "Device") -> "list[tuple[str, dict]]":
    """(config topic, config) for every entity the station has now, in a fixed order."""
    t = topics(info.prefix)
    out = []
    for role in info.buttons:
        object_id = role + "_ring"
        config = _common(info, object_id, "Ring " + role if role != "call" else "Ring")
        config.update({"state_topic": ring_topic(info.prefix, role),
                       "event_types": ["ring"], "device_class": "doorbell"})
        out.append((config_topic(info, "event", object_id), config))
    if info.registrar:
        config = _common(info, "registration", "SIP registration")
        config.update({"state_topic": t["state"], "device_class": "connectivity",
                       "entity_category": "diagnostic",
                       "value_template": "{{ 'ON' if value_json.registration == 'registered' "
                                         "else 'OFF' }}",
                       "payload_on": "ON", "payload_off": "OFF"})
        out.append((config_topic(info, "binary_sensor", "registration"), config))
    config = _common(info, "call_state", "Call")
    config.update({"state_topic": t["state"], "device_class": "enum",
                   "options": list(CALL_STATES), "value_template": "{{ value_json.call }}"})
    out.append((config_topic(info, "sensor", "call_state"), config))
    for role in info.relays:
        object_id = "relay_" + role
        config = _common(info, object_id, "Door relay" if role == "door" else role + " relay")
        config.update({"state_topic": t["state"], "device_class": "lock",
                       "value_template": "{{ 'ON' if value_json.door.relays.%s == 'open' "
                                         "else 'OFF' }}" % role,
                       "payload_on": "ON", "payload_off": "OFF"})
        out.append((config_topic(info, "binary_sensor", object_id), config))
    if info.contact:
        config = _common(info, "door_contact", "Door")
        config.update({"state_topic": t["state"], "device_class": "door",
                       "value_template": "{{ 'ON' if value_json.door.contact == 'open' "
                                         "else 'OFF' }}",
                       "payload_on": "ON", "payload_off": "OFF"})
        out.append((config_topic(info, "binary_sensor", "door_contact"), config))
    if info.contact:
        config = _common(info, "door_held_open", "Door held open")
        config.update({"state_topic": t["state"], "device_class": "problem",
                       "value_template": "{{ 'ON' if value_json.door.held_open else 'OFF' }}",
                       "payload_on": "ON", "payload_off": "OFF"})
        out.append((config_topic(info, "binary_sensor", "door_held_open"), config))
    if info.door_command:
        config = _common(info, "open_door", "Open door")
        config.update({"command_topic": t["door_open"], "payload_press": PRESS})
        out.append((config_topic(info, "button", "open_door"), config))
    if info.camera:
        config = _common(info, "snapshot", "Last ring")
        config.update({"image_topic": t["snapshot"], "content_type": "image/jpeg"})
        out.append((config_topic(info, "image", "snapshot"), config))
    return out
