"""The station's wall clock in its time zone (`[time] zone`), for the controller's schedules.

The one module that imports `zoneinfo` (loaded with the first zone other than UTC): the
controller is sans-I/O and never reads a clock; the runtime hands it the local time as an input,
a `firmware.app.schedules.LocalTime` built here from the system clock (`time.time()`, UTC, which
NTP keeps right) and the zone's rules, so a change to or from daylight saving time moves the
local time by the zone's offset and nothing else.

    local_time(epoch, zone) -> LocalTime       epoch: POSIX seconds; zone: an IANA name
    zone_problem(zone) -> str | None           None when the zone can be used (config checks)
"""

import datetime

from firmware.app.schedules import LocalTime

_zones: "dict[str, datetime.tzinfo]" = {}
MAX_ZONES = 4  # the configured zone, and the one before it while a new config is applied


def _zone(name: str) -> "datetime.tzinfo":
    zone = _zones.get(name)
    if zone is None:
        if name == "UTC":
            zone = datetime.UTC
        else:
            import zoneinfo

            zone = zoneinfo.ZoneInfo(name)
        if len(_zones) >= MAX_ZONES:
            _zones.clear()
        _zones[name] = zone
    return zone


# The last answer, for the minute it holds: every zone in use today is offset from UTC by
# whole minutes, so the local date and minute cannot change within one UTC minute (the
# station asks once per input; issue 14, the answer path).
_last: "tuple[str, int, LocalTime] | None" = None


def local_time(epoch: float, zone: str) -> LocalTime:
    global _last
    minute = int(epoch // 60)
    last = _last
    if last is not None and last[0] == zone and last[1] == minute:
        return last[2]
    moment = datetime.datetime.fromtimestamp(epoch, _zone(zone))
    local = LocalTime("%04d-%02d-%02d" % (moment.year, moment.month, moment.day),
                      moment.weekday(), moment.hour * 60 + moment.minute)
    offset = moment.utcoffset()
    if offset is None or offset.seconds % 60 == 0:
        _last = (zone, minute, local)
    return local


def zone_problem(zone: str) -> str | None:
    if zone == "UTC":
        return None
    if not zone or len(zone) > 64 or zone.startswith("/") or ".." in zone \
            or not all(c.isalnum() or c in "/_+-" for c in zone):
        return f'must be an IANA time zone name like "Europe/Berlin" (got {zone[:70]!r})'
    try:
        _zone(zone)
    except KeyError:  # zoneinfo.ZoneInfoNotFoundError
        return f"unknown time zone {zone!r} (the system's tz database has no such zone)"
    except (ImportError, ValueError, OSError) as exc:
        return f"time zone {zone!r} cannot be loaded: {exc}"
    return None
