"""Wiring: the store, queue, dispatcher and HTTP sender of one process."""

import logging
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import Literal

from shared.delivery import Sender
from shared.dispatcher import Dispatcher, EtaDispatcher
from shared.execution import execute_run
from shared.queue import Queue, create_huey
from shared.settings import Settings
from shared.store import Store
from shared.targets import TargetRule

log = logging.getLogger("pingpay.runtime")

DispatchMode = Literal["thread", "eta"]


@dataclass
class Runtime:
    """Everything a handler needs, built once per process."""

    settings: Settings
    store: Store
    queue: Queue
    dispatcher: Dispatcher | EtaDispatcher
    sender: Sender

    def start(self) -> None:
        self.dispatcher.start()

    def close(self) -> None:
        self.dispatcher.stop()
        self.sender.close()
        self.store.close()


def build_runtime(settings: Settings, dispatch: DispatchMode = "thread") -> Runtime:
    """Connect to the store and the queue that ``settings`` name.

    ``thread`` dispatch suits processes that stay up (they queue each run at
    its exact fire time); ``eta`` suits function platforms.
    """
    store = Store.from_url(
        settings.database_url,
        settings.worker_concurrency + 4,
        settings.max_deliveries_in_flight,
    )
    queue = Queue(create_huey(settings))
    sender = Sender(
        max_excerpt_bytes=settings.max_excerpt_bytes,
        pool_size=settings.worker_concurrency,
        targets=TargetRule.from_settings(settings),
    )
    runtime = Runtime(
        settings, store, queue, _dispatcher(dispatch, settings, queue, store), sender
    )
    queue.register(partial(execute_run, runtime))
    log.info(
        "job store %s, queue %s, %s dispatch",
        store.engine.dialect.name,
        "redis" if settings.redis_url else "sqlite",
        dispatch,
    )
    return runtime


def _dispatcher(
    dispatch: DispatchMode, settings: Settings, queue: Queue, store: Store
) -> Dispatcher | EtaDispatcher:
    if dispatch == "eta":
        return EtaDispatcher(queue, store.runs)
    lookahead = timedelta(seconds=settings.lookahead_seconds)
    return Dispatcher(queue, store.runs, lookahead)
