"""The dispatcher queues each run at its own fire time, in fire-time order."""

import threading
from datetime import timedelta

from shared.dispatcher import Dispatcher
from shared.store.runs import DueRun
from shared.times import utcnow
from tests.helpers import wait_for


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
