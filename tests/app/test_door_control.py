"""Every door (issue 17), sans-I/O on a fake clock: relays by role with per-relay codes, the door
contact (events, held-open alarm, hang up on close), the exit button, and schedules on the
station's wall clock (a holiday, a change to and from daylight saving time, past midnight).

The wall clock comes in as the runtime computes it (firmware/runtime/localtime.py, zoneinfo):
the fake clock moves the monotonic `now` and the POSIX time together, and the local time fed to
the controller is derived from the POSIX time in the configured zone, as the station does.
"""

import calendar

import pytest

from firmware.app import actions as a
from firmware.app.schedules import LocalTime
from firmware.config import ConfigError, validate
from firmware.runtime.localtime import local_time, zone_problem
from tests.app.harness import (
    CONCIERGE,
    FLAT1,
    FLAT2,
    GUARD,
    ControllerHarness,
    config,
    events,
    of_type,
)

BERLIN = "Europe/Berlin"


def utc(year, month, day, hour, minute=0):
    return calendar.timegm((year, month, day, hour, minute, 0, 0, 0, 0))


class Clocked(ControllerHarness):
    """The harness with a POSIX clock beside the monotonic one, both moved by `advance`."""

    def __init__(self, cfg, epoch):
        self.epoch0 = epoch
        super().__init__(cfg)
        self.t0 = self.t

    @property
    def epoch(self):
        return self.epoch0 + (self.t - self.t0)

    def local(self):
        return local_time(self.epoch, self.ctl._cfg.time.zone)

    def press_at_wall_clock(self, role="call"):
        out = self.do("button_pressed", role, local=self.local())
        out += self.advance(0.1)
        out += self.do("button_released", role)
        return out


GATE_CODES = [{"caller": CONCIERGE, "code": "1234"},
              {"caller": CONCIERGE, "code": "5555", "relay": "gate"},
              {"caller": GUARD, "code": "9876", "relay": "gate"}]


def two_relays(**door):
    return config(relays=[{"role": "gate", "pulse_ms": 1500}],
                  door={"codes": GATE_CODES, **door})


# -- relays ------------------------------------------------------------------------------------
def test_each_code_opens_its_own_relay_with_its_pulse_and_led():
    station = ControllerHarness(two_relays())
    station.answered_call("in1")
    out = station.type_digits("in1", "5555")
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("gate", 1500)]
    assert events(out, "door_open") == [{"by": CONCIERGE, "how": "dtmf", "relay": "gate",
                                         "call_id": "in1", "source": "udp:127.0.0.1:15060"}]
    assert a.SetLed("gate", "on") in out and station.leds["door"] == "off"
    assert station.ctl.snapshot()["door"]["relays"] == {"door": "closed", "gate": "open"}
    out = station.advance(1.6)
    assert a.SetLed("gate", "off") in out
    out = station.type_digits("in1", "1234")
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("door", 3000)]
    assert events(out, "door_open")[0]["relay"] == "door" and station.leds["door"] == "on"


def test_a_code_for_the_gate_does_not_open_the_door_and_the_guard_has_only_the_gate():
    station = ControllerHarness(two_relays())
    station.answered_call("in1", caller=GUARD)
    out = station.type_digits("in1", "9876")
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("gate", 1500)]
    out = station.type_digits("in1", "1234")  # the concierge's code: not the guard's
    assert not of_type(out, a.PulseRelay) and events(out, "code_failed")


def test_a_relay_dropped_from_the_config_while_pulsed_turns_its_led_off():
    station = ControllerHarness(two_relays())
    station.ctl.open_door("web", station.t, relay="gate")
    assert station.drain() and station.leds["gate"] == "on"
    station.do("update_config", config())
    out = station.advance(2.0)
    assert a.SetLed("gate", "off") in out


