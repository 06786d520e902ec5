"""Gathering many threads' calls into one: group commit for the store.

A worker runs many delivery threads, and each one claims a run and records
its attempt in a short transaction of its own. Done one by one, most of the
cost is the transaction itself (its round trips, and the work of building
and sending each statement), not the rows it writes. A :class:`Batcher`
lets each thread call as if it were alone, while a thread of its own hands
every call that is waiting at that moment to one call of ``handle``, which
does them all in one transaction.

Under light load a batch holds one call, and a call costs one hand-over
between threads more than doing it in place; under heavy load batches grow
by themselves, because calls gather while the previous batch is written.
"""

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Generic, TypeVar

from shared.store.retrying import is_connection_error

log = logging.getLogger("pingpay.store")

T = TypeVar("T")
R = TypeVar("R")

#: Put on the queue to stop the batching thread.
_STOP = object()


class Batcher(Generic[T, R]):
    """Runs ``handle(items)`` for the items that callers wait on together.

    ``handle`` answers one result per item, in order. When it raises, every
    caller of that batch gets the error if the database could not be reached
    (each caller decides whether to try again); otherwise each item is
    handled alone, so that one bad item fails only its own call.
    """

    def __init__(
        self, handle: Callable[[list[T]], list[R]], name: str, limit: int = 100
    ) -> None:
        self.handle = handle
        self.name = name
        self.limit = limit
        self._waiting: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()

    def __call__(self, item: T) -> R:
        """``handle([item])[0]``, done together with other waiting calls."""
        future: Future[R] = Future()
        self._start()
        self._waiting.put((item, future))
        return future.result()

    def close(self) -> None:
        """Finish the calls already made, then stop the thread."""
        if self._thread is not None:
            self._waiting.put(_STOP)
            self._thread.join(timeout=10)
            self._thread = None

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._starting:
            if self._thread is None:
                thread = threading.Thread(
                    target=self._loop, name=self.name, daemon=True
                )
                thread.start()
                self._thread = thread

    def _loop(self) -> None:
        while True:
            batch, stopping = self._next_batch()
            if batch:
                self._run(batch)
            if stopping:
                return

    def _next_batch(self) -> tuple[list, bool]:
        """Wait for one call, then take every other call already waiting."""
        batch = []
        entry = self._waiting.get()
        while entry is not _STOP:
            batch.append(entry)
            if len(batch) >= self.limit:
                return batch, False
            try:
                entry = self._waiting.get_nowait()
            except queue.Empty:
                return batch, False
        return batch, True

    def _run(self, batch: list[tuple[T, Future]]) -> None:
        try:
            results = self.handle([item for item, _ in batch])
        except Exception as error:
            if len(batch) == 1 or is_connection_error(error):
                for _, future in batch:
                    future.set_exception(error)
                return
            log.debug("%s: a batch of %d failed, one by one now", self.name, len(batch))
            for entry in batch:
                self._run([entry])
            return
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
