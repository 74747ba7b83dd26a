"""Board-file validation: every shipped board loads; every bad field is named in the error."""

import copy

import pytest

from hal.board import BOARDS_DIR, HEADER_40PIN, BoardError, load_board, parse_board

PI_BOARDS = ["rpi-zero2w", "rpi3", "rpi4", "rpi5"]

GOOD_PI = {
    "schema_version": 1,
    "name": "test-pi",
    "kind": "pi",
    "header": "40pin",
    "buttons": {"call": {"pin": 17}, "hangup": {"pin": 27, "hold_ms": 500}},
    "leds": {"status": {"pin": 24}},
    "relays": {"door": {"pin": 23, "active_low": True}},
    "inputs": {"door_contact": {"pin": 22}},
    "audio": {"capture": "default", "playback": "default", "rate": 48000},
}


def problems_of(data):
    with pytest.raises(BoardError) as caught:
        parse_board(data, "test.toml")
    return caught.value.problems


def changed(**sections):
    data = copy.deepcopy(GOOD_PI)
    for key, value in sections.items():
        data[key] = value
    return data


@pytest.mark.parametrize("name", PI_BOARDS + ["pc-sim"])
def test_shipped_boards_validate(name):
    spec = load_board(name)
    assert spec.name == name
    assert "call" in spec.buttons and "status" in spec.leds and "door" in spec.relays


def test_every_board_file_is_listed_and_valid():
    assert sorted(p.stem for p in BOARDS_DIR.glob("*.toml")) == sorted(PI_BOARDS + ["pc-sim"])


def test_pi_boards_share_one_layout_clear_of_i2c_and_i2s():
    layouts = []
    for name in PI_BOARDS:
        spec = load_board(name)
        pins = {f"{group}.{role}": device.pin
                for group in ("buttons", "leds", "relays", "inputs")
                for role, device in getattr(spec, group).items()}
        layouts.append(pins)
        assert not set(pins.values()) & {2, 3, 18, 19, 20, 21}
    assert all(layout == layouts[0] for layout in layouts)


def test_good_board_parses_with_defaults():
    spec = parse_board(GOOD_PI)
    call = spec.buttons["call"]
    assert (call.pin, call.active_low, call.pull_up, call.bounce_ms, call.hold_ms) == (
        17, True, True, 50, 2000)
    assert spec.buttons["hangup"].hold_ms == 500
    assert spec.relays["door"].active_low is True
    assert spec.leds["status"].active_low is False
    assert spec.audio.rate == 48000


def test_load_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text((BOARDS_DIR / "rpi4.toml").read_text())
    assert load_board(str(path)).name == "rpi4"


def test_unknown_board_name_lists_shipped_boards():
    with pytest.raises(BoardError) as caught:
        load_board("no-such-board")
    assert "rpi4" in str(caught.value) and "not found" in str(caught.value)


def test_invalid_toml_is_a_board_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("name = \n")
    with pytest.raises(BoardError, match="not valid TOML"):
        load_board(str(path))


def test_unknown_role():
    problems = problems_of(changed(leds={"status": {"pin": 24}, "blinky": {"pin": 25}}))
    assert problems == ["leds.blinky: unknown role "
                        "(expected one of status, call, door, gate, door2, aux)"]


def test_call_button_roles_for_several_flats():
    spec = parse_board(changed(buttons={"call": {"pin": 17}, "call2": {"pin": 6},
                                        "call12": {"pin": 13}}))
    assert set(spec.buttons) == {"call", "call2", "call12"}
    for bad in ("call1", "call02", "callx"):
        problems = problems_of(changed(buttons={"call": {"pin": 17}, bad: {"pin": 6}}))
        assert problems[0].startswith(f"buttons.{bad}: unknown role")


def test_unknown_key_in_device_and_top_level():
    data = changed(buttons={"call": {"pin": 17, "debounce": 10}})
    data["colour"] = "red"
    problems = problems_of(data)
    assert any(p.startswith("colour: unknown key") for p in problems)
    assert any(p.startswith("buttons.call.debounce: unknown key") for p in problems)


def test_pin_used_twice_names_both_fields_and_physical_pin():
    problems = problems_of(changed(leds={"status": {"pin": 17}}))
    assert problems == [
        "leds.status.pin: GPIO 17 (physical pin 11) is already used by buttons.call.pin"]


@pytest.mark.parametrize("pin", [28, 40, -1])
def test_pin_not_on_header(pin):
    problems = problems_of(changed(relays={"door": {"pin": pin}}))
    assert problems == [f"relays.door.pin: GPIO {pin} is not on the 40-pin header; "
                        "use BCM GPIO 2-27"]


def test_eeprom_pins_are_refused_with_their_physical_pin():
    problems = problems_of(changed(relays={"door": {"pin": 0}}))
    assert problems == ["relays.door.pin: GPIO 0 (physical pin 27) is reserved for the HAT ID "
                        "EEPROM; use BCM GPIO 2-27"]


