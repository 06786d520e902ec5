"""The statements a worker runs around each attempt: claim, start, finish.

They run once per delivery, so each is built once here, with bound
parameters, instead of anew on every call: building a statement costs more
than running it. Each works on many runs at once (a worker's delivery
threads claim and finish together, see ``batching.py``). Lock order is job
rows (in id order) before their runs, then delivery slots, as everywhere.
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update

from shared.store import slots
from shared.store.jobs import Job, cancel_waiting_runs
from shared.store.tables import attempts, jobs, runs

Run = dict[str, Any]

#: Statuses of a run that a worker may claim for an attempt.
CLAIMABLE = ("pending", "queued", "retrying")


@dataclass(frozen=True)
class Claim:
    """What a worker may do with a run it took from the queue.

    ``decision`` is ``run`` (an attempt may start: ``run`` and ``job`` are
    set), ``early`` (its fire time, or its retry's, has not come: a queue
    handed it over ahead of time, or twice), ``wait`` (the job is at its
    concurrency limit), ``busy`` (the whole service is at its limit),
    ``skipped`` (the job's overlap policy dropped it), ``missed`` (it
    started too late and the misfire policy dropped it), ``cancelled`` (the
    job was stopped) or ``gone`` (nothing left to do: unknown, finished or
    held elsewhere).
    """

    decision: str
    run: Run | None = None
    job: Job | None = None


@dataclass(frozen=True)
class ClaimRequest:
    """A worker asking for a run at ``now``, to hold for ``lease(job)`` seconds.

    ``grace`` is how late a scheduled run may start before the job's misfire
    policy decides whether it still goes out.
    """

    run_id: str
    now: datetime
    lease: Callable[[Job], float]
    grace: timedelta


@dataclass(frozen=True)
class Finish:
    """A finished attempt, and the status it gives its run (``outcome``)."""

    run: Run
    record: Any
    outcome: str
    next_attempt_at: datetime | None
    now: datetime
    fail_after: int = 0


#: How far ahead of its fire time a run may start: clocks of two machines
#: differ by a few milliseconds, never by this much.
EARLY_TOLERANCE = timedelta(milliseconds=500)

_RUN_PREFIX = "run__"

#: Runs and their jobs in one statement, all locked, in job id order (rows
#: are locked as the statement returns them).
_LOCK_RUNS_AND_JOBS = (
    select(*jobs.c, *[c.label(_RUN_PREFIX + c.name) for c in runs.c])
    .select_from(jobs.join(runs, runs.c.job_id == jobs.c.id))
    .where(runs.c.id.in_(bindparam("b_runs", expanding=True)))
    .order_by(jobs.c.id, runs.c.id)
    .with_for_update()
)

_LOCK_JOBS = (
    select(jobs)
    .where(jobs.c.id.in_(bindparam("b_jobs", expanding=True)))
    .order_by(jobs.c.id)
    .with_for_update()
)

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


def claim_runs(
    conn: Connection, requests: list[ClaimRequest], max_in_flight: int
) -> list[Claim]:
    """Claim each requested run for an attempt, or say why not; in order.

    With ``max_in_flight`` above zero, a run may start only with a free
    delivery slot (see ``slots.py``); without one it is ``busy``.
    """
    found = _lock_runs_and_jobs(conn, [request.run_id for request in requests])
    free = _free_slots(conn, requests, found, max_in_flight)
    started: Counter[str] = Counter()
    answers, starts, ends = [], [], []
    for request in requests:
        run, job = found.pop(request.run_id, (None, None))
        if run is None or run["status"] not in CLAIMABLE:
            answers.append(Claim("gone"))
            continue
        now = request.now
        decision = admission(conn, job, run, now, request.grace, started[job["id"]])
        if decision == "run" and free is not None and not free:
            decision = "busy"
        if decision == "run":
            started[job["id"]] += 1
            until = now + timedelta(seconds=request.lease(job))
            run = _started(run, now, until)
            starts.append((job, run, free.pop(0) if free is not None else None))
        elif decision in ("skipped", "cancelled", "missed"):
            ends.append({"b_run": run["id"], **_ended(decision, now)})
        answers.append(Claim(decision, run, job))
    _write_starts(conn, starts)
    _execute_many(conn, _UPDATE_RUN, ends)
    return answers


def _lock_runs_and_jobs(
    conn: Connection, run_ids: list[str]
) -> dict[str, tuple[Run, Job]]:
    """Each run with its job, locked until the transaction ends."""
    found = {}
    for row in conn.execute(_LOCK_RUNS_AND_JOBS, {"b_runs": run_ids}):
        job, run = {}, {}
        for key, value in row._mapping.items():
            if key.startswith(_RUN_PREFIX):
                run[key[len(_RUN_PREFIX) :]] = value
            else:
                job[key] = value
        found[run["id"]] = (run, job)
    return found


def _free_slots(
    conn: Connection,
    requests: list[ClaimRequest],
    found: dict[str, tuple[Run, Job]],
    max_in_flight: int,
) -> list[int] | None:
    """Enough free delivery slots, locked, for every run that may start.

    None when the service has no limit. Slots left unused stay free.
    """
    if not max_in_flight:
        return None
    wanted = sum(1 for run, _ in found.values() if run["status"] in CLAIMABLE)
    return slots.lock_free(conn, max_in_flight, wanted, requests[0].now)


def lock_jobs(conn: Connection, job_ids: Iterable[str]) -> dict[str, Job]:
    """The jobs that still exist among ``job_ids``, locked, by id."""
    rows = conn.execute(_LOCK_JOBS, {"b_jobs": sorted(set(job_ids))})
    return {row.id: dict(row._mapping) for row in rows}


def admission(
    conn: Connection,
    job: Job,
    run: Run,
    now: datetime,
    grace: timedelta,
    started: int = 0,
) -> str:
    """Whether a run may start now, under its job's status and limits.

    ``started`` counts the job's runs started by this transaction, which
    the database does not show yet. A manual run of a paused job makes its
    first attempt (the user asked for it), but no retry after the pause.
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
    running += started
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


