"""hal.pi GPIO devices under gpiozero's MockFactory (no Pi needed)."""

import os
import threading
import time

import pytest
from gpiozero.pins.mock import MockFactory

import hal
from hal.board import load_board, parse_board

WAIT_S = 3.0  # generous bound for background-thread events


@pytest.fixture
def factory():
    mock = MockFactory()
    yield mock
    mock.reset()


@pytest.fixture
def board(factory):
    opened = hal.open_board("rpi4", pin_factory=factory)
    yield opened
    opened.close()


def wait_until(predicate, timeout=WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_open_board_gives_role_named_devices(board):
    assert set(board.buttons) == {"call", "hangup", "exit"}
    assert set(board.leds) == {"status", "call", "door"}
    assert set(board.relays) == {"door", "gate"}
    assert set(board.inputs) == {"door_contact"}
    assert board.snapshot() == {
        "buttons": {"call": False, "hangup": False, "exit": False},
        "leds": {"status": "off", "call": "off", "door": "off"},
        "relays": {"door": "closed", "gate": "closed"},
        "inputs": {"door_contact": False},
    }


def test_press_and_release_fire_callbacks(board, factory):
    pin = factory.pin(17)
    assert pin.bounce == pytest.approx(0.05)  # bounce_ms reaches the pin driver
    pressed, released = threading.Event(), threading.Event()
    button = board.buttons["call"]
    button.when_pressed = pressed.set
    button.when_released = released.set
    pin.drive_low()
    assert pressed.wait(WAIT_S)
    assert button.is_pressed and not released.is_set()
    pin.drive_high()
    assert released.wait(WAIT_S)
    assert not button.is_pressed


def test_hold_fires_when_held(factory):
    spec = parse_board({
        "schema_version": 1, "name": "t", "kind": "pi", "header": "40pin",
        "buttons": {"call": {"pin": 17, "hold_ms": 100}}, "leds": {"status": {"pin": 24}},
        "relays": {"door": {"pin": 23}},
        "audio": {"capture": "default", "playback": "default", "rate": 48000},
    })
    board = hal.open_board(spec, pin_factory=factory)
    try:
        held = threading.Event()
        board.buttons["call"].when_held = held.set
        started = time.monotonic()
        factory.pin(17).drive_low()
        assert held.wait(WAIT_S)
        assert time.monotonic() - started >= 0.09
    finally:
        board.close()


def test_short_press_is_not_a_hold(board, factory):
    held = threading.Event()
    board.buttons["call"].when_held = held.set
    factory.pin(17).drive_low()
    factory.pin(17).drive_high()
    assert not held.wait(0.3)


def test_relay_pulse_is_active_low_and_ends_after_the_pulse(board, factory):
    pin = factory.pin(23)
    relay = board.relays["door"]
    assert pin.state == 1  # rpi4's relay module is active-low: idle is high
    started = time.monotonic()
    relay.pulse(150)
    assert pin.state == 0 and relay.is_active and relay.state == "open"
    assert wait_until(lambda: pin.state == 1)
    elapsed = time.monotonic() - started
    assert 0.14 <= elapsed < 1.5
    assert not relay.is_active and board.snapshot()["relays"]["door"] == "closed"


def test_relay_on_off_and_new_pulse_cancels_old(board, factory):
    pin = factory.pin(23)
    relay = board.relays["door"]
    relay.pulse(100)
    relay.on()  # the pending release must not end a deliberate on()
    time.sleep(0.25)
    assert relay.is_active and pin.state == 0
    relay.off()
    assert pin.state == 1
    with pytest.raises(ValueError):
        relay.pulse(0)
    with pytest.raises(ValueError):
        relay.pulse(600000)


def test_close_releases_relay(factory):
    board = hal.open_board("rpi4", pin_factory=factory)
    board.relays["door"].on()
    board.close()
    assert factory.pin(23).function == "input"  # gpiozero released it after switching off


def test_led_patterns_drive_the_pin(board, factory):
    pin = factory.pin(24)
    led = board.leds["status"]
    led.set_pattern("on")
    assert pin.state == 1 and led.pattern == "on"
    led.set_pattern("off")
    assert pin.state == 0
    pin.clear_states()
    led.set_pattern("blink_fast")
    assert wait_until(lambda: len(pin.states) >= 5)
    toggles = [state.state for state in pin.states[1:5]]
    assert toggles == [True, False, True, False]
    led.set_pattern("off")
    assert pin.state == 0 and led.pattern == "off"
    with pytest.raises(ValueError):
        led.set_pattern("breathe")


def test_led_flash_is_a_single_short_flash(board, factory):
    pin = factory.pin(25)
    led = board.leds["call"]
    pin.clear_states()
    led.set_pattern("flash")
    assert led.pattern == "flash"
    assert wait_until(lambda: led.pattern == "off" and pin.state == 0 and len(pin.states) >= 3)
    time.sleep(0.3)
    assert [s.state for s in pin.states] == [False, True, False]


def test_door_contact_input(board, factory):
    contact = board.inputs["door_contact"]
    closed = threading.Event()
    contact.when_activated = closed.set
    factory.pin(22).drive_low()  # reed contact closes to ground
    assert closed.wait(WAIT_S)
    assert contact.is_active


def test_door_contact_opens_and_closes_by_role(board, factory):
    contact = board.inputs["door_contact"]
    changes = []
    contact.when_activated = lambda: changes.append("closed")
    contact.when_deactivated = lambda: changes.append("opened")
    pin = factory.pin(22)
    pin.drive_low()
    assert wait_until(lambda: changes == ["closed"])
    time.sleep(0.08)  # past the contact's 50 ms debounce
    pin.drive_high()  # the reed contact opens: the door is open
    assert wait_until(lambda: changes == ["closed", "opened"])
    assert not contact.is_active


def test_exit_button_and_gate_relay_by_role(board, factory):
    pressed = threading.Event()
    board.buttons["exit"].when_pressed = pressed.set
    factory.pin(16).drive_low()  # the exit push inside, GPIO 16 (pin 36)
    assert pressed.wait(WAIT_S)
    gate = factory.pin(12)  # the gate relay module, active-low
    assert gate.state == 1
    board.relays["gate"].pulse(80)
    assert gate.state == 0 and board.relays["gate"].state == "open"
    assert wait_until(lambda: gate.state == 1)
    assert board.relays["door"].state == "closed"


def test_external_pull_resistor_button(factory):
    spec = parse_board({
        "schema_version": 1, "name": "t", "kind": "pi", "header": "40pin",
        "buttons": {"call": {"pin": 17, "pull_up": False, "active_low": False}},
        "leds": {"status": {"pin": 24}}, "relays": {"door": {"pin": 23}},
        "audio": {"capture": "default", "playback": "default", "rate": 48000},
    })
    board = hal.open_board(spec, pin_factory=factory)
    try:
        pressed = threading.Event()
        board.buttons["call"].when_pressed = pressed.set
        factory.pin(17).drive_high()  # active-high button with an external pull-down
        assert pressed.wait(WAIT_S)
    finally:
        board.close()


def test_mic_option_is_refused_for_pi_boards(factory):
    with pytest.raises(hal.BoardError, match="simulated boards only"):
        hal.open_board(load_board("rpi4"), pin_factory=factory, mic="x.wav")


def _wakeups_of_other_threads(seconds):
    """Voluntary context switches of this process's threads other than the caller's, summed
    over `seconds` (Linux: /proc/self/task/*/status)."""
    import os

    def switches():
        total = {}
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/status") as status:
                    for line in status:
                        if line.startswith("voluntary_ctxt_switches:"):
                            total[task] = int(line.split()[1])
            except FileNotFoundError:
                pass  # a thread that ended meanwhile
        total.pop(str(threading.get_native_id()), None)
        return total

    before = switches()
    time.sleep(seconds)
    after = switches()
    return sum(count - before.get(task, 0) for task, count in after.items())


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="needs Linux /proc")
def test_an_idle_board_has_no_thread_waking_periodically(factory):
    """Issue 14: gpiozero's Button polls for a hold 10 times a second forever; the board's
    buttons time the hold themselves, so an idle board (three buttons) sleeps."""
    opened = hal.open_board("rpi4", pin_factory=factory)
    try:
        assert _wakeups_of_other_threads(1.0) <= 3
    finally:
        opened.close()


def test_a_hold_is_reported_once_and_a_new_press_restarts_it(factory):
    spec = parse_board({
        "schema_version": 1, "name": "t", "kind": "pi", "header": "40pin",
        "buttons": {"call": {"pin": 17, "hold_ms": 150, "bounce_ms": 0}},
        "leds": {"status": {"pin": 24}}, "relays": {"door": {"pin": 23}},
        "audio": {"capture": "default", "playback": "default", "rate": 48000},
    })
    board = hal.open_board(spec, pin_factory=factory)
    try:
        held = []
        board.buttons["call"].when_held = lambda: held.append(time.monotonic())
        pin = factory.pin(17)
        pin.drive_low()
        time.sleep(0.1)
        pin.drive_high()  # released before the hold: nothing
        pin.drive_low()
        pressed_again = time.monotonic()
        assert wait_until(lambda: held)
        time.sleep(0.4)
        assert len(held) == 1 and held[0] - pressed_again >= 0.14
        pin.drive_high()
        assert not board.buttons["call"].is_pressed
    finally:
        board.close()
