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

Public API:
    load_board(name_or_path) -> BoardSpec   name looks in boards/, a path (with / or .toml) is used
    parse_board(data, source) -> BoardSpec  validate an already-decoded TOML table
    BoardError(ValueError)                  .problems: list of "field: message" strings
    BoardSpec, ButtonSpec, LedSpec, RelaySpec, InputSpec, AudioSpec (frozen dataclasses)
    HEADER_40PIN: {bcm_gpio: physical_pin} for the usable GPIOs 2-27
"""

import pathlib
import tomllib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any

SCHEMA_VERSION = 1
BOARDS_DIR = pathlib.Path(__file__).resolve().parent.parent / "boards"
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
            "relays", "inputs", "audio")
AUDIO_KEYS = {"capture": str, "playback": str, "rate": int}
MAX_BOUNCE_MS = 1000
MAX_HOLD_MS = 60000


class BoardError(ValueError):
    """A board file that cannot be used; `problems` holds one "field: message" per bad field."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = list(problems)
        lines = "\n".join("  - " + problem for problem in self.problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class ButtonSpec:
    role: str
    pin: int | None
    active_low: bool
    pull_up: bool
    bounce_ms: int
    hold_ms: int


@dataclass(frozen=True)
class LedSpec:
    role: str
    pin: int | None
    active_low: bool


@dataclass(frozen=True)
class RelaySpec:
    role: str
    pin: int | None
    active_low: bool


@dataclass(frozen=True)
class InputSpec:
    role: str
    pin: int | None
    active_low: bool
    pull_up: bool


@dataclass(frozen=True)
class AudioSpec:
    capture: str
    playback: str
    rate: int


@dataclass(frozen=True)
class BoardSpec:
    name: str
    kind: str
    header: str | None
    description: str
    buttons: dict = field(default_factory=dict)
    leds: dict = field(default_factory=dict)
    relays: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    audio: AudioSpec | None = None
    source: str = ""


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


def load_board(name_or_path: str) -> "BoardSpec":
    """Read and validate a board file; a bare name means `boards/NAME.toml`."""
    text = str(name_or_path)
    if "/" in text or text.endswith(".toml"):
        path = pathlib.Path(text)
    else:
        path = BOARDS_DIR / f"{text}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))) or "none"
        raise BoardError(text, [f"board file not found at {path} (shipped boards: {known})"])
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BoardError(str(path), [f"not valid TOML: {error}"]) from None
    return parse_board(data, str(path))


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
    if problems:
        raise BoardError(source, problems)
    return BoardSpec(name=name, kind=kind, header=header, description=description,
                     audio=audio, source=source, **sections)


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
