"""The work queue: Huey on Redis in servers mode, Huey on SQLite embedded.

The queue carries run ids only; everything else about a run lives in the
database, so a queue that loses its contents delays runs and loses nothing
(the tick's sweep queues them again).
"""

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

import redis
from huey import Huey, RedisHuey, SqliteHuey
from huey.storage import RedisStorage

from shared.settings import Settings

log = logging.getLogger("pingpay.queue")

#: Most run ids sent to Redis in one command.
PUSH_CHUNK = 500


class _Unrevoked:
    """Huey without its check for revoked tasks before each one runs.

    Runs are stopped in the database (a paused or deleted job's waiting runs
    are cancelled there, and a worker checks before each attempt), never by
    revoking their task, so the check would only cost a lookup in the
    queue's storage for every run.
    """

    def is_revoked(self, task, timestamp=None, peek=True) -> bool:
        return False


class _RedisQueue(_Unrevoked, RedisHuey):
    pass


class _SqliteQueue(_Unrevoked, SqliteHuey):
    pass


def create_huey(settings: Settings) -> Huey:
    """Huey on Redis when an address is set, else on a SQLite file."""
    if settings.redis_url:
        pool = redis.ConnectionPool.from_url(
            settings.redis_url,
            socket_connect_timeout=3,
            socket_timeout=10,
            health_check_interval=30,
        )
        return _RedisQueue(
            settings.queue_name, connection_pool=pool, results=False, utc=True
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return _SqliteQueue(
        settings.queue_name,
        filename=str(settings.data_dir / "queue.db"),
        results=False,
        utc=True,
        timeout=30,
    )


class Queue:
    """Puts run ids on the Huey queue for ``deliver`` to execute."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._deliver = None

    def register(self, deliver: Callable[[str], None]) -> None:
        """Name the function that executes a run id taken from the queue."""

        def deliver_run(run_id: str) -> None:
            deliver(run_id)

        self._deliver = self.huey.task(name="deliver")(deliver_run)

    def push(self, run_ids: Iterable[str]) -> None:
        """Queue runs to execute as soon as a worker is free.

        On Redis, many runs go in one command, not one round trip each.
        """
        tasks = [self._deliver.s(run_id) for run_id in run_ids]
        storage = self.huey.storage
        if not isinstance(storage, RedisStorage):
            for task in tasks:
                self.huey.enqueue(task)
            return
        for start in range(0, len(tasks), PUSH_CHUNK):
            chunk = tasks[start : start + PUSH_CHUNK]
            messages = [self.huey.serialize_task(task) for task in chunk]
            storage.conn.lpush(storage.queue_key, *messages)

    def push_at(self, run_id: str, eta: datetime) -> None:
        """Queue a run to execute at ``eta``, an aware datetime.

        A naive ETA would be read in the process's local time zone, so a
        worker in New York would run it hours late; refuse one outright.
        """
        if eta.tzinfo is None:
            raise ValueError("a queue ETA must be timezone-aware")
        self._deliver.schedule(args=(run_id,), eta=eta)

    def depth(self) -> int:
        """Runs waiting in the queue (not counting those scheduled ahead)."""
        return self.huey.pending_count()

    def scheduled(self) -> int:
        """Runs the queue holds for a later time (ETA dispatch and retries)."""
        return self.huey.scheduled_count()

    def ping(self) -> None:
        """Raise when the queue's storage does not answer."""
        self.huey.pending_count()

    def consumer(self, workers: int):
        """A Huey consumer running ``workers`` delivery threads.

        On SQLite the consumer polls; a short poll keeps a run's start within
        a few tens of milliseconds of the moment it was queued. On Redis the
        workers block on the queue and wake at once.
        """
        polling = {"initial_delay": 0.02, "backoff": 1.5, "max_delay": 0.1}
        return self.huey.create_consumer(
            workers=workers,
            worker_type="thread",
            periodic=False,
            **({} if self.huey.storage.blocking else polling),
        )
