"""Board description files: `boards/NAME.toml` mapping roles to pins.

Code above the HAL never sees a pin number; it asks for the `call` button or the `door` relay, and
the board file says where those are wired.  Every problem in a file is reported at once, one line
per bad field, the way ESPHome names the wrong pin and why.

Schema (``schema_version = 1``)::

    schema_version = 1
    name = "rpi4"                # free text, shown in the web page and logs
    kind = "pi"                  # "pi" (gpiozero + ALSA) or "sim" (in-memory, WAV audio)
    header = "40pin"             # Pi boards only
    description = "..."          # optional

    [buttons.call]               # roles: call (required), call2, call3, ... (more flats), hangup,
                                 # exit (inside: opens the door without a call)
    pin = 17                     # BCM GPIO number, 2-27 (Pi only; sim boards have no pins)
    active_low = true            # default true: the button pulls the pin to ground
    pull_up = true               # default true: use the SoC's internal pull-up
    bounce_ms = 50               # default 50
    hold_ms = 2000               # default 2000: when_held fires after this long

    [leds.status]                # roles: status (required), call, and one per relay role
    pin = 24
    active_low = false           # default false: pin high lights the LED

    [relays.door]                # roles: door (required; the door strike), gate, door2, aux
    pin = 23
    active_low = true            # default false; most opto-isolated relay modules are active-low

    [inputs.door_contact]        # optional; active = contact closed (door shut)
    pin = 22
    pull_up = true               # default true
    active_low = true            # default true

    [audio]                      # Pi boards only (sim boards use --mic / --speaker-dir)
    capture = "plughw:CARD=Device,DEV=0"
    playback = "plughw:CARD=Device,DEV=0"
    rate = 48000                 # the device's native rate: 8000, 16000, 44100 or 48000

    [camera]                     # optional (hal/camera.py); sim boards take --camera instead
    kind = "picamera2"           # "picamera2" (Pi camera modules) or "v4l2" (USB/UVC camera)
    device = "/dev/video0"       # v4l2: the device; picamera2: the camera number ("0")

Public API:
    load_board(name_or_path) -> BoardSpec   name looks in boards/, a path (with / or .toml) is used
    parse_board(data, source) -> BoardSpec  validate an already-decoded TOML table
    BoardError(ValueError)                  .problems: list of "field: message" strings
    BoardSpec, ButtonSpec, LedSpec, RelaySpec, InputSpec, AudioSpec, CameraSpec (frozen records:
                                            keyword construction, equality, hash, repr)
    HEADER_40PIN: {bcm_gpio: physical_pin} for the usable GPIOs 2-27
"""

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 1
# The shipped board files. A plain string: pathlib (and urllib.parse with it) is not imported
# on the way to the REGISTER (issue 14); `BOARDS_DIR` is still a pathlib.Path for callers.
_BOARDS = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "boards")
KINDS = ("pi", "sim")
HEADERS = ("40pin",)
NATIVE_RATES = (8000, 16000, 44100, 48000)

# BCM GPIO number -> physical pin on the 40-pin header (identical on Zero 2 W, 3, 4 and 5).
# GPIO 0/1 (pins 27/28) are reserved for the HAT ID EEPROM and are deliberately absent.
HEADER_40PIN = {
    2: 3, 3: 5, 4: 7, 17: 11, 27: 13, 22: 15, 10: 19, 9: 21, 11: 23, 5: 29, 6: 31, 13: 33,
    19: 35, 26: 37, 14: 8, 15: 10, 18: 12, 23: 16, 24: 18, 25: 22, 8: 24, 7: 26, 12: 32,
    16: 36, 20: 38, 21: 40,
}
EEPROM_PINS = {0: 27, 1: 28}

RELAY_ROLES = ("door", "gate", "door2", "aux")
LED_ROLES = ("status", "call") + RELAY_ROLES  # a relay's LED is lit while it is pulsed
INPUT_ROLES = ("door_contact",)
REQUIRED = {"buttons": ("call",), "leds": ("status",), "relays": ("door",), "inputs": ()}

# Per section: key -> (expected type, default); "pin" is handled separately (Pi only).
# section -> key -> (type, default)
DEVICE_KEYS: dict[str, dict[str, tuple[type, bool | int]]] = {
    "buttons": {"active_low": (bool, True), "pull_up": (bool, True), "bounce_ms": (int, 50),
                "hold_ms": (int, 2000)},
    "leds": {"active_low": (bool, False)},
    "relays": {"active_low": (bool, False)},
    "inputs": {"active_low": (bool, True), "pull_up": (bool, True)},
}
TOP_KEYS = ("schema_version", "name", "kind", "header", "description", "buttons", "leds",
            "relays", "inputs", "audio", "camera")
