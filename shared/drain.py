"""Executing queued runs without a long-lived consumer (function platforms).

A Huey consumer moves tasks whose ETA has come from Huey's schedule to its
queue and executes them on its threads. Where no process stays up, the execute
function does the same for the length of one invocation: it moves due tasks
and executes them on ``WORKER_CONCURRENCY`` threads until its time budget is
nearly spent, even when the queue is empty meanwhile, so that an invocation is
always there to start a run within about a second of its fire time.

An attempt starts only while the time left covers its job's whole timeout
plus ``EXECUTE_MARGIN_SECONDS``, so the platform never ends an invocation in
the middle of an attempt. A run that does not fit goes back on Huey's schedule
for a second, for a younger invocation with more time left.
"""

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from huey.api import Task
from huey.utils import normalize_time

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger("pingpay.drain")

#: How long a drain waits for a free thread before it looks at the clock again.
SLOT_WAIT = 0.5

#: How long a drain with an empty queue waits before looking again, where the
#: queue cannot block (SQLite); Redis blocks for up to a second instead.
IDLE_WAIT = 0.1

#: How long a run that does not fit in the time left waits on the schedule.
FIT_LATER = 1.0

#: How long a run whose attempt needs more than a whole invocation waits
#: before it is looked at again, so that it runs once its job's timeout or the
#: function's is changed, and says so once a minute meanwhile.
TOO_LONG_WAIT = 60.0


@dataclass
class DrainSummary:
    """What one drain did."""

    moved: int = 0
    """Tasks moved from Huey's schedule to the queue: their ETA had come."""
    started: int = 0
    """Tasks executed; each is one attempt, or a run that needs none."""
    deferred: int = 0
    """Runs put back for later: their attempt did not fit in the time left."""
    seconds: float = 0.0
    stopped_by: str = "time budget"


def drain(runtime: "Runtime", budget_seconds: float) -> DrainSummary:
    """Execute due runs for ``budget_seconds``, less the margin, then return.

    Returns after the last attempt it started has finished.
    """
    return _Drain(runtime, budget_seconds).run()


class _Drain:
    def __init__(self, runtime: "Runtime", budget_seconds: float) -> None:
        self.runtime = runtime
        self.huey = runtime.queue.huey
        self.threads = runtime.settings.worker_concurrency
        self.slots = threading.BoundedSemaphore(self.threads)
        self.started_at = time.monotonic()
        self.window = budget_seconds - runtime.settings.execute_margin_seconds
        self.summary = DrainSummary()

    def run(self) -> DrainSummary:
        with ThreadPoolExecutor(self.threads, "pingpay-execute") as pool:
            self._start_tasks(pool)
        # Leaving the pool waited for every attempt in flight.
        self.summary.seconds = time.monotonic() - self.started_at
        log.info(
            "drain: %d tasks moved from the schedule, %d started, %d deferred "
            "in %.3f s (stopped by %s)",
            self.summary.moved,
            self.summary.started,
            self.summary.deferred,
            self.summary.seconds,
            self.summary.stopped_by,
        )
        return self.summary

    def _left(self) -> float:
        return self.window - (time.monotonic() - self.started_at)

    def _start_tasks(self, pool: ThreadPoolExecutor) -> None:
        while self._left() > 0:
            if not self.slots.acquire(timeout=min(self._left(), SLOT_WAIT)):
                continue
            try:
                task = self._next_task()
                runnable = task is not None and self._fits(task)
            except Exception as error:
                # A task taken but not run stays queued in the database; the
                # tick's sweep queues it again.
                self.slots.release()
                log.warning("no more runs start in this invocation: %s", error)
                self.summary.stopped_by = "queue or database unavailable"
                return
            if not runnable:
                self.slots.release()
                continue
            pool.submit(self._execute, task)
            self.summary.started += 1

    def _next_task(self) -> Task | None:
        """The next task due now, after moving those whose ETA has come."""
        for task in self.huey.read_schedule():
            self.huey.enqueue(task)
            self.summary.moved += 1
        task = self.huey.dequeue()
        if task is None and not self.huey.storage.blocking:
            time.sleep(max(0.0, min(IDLE_WAIT, self._left())))
        if task is not None and not self.huey.ready_to_run(task):
            # Huey queues a task with an ETA at once; whoever takes it first
            # puts it on the schedule until its time.
            self.huey.add_schedule(task)
            return None
        return task

    def _fits(self, task: Task) -> bool:
        """Whether the run's attempt ends before the budget; else defer it."""
        (run_id,) = task.args
        attempt = self.runtime.store.runs.next_attempt(run_id)
        if attempt is None or attempt.timeout <= self._left():
            return True
        if attempt.timeout <= self.window:
            self._defer(task, FIT_LATER)
            return False
        log.error(
            "job %s run %s attempt %d waits: its timeout of %.0f s is longer than "
            "an execute invocation's %.0f s; raise the function's timeout or "
            "lower the job's timeout_seconds",
            attempt.job_id,
            run_id,
            attempt.number,
            attempt.timeout,
            self.window,
        )
        self._defer(task, TOO_LONG_WAIT)
        return False

    def _defer(self, task: Task, seconds: float) -> None:
        task.eta = normalize_time(delay=seconds, utc=self.huey.utc)
        self.huey.add_schedule(task)
        self.summary.deferred += 1

    def _execute(self, task: Task) -> None:
        try:
            self.huey.execute(task)
        finally:
            self.slots.release()
