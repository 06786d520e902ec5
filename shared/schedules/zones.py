"""Time zones: wall-clock times in an IANA zone, read as UTC instants.

A wall-clock time that a spring-forward gap skips fires at the first instant
after the gap; a wall-clock time that a fall-back overlap repeats fires once, at
its first occurrence. Cron with `*` or a step leading its minute or hour field
is the exception; `cron` explains it.

Limit: the zone arithmetic assumes no offset changes by more than three hours
at once. No zone does so today; around such a change in the past, a cron
schedule may miss the fires of a repeated stretch.
"""

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from shared.schedules.errors import ScheduleError

# A zone whose offset stays put this long either side of an instant is read
# with plain arithmetic. It must exceed the largest offset change of any zone
# in use (two hours, for double summer time).
_STEADY_SPAN = timedelta(hours=3)

UTC_KEYS = frozenset({"UTC", "Etc/UTC"})


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name`.

    Only names of the IANA database count: a file that happens to sit in the
    zone directory (``localtime``, ``posixrules``) would make a schedule
    depend on how the machine running it was set up.
    """
    try:
        if name not in _known_zone_names():
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ScheduleError(
            "timezone",
            f"unknown time zone {name!r}; use an IANA name such as Europe/Paris",
        ) from None


@lru_cache(maxsize=1)
def _known_zone_names() -> frozenset[str]:
    # Debian's zone directory also holds the machine's own setting.
    machine_specific = {"localtime", "posixrules", "Factory"}
    return frozenset(available_timezones()) - machine_specific | {"UTC"}


def to_utc(value: datetime, tz: ZoneInfo, field: str) -> datetime:
    """`value` as an aware UTC instant; a naive value is wall-clock time in `tz`.

    A wall-clock time that occurs twice is its first occurrence. One that never
    occurs (inside a spring-forward gap) is an error on `field`.
    """
    if value.tzinfo is not None:
        return value.astimezone(UTC)

    occurrences = occurrences_of(value, tz)
    if not occurrences:
        raise ScheduleError(
            field,
            f"{value.isoformat()} does not exist in {tz.key} (daylight saving gap)",
        )
    return occurrences[0]


def occurrences_of(wall: datetime, tz: ZoneInfo) -> tuple[datetime, ...]:
    """The UTC instants at which `tz` shows `wall`: one, two (overlap) or none."""
    # fold=0 reads the wall with the offset in force before a change, fold=1
    # with the one after. Before a fall-back the first reading comes first;
    # before a spring-forward it lands past the gap instead.
    read_before = wall.replace(tzinfo=tz).astimezone(UTC)
    read_after = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    if read_before == read_after:
        return (read_before,)
    if read_before < read_after:
        return (read_before, read_after)
    return ()


def first_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """When a fixed wall-clock time fires: its first occurrence, or the gap's end."""
    occurrences = occurrences_of(wall, tz)
    if occurrences:
        return occurrences[0]
    return gap_end(wall, tz)


def gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first instant after the spring-forward gap that swallows `wall`."""
    # The change lies between the two readings of the wall. Zone rules change
    # offsets on whole seconds, so halving the interval down to one finds it.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC).replace(microsecond=0)
    high = wall.replace(tzinfo=tz).astimezone(UTC).replace(microsecond=0)
    offset_after_gap = high.astimezone(tz).utcoffset()

    while high - low > timedelta(seconds=1):
        middle = low + timedelta(seconds=(high - low).total_seconds() // 2)
        if middle.astimezone(tz).utcoffset() == offset_after_gap:
            high = middle
        else:
            low = middle
    return high


def offsets_near(tz: ZoneInfo, instant: datetime) -> tuple[timedelta, ...]:
    """The UTC offsets of `tz` a little before, at and a little after `instant`."""
    moments = (instant - _STEADY_SPAN, instant, instant + _STEADY_SPAN)
    return tuple(moment.astimezone(tz).utcoffset() for moment in moments)
