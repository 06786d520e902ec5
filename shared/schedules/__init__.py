"""Fire-time arithmetic: when a schedule fires, computed from instants given to it.

Nothing here reads the clock, the database or the network; `after` is always an
argument, so every rule is tested with fixed instants.

`Schedule` ties the parts together, one module each: `zones` reads wall-clock
times in a time zone as UTC instants, through gaps and overlaps; `cron` parses
cron expressions and finds their fire times; `recurring` steps an interval from
an origin; `errors` holds `ScheduleError`.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.schedules.cron import CRON_MACROS, check_cron, next_cron_fire
from shared.schedules.errors import ScheduleError
from shared.schedules.recurring import (
    ELAPSED_STEPS,
    INTERVALS,
    next_calendar_fire,
    next_elapsed_fire,
)
from shared.schedules.zones import to_utc, zone
from shared.times import as_utc

__all__ = [
    "CRON_MACROS",
    "INTERVALS",
    "Schedule",
    "ScheduleError",
    "check_cron",
    "to_utc",
    "zone",
]


@dataclass(frozen=True)
class Schedule:
    """When a job fires: a cron expression, one specific time, or an interval.

    Instants are aware UTC (a naive one is taken as UTC). A recurring schedule
    counts from `start_at` when it is set, which is itself the first fire time;
    otherwise from `anchor`, the creation time truncated to the minute, which
    is not a fire time: the first fire is one step after it.
    """

    kind: str  # "cron" | "specific_time" | "recurring"
    timezone: str = "UTC"
    cron_expression: str | None = None
    specific_time: datetime | None = None
    interval: str | None = None
    interval_value: int | None = None
    start_at: datetime | None = None
    end_at: datetime | None = None
    anchor: datetime | None = None

    def __post_init__(self) -> None:
        # Cheap checks only: the tick builds one schedule per due job.
        for name in ("specific_time", "start_at", "end_at", "anchor"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_utc(value))
        self._check_fields()

    def next_after(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after`, inside [start_at, end_at]."""
        after = as_utc(after)
        if self.start_at is not None and self.start_at > after:
            # start_at is inclusive: search from just before it.
            after = self.start_at - timedelta(microseconds=1)

        try:
            fire = self._fire_after(after)
        except OverflowError:
            # The search ran past the years datetime holds (1 to 9999).
            return None
        if fire is None or (self.end_at is not None and fire > self.end_at):
            return None
        return fire

    def fire_times(self, after: datetime, count: int) -> list[datetime]:
        """Up to `count` successive fire times strictly after `after`."""
        fires: list[datetime] = []
        while len(fires) < count:
            fire = self.next_after(fires[-1] if fires else after)
            if fire is None:
                break
            fires.append(fire)
        return fires

    def _fire_after(self, after: datetime) -> datetime | None:
        if self.kind == "cron":
            return next_cron_fire(self.cron_expression, zone(self.timezone), after)
        if self.kind == "specific_time":
            return self.specific_time if self.specific_time > after else None
        return self._recurring_fire_after(after)

    def _recurring_fire_after(self, after: datetime) -> datetime:
        # start_at is itself the first fire time; the anchor is not.
        if self.start_at is not None:
            origin, first = self.start_at, 0
        else:
            origin, first = self.anchor, 1

        if self.interval in ELAPSED_STEPS:
            step = ELAPSED_STEPS[self.interval] * self.interval_value
            return next_elapsed_fire(origin, first, step, after)

        tz = zone(self.timezone)
        return next_calendar_fire(
            origin, first, self.interval, self.interval_value, tz, after
        )

    def _check_fields(self) -> None:
        """Refuse a schedule that lacks what its kind needs to compute anything."""
        if self.kind == "cron":
            if not self.cron_expression:
                raise ScheduleError(
                    "cron_expression", "a cron schedule needs an expression"
                )
        elif self.kind == "specific_time":
            if self.specific_time is None:
                raise ScheduleError("specific_time", "a one-time schedule needs a time")
        elif self.kind == "recurring":
            self._check_recurring_fields()
        else:
            raise ScheduleError(
                "schedule_type",
                f"unknown schedule type {self.kind!r}; "
                "use cron, specific_time or recurring",
            )

    def _check_recurring_fields(self) -> None:
        if self.interval not in INTERVALS:
            raise ScheduleError(
                "interval", f"interval must be one of {', '.join(INTERVALS)}"
            )
        if not isinstance(self.interval_value, int) or self.interval_value < 1:
            raise ScheduleError("interval_value", "interval_value must be 1 or more")
        if self.start_at is None and self.anchor is None:
            raise ScheduleError(
                "start_at", "a recurring schedule needs start_at or an anchor"
            )
