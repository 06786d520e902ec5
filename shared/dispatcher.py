"""Handing runs to the queue at their fire time.

Huey looks at its own schedule of future tasks once a second, which would add
up to a second of lateness to every run. A long-running process therefore
keeps the runs it planned in memory and queues each at its exact fire time
(:class:`Dispatcher`). A process that does not stay up (a function platform)
gives them to Huey with their fire time as the ETA instead
(:class:`EtaDispatcher`).

Either way a run stays ``pending`` in the database until the queue has it,
so a dispatcher that dies, or a queue that is down, delays runs and loses
none: the tick's sweep queues them again. A process that stops cleanly (a
restart, a deploy) leaves the runs it held ``pending`` (or ``retrying``)
too, and the :class:`Dispatcher` of the process that starts next takes them
over before their time.
"""

import heapq
import logging
import threading
from collections.abc import Iterable
from datetime import datetime, timedelta

from shared import metrics
from shared.queue import Queue
from shared.store.runs import DueRun, RunStore
from shared.times import utcnow

log = logging.getLogger("pingpay.dispatcher")

#: The longest the dispatcher sleeps before it reads the wall clock again.
MAX_SLEEP = 1.0


class EtaDispatcher:
    """Queues each run at once, with its fire time as the queue's ETA."""

    def __init__(self, queue: Queue, runs: RunStore) -> None:
        self.queue = queue
        self.runs = runs

    def hold(self, due: Iterable[DueRun]) -> int:
        """Queue every run now; answers how many went to the queue."""
        now = utcnow()
        queued = []
        for run in due:
            if run.due <= now:
                self.queue.push([run.id])
            else:
                self.queue.push_at(run.id, run.due)
            queued.append(run.id)
        metrics.runs_dispatched(len(queued))
        if queued:
            self.runs.mark_queued(queued, now)
        return len(queued)

    def start(self) -> None:
        """Nothing to start: the queue keeps the schedule."""

    def stop(self) -> None:
        """Nothing to stop."""


class Dispatcher:
    """Holds runs in memory and queues each at its fire time, from one thread.

    With a ``lookahead``, on start it takes over the runs waiting for a
    fire time or a retry within it: the tick or the attempt that left them
    waiting may have been another process's, one that has stopped since.
    """

    def __init__(
        self, queue: Queue, runs: RunStore, lookahead: timedelta | None = None
    ) -> None:
        self.queue = queue
        self.runs = runs
        self.lookahead = lookahead
        # Ordered by fire time: (due, run id) pairs, never DueRun itself,
        # whose tuple order would compare run ids first.
        self._heap: list[tuple[datetime, str]] = []
        self._held_ids: set[str] = set()
        self._wakeup = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        metrics.watch_dispatcher(self)

    def hold(self, due: Iterable[DueRun]) -> int:
        """Take runs to queue at their ``due`` time (at once if past).

        A run already held keeps its time: the take-over on start and the
        sweep may offer runs this dispatcher holds, which must not go to the
        queue twice. Answers 0: none is on the queue yet when this returns.
        """
        with self._wakeup:
            for run in due:
                if run.id not in self._held_ids:
                    self._held_ids.add(run.id)
                    heapq.heappush(self._heap, (run.due, run.id))
            self._wakeup.notify()
        return 0

    def held(self) -> int:
        """How many runs wait in memory for their fire time."""
        with self._wakeup:
            return len(self._heap)

    def start(self) -> None:
        self._take_over()
        self._stopping = False
        self._thread = threading.Thread(
            target=self._loop, name="pingpay-dispatcher", daemon=True
        )
        self._thread.start()

    def _take_over(self) -> None:
        """Hold the runs waiting for a fire time or a retry within the look-ahead.

        A process that stopped left the runs it held ``pending`` (their jobs'
        ``next_run_at`` already past them: no tick plans them again) or
        ``retrying``, and the sweep would find them only once overdue, maybe
        too late for their job's misfire policy. Some may be held by a live
        process as well (during a rolling deploy, every other worker): that
        costs a second queue message, no second delivery, since
        ``RunStore.claim`` locks the run and takes it only while it waits, so
        the second copy finds it running or finished (``gone``), or waiting
        for its retry (``early``, held until then). Taken over before its
        fire time, a run goes out on time: the misfire check counts lateness
        from the fire time, not from when a process took the run.
        """
        if self.lookahead is None:
            return
        try:
            due = self.runs.waiting_before(utcnow() + self.lookahead)
        except Exception as error:
            log.warning("could not look for waiting runs to take over: %s", error)
            return
        if due:
            log.info("took over %d runs due within the look-ahead", len(due))
        self.hold(due)

    def stop(self) -> None:
        """Stop the thread; runs still held stay pending in the database.

        The next process to start takes them over; if none does, the sweep
        queues them once they are overdue.
        """
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            due = self._wait_for_due()
            if due is None:
                return
            self._send(due)

    def _wait_for_due(self) -> list[str] | None:
        """Sleep until the earliest run is due; pop every run due by then."""
        with self._wakeup:
            while not self._stopping:
                wait = self._seconds_to_next()
                if wait is not None and wait <= 0:
                    break
                self._wakeup.wait(timeout=wait)
            if self._stopping:
                return None
            now = utcnow()
            due = []
            while self._heap and self._heap[0][0] <= now:
                due.append(heapq.heappop(self._heap)[1])
            self._held_ids.difference_update(due)
            return due

    def _seconds_to_next(self) -> float | None:
        """Seconds to sleep before looking at the earliest run again.

        Fire times are wall-clock times, but a sleep runs on the monotonic
        clock: when the wall clock is stepped forward (a time sync), a long
        sleep would wake late by the step. Waking at least once a second
        bounds that lateness to a second.
        """
        if not self._heap:
            return None
        return min((self._heap[0][0] - utcnow()).total_seconds(), MAX_SLEEP)

    def _send(self, run_ids: list[str]) -> None:
        try:
            self.queue.push(run_ids)
        except Exception as error:
            metrics.runs_dispatched(len(run_ids), queued=False)
            log.warning(
                "queue unavailable, %d runs stay pending for the sweep: %s",
                len(run_ids),
                error,
            )
            return
        metrics.runs_dispatched(len(run_ids))
        try:
            self.runs.mark_queued(run_ids, utcnow())
        except Exception as error:
            log.warning("could not mark %d runs queued: %s", len(run_ids), error)
