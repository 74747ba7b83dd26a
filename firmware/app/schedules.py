"""Named time profiles ([[schedules]]) on the station's wall clock (sans-I/O, portable).

The controller never reads a clock: the runtime gives it the local time in the station's zone
(`[time] zone`, converted in firmware/runtime/localtime.py) as a `LocalTime`: the date, the day of
the week and the minute of the day. A change to or from daylight saving time is the runtime's
business (it only changes which LocalTime a moment maps to); a schedule is written, and read, in
local wall-clock time.

A schedule is active at a LocalTime when one of its `times` ranges ("HH:MM-HH:MM", start
included, end excluded, "24:00" for the end of the day) holds the minute on one of its `days`.
A day is its weekday name ("mon".."sun"), except a date listed in `[time] holidays`, which is the
day "holiday" and no weekday: a weekday profile is off on a holiday unless it lists "holiday". A
range whose end comes before its start runs past midnight: the part after midnight belongs to the
day it started on (a "fri" 22:00-06:00 range covers Saturday until 06:00).

Public API
    LocalTime(date, weekday, minute)   date "YYYY-MM-DD"; weekday 0 = Monday; minute 0-1439
    Schedules(time_cfg, schedules)     firmware.settings TimeConfig and [ScheduleConfig]
        .active(name, local) -> bool   name "" is always active; an unknown name, or no
                                       local time yet (None), never
        .names() -> list of the schedule names
"""

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HOLIDAY = "holiday"
DAY_MINUTES = 24 * 60

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing only: never imported at run time
    from firmware.settings import ScheduleConfig, TimeConfig


class LocalTime:
    __slots__ = ("date", "weekday", "minute")

    def __init__(self, date: str, weekday: int, minute: int) -> None:
        self.date = date
        self.weekday = weekday
        self.minute = minute

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalTime) and (self.date, self.weekday, self.minute) == (
            other.date, other.weekday, other.minute)

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __repr__(self) -> str:
        return "LocalTime(%s %s %02d:%02d)" % (self.date, DAYS[self.weekday], self.minute // 60,
                                               self.minute % 60)


def previous_date(date: str) -> str:
    """The day before "YYYY-MM-DD" (Gregorian)."""
    year, month, day = int(date[:4]), int(date[5:7]), int(date[8:])
    if day > 1:
        return "%04d-%02d-%02d" % (year, month, day - 1)
    if month == 1:
        return "%04d-12-31" % (year - 1)
    month -= 1
    lengths = (31, 29 if _leap(year) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    return "%04d-%02d-%02d" % (year, month, lengths[month - 1])


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def parse_range(text: str) -> "tuple[int, int]":
    """'HH:MM-HH:MM' (validated by firmware/config.py) → (start, end) minutes."""
    start, _, end = text.partition("-")
    values = []
    for part in (start, end):
        hour, _, minute = part.strip().partition(":")
        values.append(int(hour) * 60 + int(minute))
    return values[0], values[1]


class _Profile:
    __slots__ = ("days", "ranges")

    def __init__(self, days: "list[str]", ranges: "list[tuple[int, int]]") -> None:
        self.days = days
        self.ranges = ranges


class Schedules:
    def __init__(self, time_cfg: "TimeConfig", schedules: "list[ScheduleConfig]") -> None:
        self._holidays = set(time_cfg.holidays)
        self._profiles: dict[str, _Profile] = {}
        for entry in schedules:
            self._profiles[entry.name] = _Profile(list(entry.days),
                                                  [parse_range(t) for t in entry.times])

    def names(self) -> "list[str]":
        return sorted(self._profiles)

    def _day(self, date: str, weekday: int) -> str:
        return HOLIDAY if date in self._holidays else DAYS[weekday]

    def active(self, name: str, local: "LocalTime | None") -> bool:
        if not name:
            return True
        profile = self._profiles.get(name)
        if profile is None or local is None:
            return False
        today = self._day(local.date, local.weekday)
        yesterday = self._day(previous_date(local.date), (local.weekday + 6) % 7)
        for start, end in profile.ranges:
            if start < end:
                if today in profile.days and start <= local.minute < end:
                    return True
            else:  # past midnight: from start today, or until end after yesterday's start
                if today in profile.days and local.minute >= start:
                    return True
                if yesterday in profile.days and local.minute < end:
                    return True
        return False
