"""firmware/app/schedules.py on its own (portable: also run under MicroPython): which profile is
active at a local wall-clock time, holidays, ranges past midnight, dates across month and year
ends. The controller's use of it, and the time zone, are in test_door_control.py."""

from firmware.app.schedules import LocalTime, Schedules, previous_date
from firmware.settings import ScheduleConfig, TimeConfig

PROFILES = [
    ScheduleConfig("office", ["mon", "tue", "wed", "thu", "fri"], ["08:00-12:30", "13:30-18:00"]),
    ScheduleConfig("night", ["fri"], ["22:00-06:00"]),
    ScheduleConfig("holidays", ["holiday"], ["00:00-24:00"]),
    ScheduleConfig("new_year", ["holiday"], ["22:00-02:00"]),
]
HOLIDAYS = ["2026-12-25", "2027-01-01"]


def schedules():
    return Schedules(TimeConfig("Europe/Berlin", HOLIDAYS), PROFILES)


def at(date, weekday, hour, minute=0):
    return LocalTime(date, weekday, hour * 60 + minute)


def test_weekday_ranges_start_included_end_excluded_with_a_lunch_break():
    s = schedules()
    assert s.active("office", at("2026-12-22", 1, 8))
    assert s.active("office", at("2026-12-22", 1, 12, 29))
    assert not s.active("office", at("2026-12-22", 1, 12, 30))
    assert s.active("office", at("2026-12-22", 1, 13, 30))
    assert not s.active("office", at("2026-12-22", 1, 18))
    assert not s.active("office", at("2026-12-26", 5, 10))  # Saturday


def test_a_holiday_is_no_weekday():
    s = schedules()
    assert not s.active("office", at("2026-12-25", 4, 10))  # Friday, but Christmas
    assert s.active("holidays", at("2026-12-25", 4, 10))
    assert not s.active("holidays", at("2026-12-24", 3, 23, 59))


def test_past_midnight_belongs_to_the_day_it_started():
    s = schedules()
    assert s.active("night", at("2026-12-18", 4, 22))  # Friday 22:00
    assert s.active("night", at("2026-12-19", 5, 5, 59))  # Saturday 05:59
    assert not s.active("night", at("2026-12-19", 5, 6))
    assert not s.active("night", at("2026-12-18", 4, 5))  # Friday morning: Thursday's night
    assert not s.active("night", at("2026-12-25", 4, 23))  # Christmas Friday is a holiday


def test_past_midnight_across_a_year_end_from_a_holiday():
    s = schedules()
    # 1 January 2027 is a holiday: its 22:00-02:00 range runs into 2 January
    assert s.active("new_year", at("2027-01-01", 4, 23))
    assert s.active("new_year", at("2027-01-02", 5, 1, 59))
    # 31 December is no holiday here: no range into the early hours of 1 January from it
    assert not s.active("new_year", at("2027-01-01", 4, 1))


def test_unnamed_unknown_and_without_a_clock():
    s = schedules()
    assert s.active("", None) and s.active("", at("2026-12-22", 1, 3))
    assert not s.active("office", None)
    assert not s.active("nope", at("2026-12-22", 1, 10))
    assert s.names() == ["holidays", "new_year", "night", "office"]


def test_previous_date():
    assert previous_date("2026-03-01") == "2026-02-28"
    assert previous_date("2024-03-01") == "2024-02-29"
    assert previous_date("2000-03-01") == "2000-02-29"
    assert previous_date("2100-03-01") == "2100-02-28"
    assert previous_date("2027-01-01") == "2026-12-31"
    assert previous_date("2026-05-01") == "2026-04-30"
    assert previous_date("2026-12-25") == "2026-12-24"
