"""Runs and attempts: created by the tick, claimed and finished by workers.

Lock order is always the job row before its run rows, in every transaction
that takes both, so that workers, ticks and API calls never deadlock.
"""

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    and_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY

from shared.planning import Plan
from shared.store import claims, slots
from shared.store.batching import Batcher
from shared.store.claims import Claim, ClaimRequest, Finish, Run
from shared.store.jobs import Job, past
from shared.store.tables import attempts, jobs, runs

#: Statuses after which a run never changes again.
FINAL = ("succeeded", "failed", "skipped", "cancelled", "missed")


class DueRun(NamedTuple):
    """A run to hand to the queue at ``due``."""

    id: str
    due: datetime


class NextAttempt(NamedTuple):
    """What a worker may know about a run's next attempt before claiming it."""

    job_id: str
    number: int
    timeout: float
    """The job's timeout: the longest the attempt may take."""


@dataclass(frozen=True)
class AttemptRecord:
    """One finished HTTP try, as stored."""

    number: int
    started_at: datetime
    duration_ms: float
    status_code: int | None
    outcome: str
    error: str | None
    response_excerpt: str
    response_truncated: bool


class RunStore:
    """The ``runs`` and ``attempts`` tables.

    With ``max_in_flight`` above zero, no more than that many attempts run at
    once across every process that shares the database (see ``slots.py``).
    """

    def __init__(self, engine: Engine, max_in_flight: int = 0) -> None:
        self.engine = engine
        self.max_in_flight = max_in_flight
        self._slots_provided = False
        self._claims = Batcher(self.claim_many, "pingpay-claims")
        self._finishes = Batcher(self.finish_many, "pingpay-finishes")

    def close(self) -> None:
        """Stop the threads that claim and finish runs together."""
        self._claims.close()
        self._finishes.close()

    # The tick.

    def plan_due(
        self,
        now: datetime,
        horizon: datetime,
        limit: int,
        planner: Callable[[Job], Plan],
        job_ids: list[str] | None = None,
    ) -> tuple[int, list[DueRun]]:
        """Claim up to ``limit`` due jobs and write the runs ``planner`` plans.

        Returns how many jobs were claimed and the pending runs created. Row
        locks that concurrent ticks skip, and the unique key on (job, fire
        time), make sure a fire time becomes one run whoever ticks.
        """
        with self.engine.begin() as conn:
            claimed = _claim_due_jobs(conn, horizon, limit, job_ids)
            new_runs, advances = [], []
            for job in claimed:
                plan = planner(job)
                new_runs += [_run_row(job["id"], p, now) for p in plan.runs]
                advances.append(_advance(job, plan))
            created = _insert_runs(conn, new_runs)
            if advances:
                conn.execute(_ADVANCE_JOB, advances)
        return len(claimed), _pending(created)

    def insert_planned(
        self, job: Job, plan: Plan, now: datetime
    ) -> tuple[Job, list[DueRun]]:
        """Store a new job together with the runs ``plan`` gives it.

        Returns the job as stored (its ``next_run_at`` past those runs) and
        the pending runs.
        """
        advance = _advance(job, plan)
        job = job | {"next_run_at": advance["b_next"], "status": advance["b_status"]}
        new_runs = [_run_row(job["id"], p, now) for p in plan.runs]
        with self.engine.begin() as conn:
            conn.execute(insert(jobs).values(**job))
            created = _insert_runs(conn, new_runs)
        return job, _pending(created)

    def add_manual(self, job_id: str, now: datetime) -> DueRun:
        """A run outside the schedule, due now."""
        row = _run_row(job_id, None, now)
        with self.engine.begin() as conn:
            conn.execute(insert(runs).values(**row))
        return DueRun(row["id"], now)

    def mark_queued(self, run_ids: list[str], now: datetime) -> None:
        """Record that the queue now holds these runs.

        A run that a worker has locked is being claimed already, and is
        left as it is: waiting for it could close a circle of waits with a
        worker that holds it and wants a run this statement holds.
        """
        with self.engine.begin() as conn:
            for start in range(0, len(run_ids), 500):
                chunk = run_ids[start : start + 500]
                unclaimed = (
                    select(runs.c.id)
                    .where(runs.c.id.in_(chunk), runs.c.status == "pending")
                    .with_for_update(skip_locked=True)
                )
                conn.execute(
                    update(runs)
                    .where(runs.c.id.in_(unclaimed))
                    .values(status="queued", queued_at=now)
                )

    def waiting_before(self, horizon: datetime, limit: int = 10_000) -> list[DueRun]:
        """Runs waiting for a time before ``horizon``: their fire time
        (``pending``) or their next attempt (``retrying``), due then.

        The latest fire times first: when there are more than ``limit`` (a
        queue down for long), the overdue ones left out are the sweep's.
        """
        waiting = or_(
            and_(runs.c.status == "pending", runs.c.scheduled_for < horizon),
            and_(runs.c.status == "retrying", runs.c.next_attempt_at < horizon),
        )
        query = (
            select(
                runs.c.id, runs.c.status, runs.c.scheduled_for, runs.c.next_attempt_at
            )
            .where(waiting)
            .order_by(runs.c.scheduled_for.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [DueRun(row.id, _waits_for(row)) for row in conn.execute(query)]

    def recover_stale(
        self,
        now: datetime,
        overdue_cutoff: datetime,
        stale_cutoff: datetime,
        queued_cutoff: datetime,
    ) -> list[DueRun]:
        """Runs the queue or a worker lost, made ready to be queued again.

        A run still ``pending`` for a fire time before ``overdue_cutoff`` is
        held by no live dispatcher (which would have queued it at its fire
        time): its process stopped or died, or the queue refused it. One
        ``queued`` before ``queued_cutoff`` for a fire time before
        ``stale_cutoff`` may have been dropped by the queue; one ``retrying``
        whose next attempt was due before ``stale_cutoff`` lost its timer (a
        retry stays ``retrying`` while it waits on the queue, hence the
        longer cutoff); one ``running`` whose lease expired lost its worker
        mid-attempt, which is recorded as a ``lost`` attempt (the target may
        or may not have received it). Each goes back to ``pending`` until
        the queue takes it again, so a queue still down leaves it to the
        next sweep. Queuing a run twice is safe: only one worker can claim
        it.
        """
        lost = or_(
            and_(runs.c.status == "pending", runs.c.scheduled_for < overdue_cutoff),
            and_(
                runs.c.status == "queued",
                runs.c.queued_at < queued_cutoff,
                runs.c.scheduled_for < stale_cutoff,
            ),
            and_(runs.c.status == "retrying", runs.c.next_attempt_at < stale_cutoff),
            and_(runs.c.status == "running", runs.c.lease_expires_at < now),
        )
        # Locked until the runs are pending again, skipping runs another
        # sweep or a worker's claim has locked: a run claimed between this
        # read and the update below would otherwise be set back to pending
        # and sent twice. Only run rows are locked, and none is waited for.
        query = (
            select(runs.c.id, runs.c.status, runs.c.attempts, runs.c.started_at)
            .where(lost)
            .limit(10_000)
            .with_for_update(skip_locked=True)
        )
        with self.engine.begin() as conn:
            found = conn.execute(query).all()
            _record_lost_attempts(
                conn, [r for r in found if r.status == "running"], now
            )
            ids = [row.id for row in found]
            for start in range(0, len(ids), 500):
                conn.execute(
                    update(runs)
                    .where(runs.c.id.in_(ids[start : start + 500]))
                    .values(status="pending", lease_expires_at=None)
                )
        return [DueRun(run_id, now) for run_id in ids]

    def prune(self, before: datetime, batch: int = 1000, batches: int = 20) -> int:
        """Delete finished runs (and their attempts) that ended before ``before``.

        Deletes in small batches, each its own short transaction, so pruning
        a long history never holds locks that stall workers or the API.
        """
        deleted = 0
        old = select(runs.c.id).where(
            runs.c.status.in_(FINAL), runs.c.finished_at < before
        )
        for _ in range(batches):
            with self.engine.begin() as conn:
                ids = list(conn.scalars(old.limit(batch)))
                if ids:
                    conn.execute(delete(runs).where(runs.c.id.in_(ids)))
            deleted += len(ids)
            if len(ids) < batch:
                break
        return deleted

    # A worker.

    def claim(
        self,
        run_id: str,
        now: datetime,
        lease: Callable[[Job], float],
        grace: timedelta = timedelta(seconds=60),
    ) -> Claim:
        """Take a run for one attempt, under a lease of ``lease(job)`` seconds.

        ``grace`` is how late a scheduled run may start before the job's
        misfire policy decides whether it still goes out. Claims made by
        several threads at once share one transaction.
        """
        return self._claims(ClaimRequest(run_id, now, lease, grace))

    def claim_many(self, requests: list[ClaimRequest]) -> list[Claim]:
        """Claim several runs in one transaction; one answer each, in order."""
        self._provide_slots()
        with self.engine.begin() as conn:
            return claims.claim_runs(conn, requests, self.max_in_flight)

    def _provide_slots(self) -> None:
        if self.max_in_flight and not self._slots_provided:
            slots.provide(self.engine, self.max_in_flight)
            self._slots_provided = True

    def next_attempt(self, run_id: str) -> NextAttempt | None:
        """The job, number and timeout of a run's next attempt; None if gone."""
        query = (
            select(runs.c.job_id, runs.c.attempts + 1, jobs.c.timeout_seconds)
            .join(jobs, jobs.c.id == runs.c.job_id)
            .where(runs.c.id == run_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        return NextAttempt(*row) if row else None

    def finish_attempt(
        self,
        run: Run,
        record: AttemptRecord,
        outcome: str,
        next_attempt_at: datetime | None,
        now: datetime,
        fail_after: int = 0,
    ) -> Job | None:
        """Store an attempt and its run's new state; update the job when final.

        ``outcome`` is the run's new status: ``succeeded``, ``failed`` or
        ``retrying``. With ``fail_after`` above zero, a recurring job whose
        runs failed that many times in a row becomes ``failed``. Returns the
        job as it now is (None if it was deleted). Attempts finished by
        several threads at once are stored in one transaction.
        """
        finish = Finish(run, record, outcome, next_attempt_at, now, fail_after)
        return self._finishes(finish)

    def finish_many(self, finishes: list[Finish]) -> list[Job | None]:
        """Store several finished attempts in one transaction."""
        with self.engine.begin() as conn:
            return claims.finish_attempts(conn, finishes, self.max_in_flight)

    # Reads for the API.

    def get(self, run_id: str) -> Run | None:
        """One run with its attempts, oldest first, under ``attempts``."""
        with self.engine.connect() as conn:
            row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
            if row is None:
                return None
            run = dict(row._mapping)
            tries = conn.execute(
                select(attempts)
                .where(attempts.c.run_id == run_id)
                .order_by(attempts.c.number)
            )
            run["attempt_list"] = [dict(a._mapping) for a in tries]
        return run

    def page_for_job(
        self,
        job_id: str,
        limit: int,
        before: tuple[datetime, str] | None = None,
        status: str | None = None,
    ) -> list[Run]:
        """A job's runs, newest fire time first, ``limit`` at most."""
        query = (
            select(runs)
            .where(runs.c.job_id == job_id)
            .order_by(runs.c.scheduled_for.desc(), runs.c.id.desc())
            .limit(limit)
        )
        if status:
            query = query.where(runs.c.status == status)
        if before:
            query = query.where(
                past(runs.c.scheduled_for, runs.c.id, before, descending=True)
            )
        with self.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def attempts_of(self, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """The attempts of several runs at once, oldest first, by run id."""
        found: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in run_ids}
        if not run_ids:
            return found
        query = (
            select(attempts)
            .where(attempts.c.run_id.in_(run_ids))
            .order_by(attempts.c.run_id, attempts.c.number)
        )
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                found[row.run_id].append(dict(row._mapping))
        return found

    def counts(self, statuses: tuple[str, ...] | None = None) -> dict[str, int]:
        """How many runs are in each status (in ``statuses`` only, if given)."""
        query = select(runs.c.status, func.count()).group_by(runs.c.status)
        if statuses:
            query = query.where(runs.c.status.in_(statuses))
        with self.engine.connect() as conn:
            return {status: n for status, n in conn.execute(query)}

    def hourly_statuses(
        self, since: datetime, job_id: str | None = None
    ) -> list[tuple[datetime, str, int]]:
        """Runs per hour of fire time and status, for fire times from ``since``.

        The hour is counted in the database (a run row each would be too many
        for a busy day); each row is ``(start of the hour in UTC, status, n)``.
        """
        hour = _hours_since_epoch(self.engine.dialect.name)
        query = (
            select(hour.label("hour"), runs.c.status, func.count())
            .where(runs.c.scheduled_for >= since)
            .group_by("hour", runs.c.status)
        )
        if job_id:
            query = query.where(runs.c.job_id == job_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return [(epoch + timedelta(hours=int(h)), s, n) for h, s, n in rows]


_ADVANCE_JOB = (
    update(jobs)
    .where(jobs.c.id == bindparam("b_id"))
    .values(next_run_at=bindparam("b_next"), status=bindparam("b_status"))
)


def _hours_since_epoch(dialect: str):
    """Whole hours from 1970 to a run's fire time, as the database counts them."""
    if dialect == "postgresql":
        return func.floor(func.extract("epoch", runs.c.scheduled_for) / 3600)
    # SQLite keeps UTC times as text, which strftime reads as UTC.
    return cast(func.strftime("%s", runs.c.scheduled_for), Integer) // 3600


def _claim_due_jobs(
    conn: Connection, horizon: datetime, limit: int, job_ids: list[str] | None
) -> list[Job]:
    query = (
        select(jobs)
        .where(jobs.c.status == "active", jobs.c.next_run_at <= horizon)
        .order_by(jobs.c.next_run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if job_ids is not None:
        query = query.where(jobs.c.id.in_(job_ids))
    return [dict(row._mapping) for row in conn.execute(query)]


def _run_row(job_id: str, planned, now: datetime) -> dict[str, Any]:
    """A new run row; ``planned`` None makes a manual run due now."""
    return {
        "id": str(uuid.uuid4()),
        "job_id": job_id,
        "scheduled_for": planned.scheduled_for if planned else now,
        "trigger": planned.trigger if planned else "manual",
        "status": planned.status if planned else "pending",
        "attempts": 0,
        "finished_at": now if planned and planned.status == "missed" else None,
        "created_at": now,
    }


def _advance(job: Job, plan: Plan) -> dict[str, Any]:
    status = "completed" if plan.completed else job["status"]
    return {"b_id": job["id"], "b_next": plan.next_run_at, "b_status": status}


def _insert_runs(conn: Connection, rows: list[dict[str, Any]]) -> list:
    """Insert runs, skipping fire times that already have one.

    A fire time whose run was cancelled before any attempt (the job was
    paused or rescheduled, then planned again) gets that run back, planned
    anew: the unique key must not make a fire time vanish.
    """
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        names = list(rows[0])
        statement = postgresql.insert(runs).from_select(names, _as_arrays(rows, names))
        params = None
    else:
        statement, params = sqlite.insert(runs), rows
    planned_again = {
        name: statement.excluded[name]
        for name in ("trigger", "status", "finished_at", "created_at")
    }
    statement = statement.on_conflict_do_update(
        index_elements=["job_id", "scheduled_for"],
        set_=planned_again,
        where=(runs.c.status == "cancelled") & (runs.c.attempts == 0),
    ).returning(runs.c.id, runs.c.scheduled_for, runs.c.status)
    return list(conn.execute(statement, params))


def _pending(created: list) -> list[DueRun]:
    """The runs just written that wait for their fire time."""
    return [DueRun(r.id, r.scheduled_for) for r in created if r.status == "pending"]


def _as_arrays(rows: list[dict[str, Any]], names: list[str]):
    """The rows as one array per column, unnested back into rows (PostgreSQL).

    A tick writes thousands of runs at once. As one VALUES list that is
    thousands of placeholders, which the driver rewrites for every
    statement and took most of a large tick's time; as arrays it is one a
    column.
    """
    columns = []
    for name in names:
        array = ARRAY(runs.c[name].type)
        values = bindparam(None, [row[name] for row in rows], array)
        columns.append(func.unnest(cast(values, array)))
    return select(*columns)


def _waits_for(row) -> datetime:
    """When a waiting run is due: its retry's time, else its fire time."""
    return row.next_attempt_at if row.status == "retrying" else row.scheduled_for


def _record_lost_attempts(conn: Connection, lost: list, now: datetime) -> None:
    """An attempt row for each run whose worker vanished mid-attempt."""
    if not lost:
        return
    conn.execute(
        insert(attempts),
        [
            {
                "run_id": row.id,
                "number": row.attempts,
                "started_at": row.started_at or now,
                "duration_ms": 0.0,
                "status_code": None,
                "outcome": "lost",
                "error": "the worker stopped answering during the attempt",
                "response_excerpt": "",
                "response_truncated": False,
            }
            for row in lost
        ],
    )
