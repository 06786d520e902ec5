"""The tick: turn due fire times into runs and hand them to the dispatcher.

Every long-running worker ticks once a minute (a function platform invokes
the tick function instead). A tick claims due jobs in batches, writes their
runs, advances each job's ``next_run_at``, hands the new runs to the
dispatcher, then sweeps up runs that a dead worker or an emptied queue lost.
Ticks may run concurrently anywhere: row locks and the unique key on (job,
fire time) keep each fire time to one run, so no leader is needed.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from shared import metrics
from shared.definitions import due_soon
from shared.planning import Plan, plan_runs
from shared.store.jobs import Job
from shared.times import utcnow

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger("pingpay.tick")

#: A live dispatcher queues a run at its fire time and marks it ``queued``
#: within milliseconds, so a run still ``pending`` this long after its fire
#: time is held by no live process (the one holding it died) or the queue
#: refused it: every tick's sweep queues it. Runs held by live processes are
#: never pending this long, so the sweep does not queue them a second time.
OVERDUE = timedelta(seconds=5)


@dataclass
class TickSummary:
    """What one tick did."""

    jobs: int = 0
    runs_created: int = 0
    runs_recovered: int = 0
    runs_pruned: int = 0
    runs_queued: int = 0
    """Runs on the queue when the tick returns (with their fire time as ETA).

    Where a dispatcher thread holds runs until their fire time, 0.
    """
    seconds: float = 0.0


def tick(
    runtime: "Runtime",
    now: datetime | None = None,
    job_ids: list[str] | None = None,
    sweep: bool = True,
) -> TickSummary:
    """Schedule every fire time due before ``now`` plus the look-ahead.

    With ``job_ids``, only those jobs are looked at (the API uses this for a
    job created or changed to fire within the look-ahead).
    """
    started = time.perf_counter()
    now = now or utcnow()
    summary = TickSummary()
    _plan_due_jobs(runtime, now, job_ids, summary)
    if sweep:
        _sweep(runtime, now, summary)
    summary.seconds = time.perf_counter() - started
    metrics.tick_finished(summary, regular=job_ids is None)
    level = logging.INFO if summary.jobs or summary.runs_recovered else logging.DEBUG
    log.log(
        level,
        "tick: %d jobs due, %d runs created, %d runs recovered in %.3f s",
        summary.jobs,
        summary.runs_created,
        summary.runs_recovered,
        summary.seconds,
    )
    return summary


def add_job(runtime: "Runtime", job: Job, now: datetime) -> Job:
    """Store a new job; one that fires within the look-ahead gets its runs.

    Those runs are written in the transaction that stores the job, with
    ``next_run_at`` already past them, so no tick needs to find the job and
    none can plan its fire times twice.
    """
    if not due_soon(job, now, runtime.settings.lookahead_seconds):
        return runtime.store.jobs.insert(job)
    started = time.perf_counter()
    job, due = runtime.store.runs.insert_planned(job, planner(runtime, now)(job), now)
    summary = TickSummary(jobs=1, runs_created=len(due))
    summary.runs_queued = runtime.dispatcher.hold(due)
    summary.seconds = time.perf_counter() - started
    metrics.tick_finished(summary, regular=False)
    return job


def planner(runtime: "Runtime", now: datetime) -> Callable[[Job], Plan]:
    """The runs a tick at ``now`` writes for a job, and where it goes next."""
    settings = runtime.settings
    return partial(
        plan_runs,
        now=now,
        horizon=_horizon(runtime, now),
        grace=timedelta(seconds=settings.misfire_grace_seconds),
        max_catch_up=settings.max_catch_up_runs,
    )


def _horizon(runtime: "Runtime", now: datetime) -> datetime:
    return now + timedelta(seconds=runtime.settings.lookahead_seconds)


def _plan_due_jobs(
    runtime: "Runtime", now: datetime, job_ids: list[str] | None, summary: TickSummary
) -> None:
    settings = runtime.settings
    horizon, plan = _horizon(runtime, now), planner(runtime, now)
    while True:
        claimed, due = runtime.store.runs.plan_due(
            now, horizon, settings.tick_batch_size, plan, job_ids
        )
        summary.jobs += claimed
        summary.runs_created += len(due)
        summary.runs_queued += runtime.dispatcher.hold(due)
        if claimed < settings.tick_batch_size:
            return


def _sweep(runtime: "Runtime", now: datetime, summary: TickSummary) -> None:
    settings = runtime.settings
    stale = timedelta(seconds=settings.stale_after_seconds)
    lost = runtime.store.runs.recover_stale(
        now, now - OVERDUE, now - stale, now - 5 * stale
    )
    summary.runs_recovered = len(lost)
    if lost:
        log.warning("re-queuing %d runs a worker or the queue lost", len(lost))
        summary.runs_queued += runtime.dispatcher.hold(lost)
    if settings.run_retention_days:
        cutoff = now - timedelta(days=settings.run_retention_days)
        summary.runs_pruned = runtime.store.runs.prune(cutoff)


class Ticker:
    """Ticks every ``tick_interval_seconds`` in a background thread."""

    def __init__(self, runtime: "Runtime") -> None:
        self.runtime = runtime
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._loop, name="pingpay-ticker", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        interval = self.runtime.settings.tick_interval_seconds
        while not self._stop.is_set():
            try:
                tick(self.runtime)
            except Exception as error:
                log.warning("tick failed, trying again in %.0f s: %s", interval, error)
            self._stop.wait(interval)