def test_door_pulse_comes_from_relays_when_listed_else_from_door_pulse_ms():
    cfg = config(relays=[{"role": "door", "pulse_ms": 700}], door={"pulse_ms": 5000})
    station = ControllerHarness(cfg)
    assert station.ctl.open_door("api", station.t) is True
    assert of_type(station.drain(), a.PulseRelay) == [a.PulseRelay("door", 700)]
    station = ControllerHarness(config(door={"pulse_ms": 5000}))
    station.do("open_door", "api")
    assert of_type(station.log, a.PulseRelay) == [a.PulseRelay("door", 5000)]


def test_api_opens_a_named_relay_and_refuses_an_unknown_one():
    station = ControllerHarness(two_relays())
    assert station.ctl.open_door("web", station.t, relay="gate") is True
    out = station.drain()
    assert events(out, "door_open") == [{"by": "web", "how": "api", "relay": "gate"}]
    assert station.ctl.open_door("web", station.t, relay="garage") is False
    assert not station.drain()


def test_a_code_cannot_name_a_relay_that_is_not_configured():
    with pytest.raises(ConfigError) as error:
        config(door={"codes": [{"caller": CONCIERGE, "code": "1234", "relay": "gate"}]})
    assert "door.codes[0].relay" in error.value.errors
    with pytest.raises(ConfigError) as error:
        config(relays=[{"role": "gate", "pulse_ms": 50}])
    assert "relays[0].pulse_ms" in error.value.errors


# -- exit button -------------------------------------------------------------------------------
def test_exit_button_opens_the_door_locally_without_a_call():
    station = ControllerHarness(two_relays())
    out = station.press("exit")
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("door", 3000)]
    assert not of_type(out, a.PlaceCall)
    assert events(out, "door_open") == [{"by": "exit", "how": "button", "relay": "door"}]
    assert a.PlayCue("door_open", None) in out and station.leds["door"] == "on"
    out = station.press("exit")  # within the debounce window: the same press
    assert not of_type(out, a.PulseRelay)


# -- the door contact --------------------------------------------------------------------------
def test_door_contact_logs_opened_and_closed_but_not_its_first_report():
    station = ControllerHarness()
    assert station.do("input_changed", "door_contact", True) == []
    assert station.ctl.snapshot()["door"]["contact"] == "closed"
    out = station.do("input_changed", "door_contact", False)
    assert events(out, "door_opened") == [{}]
    station.advance(4.0)
    out = station.do("input_changed", "door_contact", True)
    assert events(out, "door_closed") == [{"open_s": 4.0}]
    assert station.do("input_changed", "door_contact", True) == []  # no change, no event


def test_held_open_alarm_once_with_blinking_led_until_the_door_closes():
    station = ControllerHarness(config(door={"held_open_alarm_s": 30}))
    station.do("input_changed", "door_contact", True)
    station.do("input_changed", "door_contact", False)
    out = station.advance(29.0)
    assert not events(out, "door_held_open") and station.leds["door"] == "off"
    out = station.advance(1.5)
    assert events(out, "door_held_open") == [{"held_s": 30.0, "alarm_s": 30}]
    assert a.SetLed("door", "blink_fast") in out and station.ctl.snapshot()["door"]["held_open"]
    assert not events(station.advance(120.0), "door_held_open")  # once per opening
    out = station.do("input_changed", "door_contact", True)
    assert events(out, "door_closed") == [{"open_s": 150.5, "alarm": "ended"}]
    assert a.SetLed("door", "off") in out and not station.ctl.snapshot()["door"]["held_open"]
    # a short opening raises nothing
    station.do("input_changed", "door_contact", False)
    out = station.advance(10.0) + station.do("input_changed", "door_contact", True)
    assert not events(out, "door_held_open")


def test_a_door_open_at_start_is_timed_from_the_first_report():
    station = ControllerHarness(config(door={"held_open_alarm_s": 10}))
    station.do("input_changed", "door_contact", False)
    assert events(station.advance(10.5), "door_held_open")


