"""The statements a worker runs around each attempt: claim, start, finish.

They run once per delivery, so each is built once here, with bound
parameters, instead of anew on every call: building a statement costs more
than running it. Lock order is the job row before its run, as everywhere.
"""

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from shared.store.jobs import Job, cancel_waiting_runs
from shared.store.tables import attempts, jobs, runs

Run = dict[str, Any]

#: How far ahead of its fire time a run may start: clocks of two machines
#: differ by a few milliseconds, never by this much.
EARLY_TOLERANCE = timedelta(milliseconds=500)

_RUN_PREFIX = "run__"

#: A run and its job in one statement, both locked, the job first (a
#: statement locks its tables' rows in the order they are named).
_LOCK_RUN_AND_JOB = (
    select(*jobs.c, *[c.label(_RUN_PREFIX + c.name) for c in runs.c])
    .select_from(jobs.join(runs, runs.c.job_id == jobs.c.id))
    .where(runs.c.id == bindparam("b_run"))
    .with_for_update()
)

_LOCK_JOB = select(jobs).where(jobs.c.id == bindparam("b_job")).with_for_update()

#: A job's other runs mid-attempt (live lease) and between attempts.
_IN_FLIGHT = (
    select(runs.c.status, func.count())
    .where(
        runs.c.job_id == bindparam("b_job"),
        runs.c.id != bindparam("b_run"),
        or_(
            and_(
                runs.c.status == "running", runs.c.lease_expires_at > bindparam("b_now")
            ),
            runs.c.status == "retrying",
        ),
    )
    .group_by(runs.c.status)
)

#: Whether a later fire time of the job is due as well.
_LATER_DUE = (
    select(runs.c.id)
    .where(
        runs.c.job_id == bindparam("b_job"),
        runs.c.scheduled_for > bindparam("b_after"),
        runs.c.scheduled_for <= bindparam("b_now"),
    )
    .limit(1)
)

_UPDATE_RUN = update(runs).where(runs.c.id == bindparam("b_run"))
_UPDATE_JOB = update(jobs).where(jobs.c.id == bindparam("b_job"))
_INSERT_ATTEMPT = insert(attempts)


def lock_run_and_job(conn: Connection, run_id: str) -> tuple[Run | None, Job | None]:
    """The run and its job, locked until the transaction ends."""
    row = conn.execute(_LOCK_RUN_AND_JOB, {"b_run": run_id}).first()
    if row is None:
        return None, None
    job, run = {}, {}
    for key, value in row._mapping.items():
        if key.startswith(_RUN_PREFIX):
            run[key[len(_RUN_PREFIX) :]] = value
        else:
            job[key] = value
    return run, job


def lock_job(conn: Connection, job_id: str) -> Job | None:
    row = conn.execute(_LOCK_JOB, {"b_job": job_id}).first()
    return dict(row._mapping) if row else None


def admission(
    conn: Connection, job: Job, run: Run, now: datetime, grace: timedelta
) -> str:
    """Whether a run may start now, under its job's status and limits.

    A manual run of a paused job makes its first attempt (the user asked for
    it), but no retry after the pause.
    """
    manual = run["trigger"] == "manual"
    if job["status"] != "active" and not (manual and run["attempts"] == 0):
        return "cancelled"
    if starts_at(run) > now + EARLY_TOLERANCE:
        return "early"
    if _misfired(conn, job, run, now, grace):
        return "missed"
    skips_overlap = job["overlap_policy"] == "skip" and not manual
    limit = job["max_concurrency"]
    if not skips_overlap and limit is None:
        return "run"
    running, retrying = _in_flight(conn, job["id"], run["id"], now)
    if skips_overlap and running + retrying:
        return "skipped"
    if limit is not None and running >= limit:
        return "wait"
    return "run"


def starts_at(run: Run) -> datetime:
    """When a run's next attempt may start: its fire time, or, between
    attempts, the time its retry was put off to.

    A run may be on the queue twice (a restarted process took over the runs
    it found waiting, or the sweep queued one again); the copy that comes
    while the run waits for its retry must not make that retry early.
    """
    if run["status"] == "retrying" and run["next_attempt_at"] is not None:
        return run["next_attempt_at"]
    return run["scheduled_for"]


