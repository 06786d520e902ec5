"""Storing many of our jobs quickly, for workloads that do not time creation.

Rows are made by the service's own code (the request model, the schedule
checks and ``new_job``), exactly as ``POST /jobs`` makes them, and written in
large batches instead of one request each.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert

from bench.plan import utc
from shared.definitions import new_job, normalise_schedule
from shared.store.tables import jobs
from shared.times import utcnow
from shared.web.schemas import JobFields

BATCH = 2000


def every_minute(name: str, target: str, start: float) -> dict[str, Any]:
    """The request body of a job that fires every minute from ``start``."""
    return {
        "name": name,
        "target": target,
        "payload": {"bench": True},
        "schedule_type": "recurring",
        "interval": "minute",
        "interval_value": 1,
        "start_at": utc(start).isoformat(),
    }


def once(name: str, target: str, when: float) -> dict[str, Any]:
    """The request body of a job that fires once at ``when``."""
    return {
        "name": name,
        "target": target,
        "payload": {"bench": True},
        "schedule_type": "specific_time",
        "specific_time": utc(when).isoformat(),
    }


def store_jobs(engine: Engine, bodies: list[dict[str, Any]]) -> list[str]:
    """Store jobs from request bodies; their ids, in the same order.

    Each job is made at its own instant, as if created one after the other,
    so that lists in creation order meet distinct creation times.
    """
    rows = [_row(body, utcnow()) for body in bodies]
    with engine.begin() as conn:
        for start in range(0, len(rows), BATCH):
            conn.execute(insert(jobs), rows[start : start + BATCH])
    return [row["id"] for row in rows]


def _row(body: dict[str, Any], now: datetime) -> dict[str, Any]:
    fields = JobFields.model_validate(body).model_dump()
    return new_job(normalise_schedule(fields, now, future_required=True), now)