def test_hang_up_when_the_door_closes_after_an_opening():
    station = ControllerHarness(config(door={"hangup_on_close": True}))
    station.do("input_changed", "door_contact", True)
    station.answered_call("in1")
    station.type_digits("in1", "1234")
    assert not of_type(station.do("input_changed", "door_contact", False), a.Hangup)
    out = station.advance(2.0) + station.do("input_changed", "door_contact", True)
    assert of_type(out, a.Hangup) == [a.Hangup("in1")]
    assert "door.hangup_on_close" in events(out, "call")[0]["reason"]


def test_no_hang_up_on_close_without_the_setting_or_without_an_opening_during_the_call():
    station = ControllerHarness(config(door={"hangup_on_close": False}))
    station.do("input_changed", "door_contact", True)
    station.answered_call("in1")
    station.type_digits("in1", "1234")
    station.do("input_changed", "door_contact", False)
    assert not of_type(station.do("input_changed", "door_contact", True), a.Hangup)
    station = ControllerHarness(config(door={"hangup_on_close": True}))
    station.do("input_changed", "door_contact", False)  # open before the call
    station.answered_call("in2")
    station.advance(1.0)
    # a close with no opening during the call (the door was open before it) ends nothing
    assert not of_type(station.do("input_changed", "door_contact", True), a.Hangup)


# -- schedules ---------------------------------------------------------------------------------
SCHEDULES = [
    {"name": "office", "days": ["mon", "tue", "wed", "thu", "fri"], "times": ["08:00-18:00"]},
    {"name": "morning", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
     "times": ["08:00-09:00"]},
    {"name": "night", "days": ["fri"], "times": ["22:00-06:00"]},
    {"name": "holidays", "days": ["holiday"], "times": ["00:00-24:00"]},
]


def scheduled(**changes):
    base = {"time": {"zone": BERLIN, "holidays": ["2026-12-25"]}, "schedules": SCHEDULES,
            "buttons": [{"role": "call", "targets": [CONCIERGE],
                         "schedule_targets": [{"schedule": "morning", "targets": [FLAT2]},
                                              {"schedule": "office", "targets": [FLAT1]}],
                         "quiet": "holidays"}]}
    base.update(changes)
    return config(**base)


def placed_targets(out):
    return [p.targets for p in of_type(out, a.PlaceCall)]


def test_button_rings_by_schedule_across_the_change_to_summer_time():
    # Saturday 28 March 2026, 07:30 UTC = 08:30 CET: "morning" (every day 08:00-09:00)
    station = Clocked(scheduled(), utc(2026, 3, 28, 7, 30))
    assert station.local() == LocalTime("2026-03-28", 5, 8 * 60 + 30)
    assert placed_targets(station.press_at_wall_clock()) == [[FLAT2]]
    station.do("call_failed_to_start", station.placed_id(), "test")
    # 24 hours later on the monotonic clock: Sunday 07:30 UTC is 09:30 CEST (DST began at
    # 01:00 UTC), past the morning; a fixed UTC+1 offset would still say 08:30
    station.advance(24 * 3600)
    assert station.local() == LocalTime("2026-03-29", 6, 9 * 60 + 30)
    out = station.press_at_wall_clock()
    assert placed_targets(out) == [[CONCIERGE]], "Sunday after 09:00: nobody's schedule"
    station.do("call_failed_to_start", station.placed_id(), "test")
    # one hour earlier on the wall clock the next day (06:30 UTC = 08:30 CEST): morning again
    station.advance(23 * 3600)
    assert station.local().minute == 8 * 60 + 30
    assert placed_targets(station.press_at_wall_clock()) == [[FLAT2]]


