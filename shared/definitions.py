"""From a request's job fields to a stored job, and the checks that need them all.

Each field is checked alone by the request models in ``web.schemas``; what
only makes sense of the fields together (a schedule type and its seed
fields, local times in the job's zone, a schedule that can still fire) is
checked here, for create, replace, change and preview alike.
"""

import uuid
from datetime import datetime, timedelta
from typing import Any

from shared.errors import InvalidFields
from shared.planning import schedule_of
from shared.schedules import ScheduleError, check_cron, to_utc, zone

#: The seed fields each schedule type needs; the others must be absent.
SEED_FIELDS = {
    "cron": ("cron_expression",),
    "specific_time": ("specific_time",),
    "recurring": ("interval", "interval_value"),
}
ALL_SEED_FIELDS = ("cron_expression", "specific_time", "interval", "interval_value")
SCHEDULE_FIELDS = ("schedule_type", *ALL_SEED_FIELDS, "timezone", "start_at", "end_at")
TIME_FIELDS = ("specific_time", "start_at", "end_at")


def normalise_schedule(
    fields: dict[str, Any], now: datetime, future_required: bool
) -> dict[str, Any]:
    """Check the schedule fields together; return them with times in UTC.

    ``future_required`` rejects a schedule that would never fire after
    ``now`` (a past ``specific_time``, an ``end_at`` already gone); preview
    does not ask for it.
    """
    problems: list[tuple[str, str, object]] = []
    kind = fields["schedule_type"]
    problems += _seed_problems(fields, kind)
    result = dict(fields)
    try:
        tz = zone(fields.get("timezone") or "UTC")
        for name in TIME_FIELDS:
            if result.get(name) is not None:
                result[name] = to_utc(result[name], tz, name)
        if kind == "cron" and fields.get("cron_expression"):
            check_cron(fields["cron_expression"])
    except ScheduleError as error:
        problems.append((error.field, error.message, fields.get(error.field)))
    if problems:
        raise InvalidFields(problems)
    problems += _window_problems(result, now, future_required)
    if problems:
        raise InvalidFields(problems)
    return result


def _seed_problems(fields: dict[str, Any], kind: str) -> list[tuple[str, str, object]]:
    needed = SEED_FIELDS[kind]
    problems = []
    for name in needed:
        if fields.get(name) is None:
            problems.append((name, f"required when schedule_type is '{kind}'", None))
    for name in ALL_SEED_FIELDS:
        if name not in needed and fields.get(name) is not None:
            problems.append(
                (name, f"not allowed when schedule_type is '{kind}'", fields[name])
            )
    return problems


def _window_problems(
    fields: dict[str, Any], now: datetime, future_required: bool
) -> list[tuple[str, str, object]]:
    start, end = fields.get("start_at"), fields.get("end_at")
    if start and end and end <= start:
        return [("end_at", "must be after start_at", end)]
    if not future_required:
        return []
    when = fields.get("specific_time")
    if when is not None and when <= now:
        return [("specific_time", "must be in the future", when)]
    if first_fire_time(fields, now) is None:
        field = "end_at" if end else "schedule_type"
        return [(field, "the schedule has no fire time after now", end)]
    return []


def first_fire_time(fields: dict[str, Any], now: datetime) -> datetime | None:
    """The first fire time after ``now`` of a schedule (anchor set if needed)."""
    return schedule_of(with_anchor(fields, now)).next_after(now)


def with_anchor(fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Fields with the recurring anchor: ``start_at``, or ``now`` to the minute.

    Calendar steps count from the anchor, so it is set when the schedule is
    defined and never moved by runs or manual triggers.
    """
    anchor = None
    if fields["schedule_type"] == "recurring":
        anchor = fields.get("start_at") or now.replace(second=0, microsecond=0)
    return {**fields, "anchor_at": anchor}


def preview_fire_times(
    fields: dict[str, Any], after: datetime | None, count: int, now: datetime
) -> list[datetime]:
    """The next ``count`` fire times of unsaved schedule fields after ``after``.

    ``after`` defaults to ``now``; without an offset it is read in the
    schedule's zone. A recurring schedule without ``start_at`` counts from
    ``after`` to the minute, as a job created then would.
    """
    fields = normalise_schedule(fields, now, future_required=False)
    after = after or now
    if after.tzinfo is None:
        after = to_utc(after, zone(fields["timezone"]), "after")
    anchor = fields.get("start_at") or after.replace(second=0, microsecond=0)
    return schedule_of(fields | {"anchor_at": anchor}).fire_times(after, count)


def new_job(fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A job row ready to insert, from normalised request fields."""
    row = with_anchor(fields, now)
    row.update(
        id=str(uuid.uuid4()),
        status="active",
        status_reason=None,
        consecutive_failures=0,
        next_run_at=schedule_of(row).next_after(now),
        last_run_at=None,
        last_run_status=None,
        created_at=now,
        updated_at=now,
    )
    return row


def rescheduled(fields: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Field values for a job whose schedule was redefined at ``now``."""
    row = with_anchor(fields, now)
    row["next_run_at"] = schedule_of(row).next_after(now)
    return row


def due_soon(job: dict[str, Any], now: datetime, lookahead: float) -> bool:
    """True when the job fires before the next regular tick would see it."""
    next_run = job.get("next_run_at")
    return (
        job.get("status") == "active"
        and next_run is not None
        and next_run <= now + timedelta(seconds=lookahead)
    )


def is_id(text: str) -> bool:
    """True for text shaped like the ids this service gives out (UUIDs).

    Anything else names nothing, and is answered as unknown without asking
    the database (which would refuse some bytes, such as NUL, outright).
    """
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False
