"""Stored rows as the API shows them, and back."""

from datetime import datetime
from typing import Any

from shared.definitions import ALL_SEED_FIELDS, SEED_FIELDS
from shared.planning import schedule_of
from shared.web.schemas import JobFields


def job_view(job: dict[str, Any], now: datetime) -> dict[str, Any]:
    """A stored job as the API answers it, with when it will fire next.

    The stored ``next_run_at`` is the tick's bookmark: the first fire time
    not yet turned into a run, which within the look-ahead is the one after
    the next. Clients want the next fire time itself, from the schedule; a
    job that is not active fires at none.
    """
    upcoming = None
    if job["status"] == "active":
        upcoming = schedule_of(job).next_after(now)
    return job | {"next_run_at": upcoming}


def merged_definition(job: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A stored job's definition with ``changes`` applied, as a request body.

    When the change picks another schedule type, the old type's seed fields
    go unless the change names them, so switching from an interval to a cron
    expression does not also require sending ``interval: null``.
    """
    definition = {name: job[name] for name in JobFields.model_fields}
    definition |= changes
    new_type = changes.get("schedule_type")
    if new_type:
        for name in ALL_SEED_FIELDS:
            if name not in SEED_FIELDS[new_type] and name not in changes:
                definition[name] = None
    return definition


def run_view(run: dict[str, Any]) -> dict[str, Any]:
    """A stored run with its lateness and, when loaded, its attempts."""
    started, due = run["started_at"], run["scheduled_for"]
    view = dict(run)
    view["attempt_count"] = run["attempts"]
    view["lateness_ms"] = (
        round((started - due).total_seconds() * 1000, 3) if started else None
    )
    if "attempt_list" in run:
        view["attempts"] = run["attempt_list"]
    return view