def test_back_to_winter_time_the_same_wall_clock_needs_one_hour_more():
    # Monday 26 October 2026 (CET again since Sunday 01:00 UTC): 07:59 UTC = 08:59 local
    station = Clocked(scheduled(), utc(2026, 10, 23, 7, 5))  # Friday 09:05 CEST
    out = station.press_at_wall_clock()
    assert placed_targets(out) == [[FLAT1]], "Friday 09:05: office"
    station.do("call_failed_to_start", station.placed_id(), "test")
    station.advance(utc(2026, 10, 26, 7, 59) - station.epoch)
    assert station.local() == LocalTime("2026-10-26", 0, 8 * 60 + 59)
    assert placed_targets(station.press_at_wall_clock()) == [[FLAT2]]


def test_a_holiday_turns_weekday_schedules_off_and_quiet_hours_play_unavailable():
    # Friday 25 December 2026, 10:00 CET: a weekday in "office", but a listed holiday
    station = Clocked(scheduled(), utc(2026, 12, 25, 9, 0))
    out = station.press_at_wall_clock()
    assert not of_type(out, a.PlaceCall)
    assert a.PlayCue("unavailable", None) in out
    assert events(out, "button")[0]["outcome"] == "quiet"
    # the next day (no holiday, Saturday): no office, no quiet: the default target
    station.advance(24 * 3600)
    assert placed_targets(station.press_at_wall_clock()) == [[CONCIERGE]]


def test_the_day_before_a_holiday_is_an_ordinary_office_day():
    station = Clocked(scheduled(), utc(2026, 12, 24, 9, 0))  # Thursday 10:00 CET
    assert placed_targets(station.press_at_wall_clock()) == [[FLAT1]]


def test_auto_answer_only_within_its_schedule():
    cfg = scheduled(answer={"mode": "auto", "allow": [CONCIERGE, GUARD], "schedule": "office"})
    station = Clocked(cfg, utc(2026, 12, 22, 9, 0))  # Tuesday 10:00 CET
    out = station.incoming("in1", local=station.local())
    assert a.Answer("in1") in out
    station.do("call_ended", "in1", "bye", None)
    station.advance(10 * 3600)  # 20:00 local
    out = station.incoming("in2", local=station.local())
    assert of_type(out, a.Reject) == [a.Reject("in2", 480)]
    assert "answer.schedule" in events(out, "call")[0]["reason"]


def test_door_code_valid_only_in_its_schedule_even_past_midnight():
    cfg = scheduled(door={"codes": [{"caller": GUARD, "code": "9876", "schedule": "night"}]})
    # Friday 18 December 2026, 23:00 CET: "night" (fri 22:00-06:00)
    station = Clocked(cfg, utc(2026, 12, 18, 22, 0))
    station.incoming("in1", caller=GUARD, local=station.local())
    station.do("call_established", "in1")
    out = []
    for digit in "9876":
        out += station.do("dtmf", "in1", digit, local=station.local())
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("door", 3000)]
    # Saturday 05:30: still the Friday night range
    station.advance(6.5 * 3600)
    assert station.local() == LocalTime("2026-12-19", 5, 5 * 60 + 30)
    out = []
    for digit in "9876":
        out += station.do("dtmf", "in1", digit, local=station.local())
    assert of_type(out, a.PulseRelay) == [a.PulseRelay("door", 3000)]
    # Saturday 12:00: outside; the code is not usable, the entry is an attempt that fails
    station.advance(6.5 * 3600)
    out = []
    for digit in "9876#":
        out += station.do("dtmf", "in1", digit, local=station.local())
    assert not of_type(out, a.PulseRelay)


def test_without_a_wall_clock_yet_no_named_schedule_is_active():
    station = ControllerHarness(scheduled())
    out = station.press()  # no local time given: only the unscheduled targets
    assert placed_targets(out) == [[CONCIERGE]]


def test_local_time_is_kept_for_its_minute_and_zone_only():
    # issue 14: the station asks once per input; the answer holds for its UTC minute
    before_dst = utc(2026, 3, 29, 0, 59)
    first = local_time(before_dst + 10, BERLIN)
    assert local_time(before_dst + 50, BERLIN) is first
    assert local_time(before_dst + 60, BERLIN) == LocalTime("2026-03-29", 6, 180)  # DST began
    assert local_time(before_dst + 50, "UTC") == LocalTime("2026-03-29", 6, 59)