def test_header_map_covers_gpio_2_to_27_on_distinct_physical_pins():
    assert sorted(HEADER_40PIN) == list(range(2, 28))
    assert len(set(HEADER_40PIN.values())) == 26
    assert HEADER_40PIN[17] == 11 and HEADER_40PIN[21] == 40 and HEADER_40PIN[2] == 3


def test_missing_required_roles():
    data = changed(buttons={"hangup": {"pin": 27}}, leds={}, relays={})
    problems = problems_of(data)
    assert sorted(problems) == ["buttons.call: missing required role",
                                "leds.status: missing required role",
                                "relays.door: missing required role"]


@pytest.mark.parametrize("section,settings,field,wanted", [
    ("buttons", {"call": {"pin": "17"}}, "buttons.call.pin", "an integer"),
    ("buttons", {"call": {"pin": 17, "pull_up": 1}}, "buttons.call.pull_up", "true or false"),
    ("buttons", {"call": {"pin": 17, "hold_ms": True}}, "buttons.call.hold_ms", "an integer"),
    ("leds", {"status": {"pin": 24, "active_low": "no"}}, "leds.status.active_low",
     "true or false"),
    ("audio", {"capture": 1, "playback": "default", "rate": 48000}, "audio.capture", "a string"),
    ("audio", {"capture": "default", "playback": "default", "rate": 48000.0}, "audio.rate",
     "an integer"),
])
def test_wrong_types_name_the_field(section, settings, field, wanted):
    problems = problems_of(changed(**{section: settings}))
    assert len(problems) == 1
    assert problems[0].startswith(f"{field}: expected {wanted}, got ")


def test_every_problem_is_reported_at_once():
    data = changed(kind="pi", leds={"status": {"pin": 99}}, relays={"door": {"pin": 17}},
                   audio={"capture": "default", "playback": "default", "rate": 22050})
    del data["header"]
    problems = problems_of(data)
    fields = sorted(problem.split(":")[0] for problem in problems)
    assert fields == ["audio.rate", "header", "leds.status.pin", "relays.door.pin"]


def test_top_level_fields():
    data = changed(schema_version=2, kind="arduino")
    del data["name"]
    problems = problems_of(data)
    assert "schema_version: 2 is not supported (expected 1)" in problems
    assert "kind: 'arduino' is not one of pi, sim" in problems
    assert "name: missing" in problems


def test_contradictory_pull_up():
    problems = problems_of(changed(buttons={"call": {"pin": 17, "active_low": False}}))
    assert problems[0].startswith("buttons.call.active_low: false contradicts pull_up = true")
    spec = parse_board(changed(buttons={"call": {"pin": 17, "active_low": False,
                                                 "pull_up": False}}))
    assert spec.buttons["call"].active_low is False


def test_ranges():
    problems = problems_of(changed(buttons={"call": {"pin": 17, "bounce_ms": 5000,
                                                     "hold_ms": 0}}))
    assert sorted(problems) == ["buttons.call.bounce_ms: 5000 is outside 0-1000",
                                "buttons.call.hold_ms: 0 is outside 1-60000"]


def test_audio_section_rules():
    data = changed()
    del data["audio"]
    assert problems_of(data) == ["audio: missing [audio] section (capture, playback, rate)"]
    problems = problems_of(changed(audio={"capture": "", "playback": "default", "rate": 48000,
                                          "volume": 3}))
    assert sorted(p.split(":")[0] for p in problems) == ["audio.capture", "audio.volume"]


def test_sim_boards_have_no_pins_header_or_audio():
    data = {"schema_version": 1, "name": "s", "kind": "sim", "header": "40pin",
            "buttons": {"call": {"pin": 17}}, "leds": {"status": {}}, "relays": {"door": {}},
            "audio": {"capture": "default", "playback": "default", "rate": 8000}}
    problems = problems_of(data)
    assert sorted(p.split(":")[0] for p in problems) == ["audio", "buttons.call.pin", "header"]


def test_wiring_doc_matches_the_shipped_layout():
    wiring = (BOARDS_DIR.parent / "docs" / "WIRING.md").read_text()
    documented = {}
    for line in wiring.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0].count("`") == 2 and cells[1].isdigit():
            group, role = cells[0].split()
            documented[(group, role.strip("`"))] = (int(cells[1]), int(cells[2]))
    spec = load_board("rpi4")
    groups = {"button": spec.buttons, "LED": spec.leds, "relay": spec.relays,
              "input": spec.inputs}
    shipped = {(group, role): device.pin
               for group, devices in groups.items() for role, device in devices.items()}
    for key, pin in shipped.items():
        assert documented[key] == (pin, HEADER_40PIN[pin]), key
    for (_group, _role), (gpio, physical) in documented.items():
        assert HEADER_40PIN[gpio] == physical
    assert len({gpio for gpio, _ in documented.values()}) == len(documented) == 13