def _started(run: Run, now: datetime, until: datetime) -> Run:
    """The run with its next attempt begun, under a lease until ``until``."""
    return run | {
        "status": "running",
        "attempts": run["attempts"] + 1,
        "lease_expires_at": until,
        "started_at": run["started_at"] or now,
        "next_attempt_at": None,
    }


def _write_starts(conn: Connection, starts: list[tuple[Job, Run, int | None]]) -> None:
    """Store the begun attempts, their jobs' last run time and their slots."""
    runs_values = [
        {"b_run": run["id"]} | {key: run[key] for key in _START_KEYS}
        for _, run, _ in starts
    ]
    first_attempts = [
        {"b_job": job["id"], "last_run_at": run["started_at"]}
        for job, run, _ in starts
        if run["attempts"] == 1
    ]
    held = [
        {
            "b_number": slot,
            "run_id": run["id"],
            "lease_expires_at": run["lease_expires_at"],
        }
        for _, run, slot in starts
        if slot is not None
    ]
    _execute_many(conn, _UPDATE_RUN, runs_values)
    _execute_many(conn, _UPDATE_JOB, first_attempts)
    slots.hold(conn, held)


_START_KEYS = (
    "status",
    "attempts",
    "lease_expires_at",
    "started_at",
    "next_attempt_at",
)


def _ended(status: str, now: datetime) -> dict[str, Any]:
    """A run that makes no attempt (skipped, cancelled or missed)."""
    return {"status": status, "finished_at": now, "lease_expires_at": None}


def finish_attempts(
    conn: Connection, finishes: list[Finish], max_in_flight: int
) -> list[Job | None]:
    """Store finished attempts and their runs' new states; note final ones.

    Answers each run's job as it now is, or None for a job deleted
    meanwhile (its runs went with it).
    """
    found = lock_jobs(conn, (finish.run["job_id"] for finish in finishes))
    if max_in_flight:
        slots.free(conn, [finish.run["id"] for finish in finishes])
    live = [finish for finish in finishes if finish.run["job_id"] in found]
    _store_attempts(conn, live)
    changes: dict[str, dict[str, Any]] = {}
    for finish in live:
        if finish.outcome != "retrying":
            _record_on_job(conn, found, changes, finish)
    _execute_many(
        conn,
        _UPDATE_JOB,
        [{"b_job": job_id} | values for job_id, values in changes.items()],
    )
    return [found.get(finish.run["job_id"]) for finish in finishes]


def _store_attempts(conn: Connection, finishes: list[Finish]) -> None:
    """Insert the attempts and give their runs the state each leads to."""
    if not finishes:
        return
    conn.execute(
        _INSERT_ATTEMPT,
        [{"run_id": finish.run["id"], **vars(finish.record)} for finish in finishes],
    )
    _execute_many(conn, _UPDATE_RUN, [_run_after(finish) for finish in finishes])


def _run_after(finish: Finish) -> dict[str, Any]:
    record = finish.record
    return {
        "b_run": finish.run["id"],
        "status": finish.outcome,
        "attempts": record.number,
        "last_status_code": record.status_code,
        "last_error": record.error,
        "next_attempt_at": finish.next_attempt_at,
        "lease_expires_at": None,
        "finished_at": None if finish.outcome == "retrying" else finish.now,
    }


def _record_on_job(
    conn: Connection,
    found: dict[str, Job],
    changes: dict[str, dict[str, Any]],
    finish: Finish,
) -> None:
    """Note a run's final outcome on its job, and what it means for the job.

    A one-time job, or a recurring one whose window has closed, has no next
    fire time: its last scheduled run decides its final status. A manual run
    never finishes a job whose schedule is still to come. A recurring job
    whose runs keep failing stops firing after ``fail_after`` in a row.
    Several runs of one job in a batch count in order.
    """
    job, outcome = found[finish.run["job_id"]], finish.outcome
    streak = job["consecutive_failures"] + 1 if outcome == "failed" else 0
    values: dict[str, Any] = {
        "last_run_status": outcome,
        "consecutive_failures": streak,
    }
    if job["status"] == "active":
        values |= _status_change(
            job, finish.run, finish.record, outcome, streak, finish.fail_after
        )
    found[job["id"]] = job | values
    changes[job["id"]] = changes.get(job["id"], {}) | values
    if values.get("status_reason"):
        cancel_waiting_runs(conn, job["id"], finish.record.started_at)


def _execute_many(conn: Connection, statement, rows: list[dict[str, Any]]) -> None:
    """Run ``statement`` once per row, in one round trip per set of columns.

    An UPDATE run for many rows sets the same columns in each, so rows that
    set different columns go in separate groups.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    # A single row goes as a plain statement: an executemany costs more.
    for group in groups.values():
        conn.execute(statement, group[0] if len(group) == 1 else group)


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