def test_local_time_conversion_and_zone_checks():
    assert local_time(utc(2026, 3, 29, 0, 59), BERLIN) == LocalTime("2026-03-29", 6, 119)
    assert local_time(utc(2026, 3, 29, 1, 0), BERLIN) == LocalTime("2026-03-29", 6, 180)
    assert local_time(utc(2026, 10, 25, 0, 30), BERLIN) == LocalTime("2026-10-25", 6, 150)
    assert local_time(utc(2026, 10, 25, 1, 30), BERLIN) == LocalTime("2026-10-25", 6, 150)
    assert local_time(utc(2026, 10, 25, 1, 30), "UTC") == LocalTime("2026-10-25", 6, 90)
    assert zone_problem(BERLIN) is None and zone_problem("UTC") is None
    assert "unknown time zone" in zone_problem("Mars/Olympus_Mons")
    assert "IANA" in zone_problem("../etc/passwd")


@pytest.mark.parametrize("changes, field", [
    ({"time": {"zone": "Nowhere/Town"}}, "time.zone"),
    ({"time": {"holidays": ["2026-02-30"]}}, "time.holidays[0]"),
    ({"schedules": [{"name": "x", "days": ["monday"], "times": ["08:00-09:00"]}]},
     "schedules[0].days"),
    ({"schedules": [{"name": "x", "days": ["mon"], "times": ["8-9"]}]}, "schedules[0].times[0]"),
    ({"schedules": [{"name": "x", "days": ["mon"], "times": ["09:00-09:00"]}]},
     "schedules[0].times[0]"),
    ({"schedules": [{"name": "x", "days": ["mon"], "times": ["24:00-06:00"]}]},
     "schedules[0].times[0]"),
    ({"answer": {"schedule": "office"}}, "answer.schedule"),
    ({"buttons": [{"role": "call", "quiet": "night"}]}, "buttons[0].quiet"),
    ({"buttons": [{"role": "call", "schedule_targets": [{"schedule": "x"}]}]},
     "buttons[0].schedule_targets[0]"),
    ({"door": {"codes": [{"caller": CONCIERGE, "code": "1234", "schedule": "x"}]}},
     "door.codes[0].schedule"),
    ({"door": {"held_open_alarm_s": -1}}, "door.held_open_alarm_s"),
    ({"buttons": [{"role": "exit", "targets": [FLAT1]}]}, "buttons[0].role"),
    ({"relays": [{"role": "gate", "pulse_ms": 1000}, {"role": "gate", "pulse_ms": 1000}]},
     "relays[1].role"),
])
def test_bad_door_control_settings_are_named(changes, field):
    with pytest.raises(ConfigError) as error:
        validate(changes)
    assert field in error.value.errors, error.value.errors


def test_door_control_settings_come_back_unchanged_from_their_dict_form():
    cfg = scheduled(relays=[{"role": "gate", "pulse_ms": 1500}],
                    door={"codes": GATE_CODES, "hangup_on_close": True,
                          "held_open_alarm_s": 90})
    assert validate(cfg.to_dict()) == cfg
    assert cfg.door.codes[1].relay == "gate" and cfg.door.codes[0].to_dict() == {
        "caller": CONCIERGE, "code": "1234"}


def test_codes_sent_back_redacted_keep_their_own_secret_per_relay():
    from firmware.config import redacted, unredact

    cfg = two_relays()
    shown = redacted(cfg)
    assert shown["door"]["codes"][1] == {"caller": CONCIERGE, "code": "(set)", "relay": "gate"}
    back = validate(unredact(shown, cfg))
    assert [(c.caller, c.relay, c.code) for c in back.door.codes] == [
        (CONCIERGE, "door", "1234"), (CONCIERGE, "gate", "5555"), (GUARD, "gate", "9876")]
