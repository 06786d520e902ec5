"""Which runs a tick writes for a due job: pure, given the job and ``now``.

A fire time the tick meets more than the misfire grace after it passed was
missed (the service was down, or nothing ticked). The job's misfire policy
decides what becomes of missed fire times; each one is written down either
way, as a run to send or as a ``missed`` run, never silently dropped.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.schedules import Schedule

#: Fire times one job may produce in one planning step. A job far behind
#: (an every-minute job after a week down) is caught up over several steps.
MAX_FIRE_TIMES_PER_PLAN = 1000


@dataclass(frozen=True)
class PlannedRun:
    """A run to write: its fire time, status (pending or missed) and trigger."""

    scheduled_for: datetime
    status: str
    trigger: str


@dataclass(frozen=True)
class Plan:
    """The runs to write for a job and where its schedule goes next."""

    runs: list[PlannedRun]
    next_run_at: datetime | None
    completed: bool


def schedule_of(job: Mapping[str, Any]) -> Schedule:
    """The schedule a stored job (or a validated request) describes."""
    return Schedule(
        kind=job["schedule_type"],
        timezone=job.get("timezone") or "UTC",
        cron_expression=job.get("cron_expression"),
        specific_time=job.get("specific_time"),
        interval=job.get("interval"),
        interval_value=job.get("interval_value"),
        start_at=job.get("start_at"),
        end_at=job.get("end_at"),
        anchor=job.get("anchor_at"),
    )


def plan_runs(
    job: Mapping[str, Any],
    now: datetime,
    horizon: datetime,
    grace: timedelta,
    max_catch_up: int,
) -> Plan:
    """The runs for ``job``'s fire times from its ``next_run_at`` to ``horizon``."""
    schedule = schedule_of(job)
    fire_times, following = _fire_times(schedule, job["next_run_at"], horizon)
    cutoff = now - grace
    missed = [t for t in fire_times if t < cutoff]
    on_time = fire_times[len(missed) :]
    # A fire time after the missed ones that is due already (in this step,
    # or in the next when the gap is planned in steps) goes out anyway: it
    # is the catch-up, and no missed one goes out just before it.
    later_due = (bool(on_time) and on_time[0] <= now) or (
        following is not None and following <= now
    )
    runs = _missed_runs(missed, job["misfire_policy"], max_catch_up, later_due)
    runs += [PlannedRun(t, "pending", "schedule") for t in on_time]
    sends = any(run.status == "pending" for run in runs)
    return Plan(runs, following, completed=following is None and not sends)


def _fire_times(
    schedule: Schedule, first: datetime, horizon: datetime
) -> tuple[list[datetime], datetime | None]:
    """Fire times from ``first`` up to ``horizon``, and the one after them."""
    times: list[datetime] = []
    current: datetime | None = first
    while current is not None and current <= horizon:
        if len(times) == MAX_FIRE_TIMES_PER_PLAN:
            break
        times.append(current)
        current = schedule.next_after(current)
    return times, current


def _missed_runs(
    missed: list[datetime], policy: str, max_catch_up: int, hold_back: bool
) -> list[PlannedRun]:
    """Apply the misfire policy to fire times that were missed.

    ``run_once`` sends the latest missed fire time only, and not when
    ``hold_back`` says a later fire time is due already and will go out
    instead (which also keeps a gap planned in several steps to one run).
    """
    if policy == "run_all":
        send = set(missed[-max_catch_up:])
    elif policy == "run_once" and missed and not hold_back:
        send = {missed[-1]}
    else:
        send = set()
    return [
        PlannedRun(t, "pending", "catch_up")
        if t in send
        else PlannedRun(t, "missed", "schedule")
        for t in missed
    ]
