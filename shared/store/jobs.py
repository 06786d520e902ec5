"""Job definitions: create, read, page through, replace, pause and delete."""

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)

from shared.store.tables import jobs, runs

Job = dict[str, Any]

#: Run states that wait for their next attempt; stopping a job cancels them,
#: so nothing fires after the user said stop.
WAITING = ("pending", "queued", "retrying")


class JobStore:
    """The ``jobs`` table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, job: Job) -> Job:
        with self.engine.begin() as conn:
            conn.execute(insert(jobs).values(**job))
        return dict(job)

    def get(self, job_id: str) -> Job | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return dict(row._mapping) if row else None

    def page(
        self,
        status: str | None,
        limit: int,
        after: tuple[datetime, str] | None = None,
    ) -> list[Job]:
        """Jobs in creation order, ``limit`` at most, after the cursor."""
        query = select(jobs).order_by(jobs.c.created_at, jobs.c.id).limit(limit)
        if status:
            query = query.where(jobs.c.status == status)
        if after:
            query = query.where(past(jobs.c.created_at, jobs.c.id, after))
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        with self.engine.connect() as conn:
            return {status: n for status, n in conn.execute(query)}

    def update(self, job_id: str, values: Job, cancel_runs: bool) -> Job | None:
        """Change a job; with ``cancel_runs`` its unstarted runs never fire."""
        with self.engine.begin() as conn:
            result = conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(**values)
            )
            if result.rowcount == 0:
                return None
            if cancel_runs:
                cancel_waiting_runs(conn, job_id, values["updated_at"])
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return dict(row._mapping)

    def delete(self, job_id: str) -> bool:
        """Delete a job with its history; a run in flight finds it gone."""
        with self.engine.begin() as conn:
            result = conn.execute(delete(jobs).where(jobs.c.id == job_id))
        return result.rowcount > 0


def past(
    time_column: ColumnElement,
    id_column: ColumnElement,
    position: tuple[datetime, str],
    descending: bool = False,
) -> ColumnElement[bool]:
    """Rows after ``position`` in (time, id) order: where the next page starts."""
    when, identifier = position
    if descending:
        return or_(
            time_column < when, and_(time_column == when, id_column < identifier)
        )
    return or_(time_column > when, and_(time_column == when, id_column > identifier))


def cancel_waiting_runs(conn: Connection, job_id: str, now: datetime) -> None:
    """Mark the job's runs that wait for an attempt as cancelled."""
    conn.execute(
        update(runs)
        .where(runs.c.job_id == job_id, runs.c.status.in_(WAITING))
        .values(status="cancelled", finished_at=now, lease_expires_at=None)
    )