AUDIO_KEYS = {"capture": str, "playback": str, "rate": int}
CAMERA_KINDS = ("picamera2", "v4l2")  # what a board file may declare (hal/camera.py)
MAX_BOUNCE_MS = 1000
MAX_HOLD_MS = 60000


class BoardError(ValueError):
    """A board file that cannot be used; `problems` holds one "field: message" per bad field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join("  - " + problem for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


class _Spec:
    """A frozen record with keyword construction, value equality and a readable repr: what
    `@dataclass(frozen=True)` gave, written out because building dataclasses costs several ms
    of every start (issue 14; docs/BENCH.md "Start-up"). Subclasses name their `__slots__`
    (construction order) and may give `DEFAULTS`."""

    __slots__: "tuple[str, ...]" = ()
    DEFAULTS: "dict[str, Any]" = {}

    def __init__(self, **values: "Any") -> None:
        for name in self.__slots__:
            if name in values:
                value = values.pop(name)
            elif name in self.DEFAULTS:
                value = self.DEFAULTS[name]
                value = dict(value) if isinstance(value, dict) else value  # never shared
            else:
                raise TypeError(f"{type(self).__name__}: missing {name}")
            object.__setattr__(self, name, value)
        if values:
            raise TypeError(f"{type(self).__name__}: unknown {', '.join(sorted(values))}")

    def __setattr__(self, name: str, value: "Any") -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is frozen: cannot delete {name}")

    def _values(self) -> "tuple[Any, ...]":
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class ButtonSpec(_Spec):
    __slots__ = ("role", "pin", "active_low", "pull_up", "bounce_ms", "hold_ms")
    role: str
    pin: int | None
    active_low: bool
    pull_up: bool
    bounce_ms: int
    hold_ms: int


class LedSpec(_Spec):
    __slots__ = ("role", "pin", "active_low")
    role: str
    pin: int | None
    active_low: bool


class RelaySpec(_Spec):
    __slots__ = ("role", "pin", "active_low")
    role: str
    pin: int | None
    active_low: bool


class InputSpec(_Spec):
    __slots__ = ("role", "pin", "active_low", "pull_up")
    role: str
    pin: int | None
    active_low: bool
    pull_up: bool


class AudioSpec(_Spec):
    __slots__ = ("capture", "playback", "rate")
    capture: str
    playback: str
    rate: int


class CameraSpec(_Spec):
    __slots__ = ("kind", "device")
    DEFAULTS = {"device": ""}
    kind: str  # picamera2, v4l2 (board files); pattern, file (--camera on sim boards)
    device: str


class BoardSpec(_Spec):
    __slots__ = ("name", "kind", "header", "description", "buttons", "leds", "relays", "inputs",
                 "audio", "source", "camera")
    DEFAULTS = {"buttons": {}, "leds": {}, "relays": {}, "inputs": {}, "audio": None,
                "source": "", "camera": None}
    name: str
    kind: str
    header: str | None
    description: str
    buttons: dict
    leds: dict
    relays: dict
    inputs: dict
    audio: AudioSpec | None
    source: str
    camera: CameraSpec | None


SPEC_CLASSES = {"buttons": ButtonSpec, "leds": LedSpec, "relays": RelaySpec, "inputs": InputSpec}


def physical_pin(gpio: int) -> int | None:
    """The header pin number of BCM `gpio` (None when it is not a usable header GPIO)."""
    return HEADER_40PIN.get(gpio)


def is_button_role(role: str) -> bool:
    """`call`, `call2`, `call3`, ... (one per flat), `hangup` and `exit`."""
    if role in ("call", "hangup", "exit"):
        return True
    suffix = role[4:] if role.startswith("call") else ""
    return suffix.isdigit() and not suffix.startswith("0") and int(suffix) >= 2


ROLE_CHECKS = {
    "buttons": (is_button_role, "call, call2, call3, ..., hangup, exit"),
    "leds": (lambda role: role in LED_ROLES, ", ".join(LED_ROLES)),
    "relays": (lambda role: role in RELAY_ROLES, ", ".join(RELAY_ROLES)),
    "inputs": (lambda role: role in INPUT_ROLES, ", ".join(INPUT_ROLES)),
}


def load_board(name_or_path: str, cache_dir: str | None = None) -> "BoardSpec":
    """Read and validate a board file; a bare name means `boards/NAME.toml`. With `cache_dir`
    (the station's state directory) an unchanged file is not parsed again
    (firmware/tomlcache.py); it is validated every time."""
    text = str(name_or_path)
    if "/" in text or text.endswith(".toml"):
        path = text
    else:
        path = os.path.join(_BOARDS, f"{text}.toml")
    if not os.path.isfile(path):
        names = os.listdir(_BOARDS) if os.path.isdir(_BOARDS) else []
        known = ", ".join(sorted(n[:-5] for n in names if n.endswith(".toml"))) or "none"
        raise BoardError(text, [f"board file not found at {path} (shipped boards: {known})"])
    from firmware import tomlcache

    try:
        data = tomlcache.read(path, cache_dir)
    except ValueError as error:  # tomllib.TOMLDecodeError, or bytes that are not UTF-8
        raise BoardError(path, [f"not valid TOML: {error}"]) from None
    return parse_board(data, path)


def __getattr__(name: str) -> "Any":
    """`BOARDS_DIR`: the shipped boards' directory as a pathlib.Path, made when asked for."""
    if name == "BOARDS_DIR":
        import pathlib

        return pathlib.Path(_BOARDS)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def parse_board(data: "dict[str, Any]", source: str = "<board>") -> "BoardSpec":
    """Validate a decoded board table; raise BoardError listing every problem."""
    problems = []
    for key in data:
        if key not in TOP_KEYS:
            problems.append(f"{key}: unknown key (expected one of {', '.join(TOP_KEYS)})")

    version = data.get("schema_version")
    if version is None:
        problems.append("schema_version: missing (this HAL reads schema_version = 1)")
    elif type(version) is not int or version != SCHEMA_VERSION:
        problems.append(f"schema_version: {version!r} is not supported (expected 1)")

    name = _typed(data, "name", str, problems, required=True)
    kind = _typed(data, "kind", str, problems, required=True)
    if kind is not None and kind not in KINDS:
        problems.append(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
        kind = None
    is_pi = kind == "pi"
    description = _typed(data, "description", str, problems) or ""

    header = _typed(data, "header", str, problems)
    if is_pi and "header" not in data:
        problems.append('header: missing (Pi boards need header = "40pin")')
    elif kind == "sim" and "header" in data:
        problems.append("header: simulated boards have no GPIO header; remove it")
    elif header is not None and header not in HEADERS:
        problems.append(f"header: {header!r} is not supported (expected \"40pin\")")

    pins_used: dict[int, str] = {}
    sections = {}
    for section, spec_class in SPEC_CLASSES.items():
        sections[section] = _parse_devices(data, section, spec_class, kind, pins_used, problems)

    audio = _parse_audio(data, kind, problems)
    camera = _parse_camera(data, kind, problems)
    if problems:
        raise BoardError(source, problems)
    return BoardSpec(name=name, kind=kind, header=header, description=description,
                     audio=audio, source=source, camera=camera, **sections)


def _typed(table: "dict[str, Any]", key: str, expected: type, problems: list[str],
           required: bool = False, prefix: str = "") -> "Any":
    """table[key] if it has the expected type; otherwise record why and return None."""
    if key not in table:
        if required:
            problems.append(f"{prefix}{key}: missing")
        return None
    value = table[key]
    # bool is an int subclass in Python; TOML keeps them apart, and so do we.
    if type(value) is not expected:
        problems.append(f"{prefix}{key}: expected {_type_name(expected)}, got {value!r}")
        return None
    return value


def _type_name(expected: type) -> str:
    return {bool: "true or false", int: "an integer", str: "a string"}[expected]


def _parse_devices(data: "dict[str, Any]", section: str, spec_class: type, kind: str | None,
                   pins_used: dict[int, str], problems: list[str]) -> "dict[str, Any]":
    table = data.get(section, {})
    if not isinstance(table, dict):
        problems.append(f"{section}: expected a table like [{section}.<role>], got {table!r}")
        return {}
    role_ok, role_list = ROLE_CHECKS[section]
    devices = {}
    for role, settings in table.items():
        prefix = f"{section}.{role}."
        if not role_ok(role):
            problems.append(f"{section}.{role}: unknown role (expected one of {role_list})")
            continue
        if not isinstance(settings, dict):
            problems.append(f"{section}.{role}: expected a table, got {settings!r}")
            continue
        keys = DEVICE_KEYS[section]
        for key in settings:
            if key != "pin" and key not in keys:
                allowed = ", ".join(("pin",) + tuple(keys))
                problems.append(f"{prefix}{key}: unknown key (expected one of {allowed})")
        values: dict[str, Any] = {}
        for key, (expected, default) in keys.items():
            value = _typed(settings, key, expected, problems, prefix=prefix)
            values[key] = default if value is None else value
        values["pin"] = _parse_pin(settings, prefix, kind, pins_used, problems)
        if section in ("buttons", "inputs") and values["pull_up"] and not values["active_low"]:
            problems.append(f"{prefix}active_low: false contradicts pull_up = true "
                            "(a pulled-up input rests high, so it can only be active-low)")
        if section == "buttons":
            _check_range(values, "bounce_ms", 0, MAX_BOUNCE_MS, prefix, problems)
            _check_range(values, "hold_ms", 1, MAX_HOLD_MS, prefix, problems)
        devices[role] = spec_class(role=role, **values)
    for role in REQUIRED[section]:
        if role not in devices and not (isinstance(table, dict) and role in table):
            problems.append(f"{section}.{role}: missing required role")
    return devices


def _parse_pin(settings: "dict[str, Any]", prefix: str, kind: str | None,
               pins_used: dict[int, str], problems: list[str]) -> int | None:
    if kind == "sim":
        if "pin" in settings:
            problems.append(f"{prefix}pin: simulated boards have no pins; remove it")
        return None
    if kind != "pi":
        return None  # the kind is already reported; pins cannot be judged without it
    pin = _typed(settings, "pin", int, problems, required=True, prefix=prefix)
    if pin is None:
        return None
    if pin in EEPROM_PINS:
        problems.append(f"{prefix}pin: GPIO {pin} (physical pin {EEPROM_PINS[pin]}) is reserved "
                        "for the HAT ID EEPROM; use BCM GPIO 2-27")
        return None
    if pin not in HEADER_40PIN:
        problems.append(f"{prefix}pin: GPIO {pin} is not on the 40-pin header; use BCM GPIO 2-27")
        return None
    where = f"GPIO {pin} (physical pin {HEADER_40PIN[pin]})"
    if pin in pins_used:
        problems.append(f"{prefix}pin: {where} is already used by {pins_used[pin]}pin")
        return None
    pins_used[pin] = prefix
    return pin


def _check_range(values: "dict[str, Any]", key: str, low: int, high: int, prefix: str,
                 problems: list[str]) -> None:
    if not low <= values[key] <= high:
        problems.append(f"{prefix}{key}: {values[key]} is outside {low}-{high}")


def _parse_audio(data: "dict[str, Any]", kind: str | None,
                 problems: list[str]) -> "AudioSpec | None":
    if "audio" not in data:
        if kind == "pi":
            problems.append("audio: missing [audio] section (capture, playback, rate)")
        return None
    table = data["audio"]
    if kind == "sim":
        problems.append("audio: simulated boards take audio from --mic / --speaker-dir; "
                        "remove [audio]")
        return None
    if not isinstance(table, dict):
        problems.append(f"audio: expected a table, got {table!r}")
        return None
    for key in table:
        if key not in AUDIO_KEYS:
            problems.append(f"audio.{key}: unknown key (expected one of {', '.join(AUDIO_KEYS)})")
    values = {key: _typed(table, key, expected, problems, required=True, prefix="audio.")
              for key, expected in AUDIO_KEYS.items()}
    for key in ("capture", "playback"):
        if values[key] == "":
            problems.append(f"audio.{key}: empty ALSA device name (try \"default\")")
            values[key] = None
    if values["rate"] is not None and values["rate"] not in NATIVE_RATES:
        rates = ", ".join(str(rate) for rate in NATIVE_RATES)
        problems.append(f"audio.rate: {values['rate']} is not supported (one of {rates})")
        values["rate"] = None
    if None in values.values():
        return None
    return AudioSpec(**values)


def _parse_camera(data: "dict[str, Any]", kind: str | None,
                  problems: list[str]) -> "CameraSpec | None":
    if "camera" not in data:
        return None
    table = data["camera"]
    if kind == "sim":
        problems.append("camera: simulated boards take their camera from --camera; "
                        "remove [camera]")
        return None
    if not isinstance(table, dict):
        problems.append(f"camera: expected a table, got {table!r}")
        return None
    for key in table:
        if key not in ("kind", "device"):
            problems.append(f"camera.{key}: unknown key (expected one of kind, device)")
    camera_kind = _typed(table, "kind", str, problems, required=True, prefix="camera.")
    device = _typed(table, "device", str, problems, prefix="camera.") or ""
    if camera_kind is not None and camera_kind not in CAMERA_KINDS:
        problems.append(f"camera.kind: {camera_kind!r} is not one of {', '.join(CAMERA_KINDS)}")
        return None
    if camera_kind == "v4l2" and device and not device.startswith("/dev/"):
        problems.append(f"camera.device: {device!r} is not a device path like /dev/video0")
        return None
    return CameraSpec(kind=camera_kind, device=device) if camera_kind is not None else None
