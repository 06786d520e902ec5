"""Recurring intervals: every N units counted from an origin instant.

Minutes and hours are elapsed time, so a step is a fixed length whatever the
zone does. Days, weeks, months and years step the wall-clock calendar in the
schedule's zone; a step that lands on a skipped or repeated wall-clock time
fires by the rules in `zones`.
"""

from calendar import monthrange
from datetime import MAXYEAR, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.schedules.zones import first_instant

INTERVALS = ("minute", "hour", "day", "week", "month", "year")

ELAPSED_STEPS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}

ONE_DAY = timedelta(days=1)


def next_elapsed_fire(
    origin: datetime, first: int, step: timedelta, after: datetime
) -> datetime:
    """The first of `origin + k * step` (k >= `first`) strictly after `after`."""
    index = max(first, (after - origin) // step + 1)
    return origin + index * step


def next_calendar_fire(
    origin: datetime,
    first: int,
    interval: str,
    value: int,
    tz: ZoneInfo,
    after: datetime,
) -> datetime:
    """The first calendar step from `origin` (k >= `first`) strictly after `after`.

    Step k is always counted from the origin's wall time, never from step k - 1,
    so a day clamped to a short month does not stay clamped.
    """
    origin_wall = origin.astimezone(tz).replace(tzinfo=None)
    after_wall = after.astimezone(tz).replace(tzinfo=None)

    def fire(index: int) -> datetime:
        if index == 0:
            return origin
        wall = _add_steps(origin_wall, interval, index * value)
        return first_instant(wall, tz)

    # Estimate k from the calendar, then correct by a step or two.
    index = max(first, _steps_between(origin_wall, after_wall, interval) // value)
    while index > first and fire(index - 1) > after:
        index -= 1
    while (result := fire(index)) <= after:
        index += 1
    return result


def _add_steps(wall: datetime, interval: str, count: int) -> datetime:
    """`wall` moved by `count` calendar units, the day clamped to the month."""
    if interval == "day":
        return wall + count * ONE_DAY
    if interval == "week":
        return wall + count * 7 * ONE_DAY

    months = count * 12 if interval == "year" else count
    year, month_index = divmod(wall.year * 12 + wall.month - 1 + months, 12)
    if year > MAXYEAR:
        raise OverflowError(f"year {year} is beyond the years datetime holds")
    day = min(wall.day, monthrange(year, month_index + 1)[1])
    return wall.replace(year=year, month=month_index + 1, day=day)


def _steps_between(start: datetime, end: datetime, interval: str) -> int:
    """How many whole calendar units lie between two wall times, roughly."""
    if interval in ("day", "week"):
        days = (end.date() - start.date()).days
        return days if interval == "day" else days // 7

    months = (end.year - start.year) * 12 + end.month - start.month
    return months if interval == "month" else months // 12
