"""The dispatcher queues each run at its own fire time, in fire-time order."""

import threading
import time
import uuid
from datetime import timedelta

from sqlalchemy import insert

from shared.definitions import new_job
from shared.dispatcher import MAX_SLEEP, Dispatcher
from shared.store.runs import DueRun
from shared.store.tables import runs
from shared.times import utcnow
from tests.helpers import wait_for
from tests.test_tick import EVERY_MINUTE


class RecordingQueue:
    """Stands in for the queue: notes which run ids arrive, and when."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, object]] = []
        self.lock = threading.Lock()

    def push(self, run_ids) -> None:
        with self.lock:
            self.pushed += [(run_id, utcnow()) for run_id in run_ids]


def test_runs_go_out_at_their_fire_times_whatever_their_ids(runtime):
    queue = RecordingQueue()
    dispatcher = Dispatcher(queue, runtime.store.runs)
    dispatcher.start()
    now = utcnow()
    # Run ids sort the opposite way to fire times.
    due = {
        "a-last": now + timedelta(seconds=1.2),
        "m-middle": now + timedelta(seconds=0.8),
        "z-first": now + timedelta(seconds=0.4),
    }

    dispatcher.hold(DueRun(run_id, when) for run_id, when in due.items())
    wait_for(lambda: len(queue.pushed) == 3, timeout=5)
    dispatcher.stop()

    assert [run_id for run_id, _ in queue.pushed] == ["z-first", "m-middle", "a-last"]
    for run_id, at in queue.pushed:
        lateness = (at - due[run_id]).total_seconds()
        assert 0 <= lateness < 0.25, f"{run_id} went out {lateness:.3f} s late"


def test_runs_already_due_go_out_at_once_and_stop_leaves_the_rest(runtime):
    queue = RecordingQueue()
    dispatcher = Dispatcher(queue, runtime.store.runs)
    dispatcher.start()
    now = utcnow()

    dispatcher.hold(
        [
            DueRun("late", now - timedelta(seconds=5)),
            DueRun("later", now + timedelta(hours=1)),
        ]
    )
    wait_for(lambda: queue.pushed, timeout=2)
    dispatcher.stop()

    assert [run_id for run_id, _ in queue.pushed] == ["late"]
    assert dispatcher.held() == 1


def test_a_dispatcher_takes_over_the_runs_a_stopped_one_held(runtime):
    job = new_job(EVERY_MINUTE, utcnow())
    runtime.store.jobs.insert(job)
    now = utcnow()
    soon = add_waiting(runtime, job, now + timedelta(seconds=1))
    overdue = add_waiting(runtime, job, now - timedelta(seconds=3))
    retry = add_waiting(
        runtime, job, now - timedelta(minutes=1), now + timedelta(seconds=1.5)
    )
    add_waiting(runtime, job, now + timedelta(minutes=5))  # beyond the look-ahead
    queue = RecordingQueue()
    dispatcher = Dispatcher(queue, runtime.store.runs, timedelta(seconds=90))

    dispatcher.start()
    dispatcher.hold([soon])  # a tick offers it again
    wait_for(lambda: len(queue.pushed) == 3, timeout=5)
    time.sleep(0.3)
    dispatcher.stop()

    assert [run_id for run_id, _ in queue.pushed] == [overdue.id, soon.id, retry.id]
    for run, (_, at) in zip([overdue, soon, retry], queue.pushed, strict=True):
        assert at >= run.due
    assert dispatcher.held() == 0
    assert runtime.store.runs.get(soon.id)["status"] == "queued"


def add_waiting(runtime, job, fire_time, retry_at=None) -> DueRun:
    """A pending run, or with ``retry_at`` one waiting for its second attempt."""
    run_id = str(uuid.uuid4())
    with runtime.store.engine.begin() as conn:
        conn.execute(
            insert(runs).values(
                id=run_id,
                job_id=job["id"],
                scheduled_for=fire_time,
                trigger="schedule",
                status="retrying" if retry_at else "pending",
                next_attempt_at=retry_at,
                attempts=1 if retry_at else 0,
                created_at=utcnow(),
            )
        )
    return DueRun(run_id, retry_at or fire_time)


def test_a_far_run_does_not_put_the_dispatcher_to_sleep_for_long(runtime):
    # The wall clock may be stepped forward while the dispatcher sleeps; it
    # must look at the clock again soon, not at the far fire time only.
    dispatcher = Dispatcher(RecordingQueue(), runtime.store.runs)

    dispatcher.hold([DueRun("far", utcnow() + timedelta(hours=1))])

    assert dispatcher._seconds_to_next() <= MAX_SLEEP