def _misfired(
    conn: Connection, job: Job, run: Run, now: datetime, grace: timedelta
) -> bool:
    """True for a scheduled run that waited past the grace, which the job's
    misfire policy says not to send.

    A run planned on time can still start late: its worker, the queue or the
    database was away, and the fire times after it came due meanwhile.
    ``skip`` sends no such run; ``run_once`` sends it only if no later fire
    time of the job is due as well (that one goes instead); ``run_all``
    sends it.
    """
    # Lateness counts from when the run was both due and written: the tick
    # that wrote a run after its fire time already applied the policy.
    late = max(run["scheduled_for"], run["created_at"]) < now - grace
    if run["trigger"] != "schedule" or run["attempts"] or not late:
        return False
    if job["misfire_policy"] == "skip":
        return True
    if job["misfire_policy"] == "run_all":
        return False
    params = {"b_job": job["id"], "b_after": run["scheduled_for"], "b_now": now}
    return conn.execute(_LATER_DUE, params).first() is not None


def _in_flight(
    conn: Connection, job_id: str, run_id: str, now: datetime
) -> tuple[int, int]:
    params = {"b_job": job_id, "b_run": run_id, "b_now": now}
    counts = dict(conn.execute(_IN_FLIGHT, params).all())
    return counts.get("running", 0), counts.get("retrying", 0)


def start_attempt(
    conn: Connection, job: Job, run: Run, now: datetime, until: datetime
) -> Run:
    """Mark the run's next attempt as begun, under a lease until ``until``."""
    values = {
        "status": "running",
        "attempts": run["attempts"] + 1,
        "lease_expires_at": until,
        "started_at": run["started_at"] or now,
        "next_attempt_at": None,
    }
    conn.execute(_UPDATE_RUN, {"b_run": run["id"], **values})
    if run["attempts"] == 0:
        conn.execute(_UPDATE_JOB, {"b_job": job["id"], "last_run_at": now})
    return run | values


def finish_run(conn: Connection, run_id: str, status: str, now: datetime) -> None:
    """End a run that makes no attempt (skipped, cancelled or missed)."""
    values = {"status": status, "finished_at": now, "lease_expires_at": None}
    conn.execute(_UPDATE_RUN, {"b_run": run_id, **values})


def store_attempt(
    conn: Connection,
    run_id: str,
    record: Any,
    outcome: str,
    next_attempt_at: datetime | None,
    now: datetime,
) -> None:
    """Insert a finished attempt and give its run the state it leads to."""
    conn.execute(_INSERT_ATTEMPT, {"run_id": run_id, **vars(record)})
    values = {
        "status": outcome,
        "attempts": record.number,
        "last_status_code": record.status_code,
        "last_error": record.error,
        "next_attempt_at": next_attempt_at,
        "lease_expires_at": None,
        "finished_at": None if outcome == "retrying" else now,
    }
    conn.execute(_UPDATE_RUN, {"b_run": run_id, **values})


def record_on_job(
    conn: Connection,
    job: Job,
    run: Run,
    record: Any,
    outcome: str,
    fail_after: int,
) -> Job:
    """Note a run's final outcome on its job, and what it means for the job.

    A one-time job, or a recurring one whose window has closed, has no next
    fire time: its last scheduled run decides its final status. A manual run
    never finishes a job whose schedule is still to come. A recurring job
    whose runs keep failing stops firing after ``fail_after`` in a row.
    """
    streak = job["consecutive_failures"] + 1 if outcome == "failed" else 0
    values: dict[str, Any] = {
        "last_run_status": outcome,
        "consecutive_failures": streak,
    }
    if job["status"] == "active":
        values |= _status_change(job, run, record, outcome, streak, fail_after)
    conn.execute(_UPDATE_JOB, {"b_job": job["id"], **values})
    if values.get("status_reason"):
        cancel_waiting_runs(conn, job["id"], record.started_at)
    return job | values


def _status_change(
    job: Job,
    run: Run,
    record: Any,
    outcome: str,
    streak: int,
    fail_after: int,
) -> dict[str, Any]:
    if run["trigger"] != "manual" and job["next_run_at"] is None:
        one_time = job["schedule_type"] == "specific_time"
        failed = one_time and outcome == "failed"
        return {"status": "failed" if failed else "completed"}
    if fail_after and streak >= fail_after:
        reason = f"{streak} runs failed in a row; the last: {record.error}"
        return {"status": "failed", "status_reason": reason}
    return {}
