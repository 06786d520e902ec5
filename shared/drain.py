"""Executing queued runs without a long-lived consumer (function platforms).

A consumer process normally moves tasks whose ETA has come from Huey's
schedule to its queue and executes them. Where no process stays up, the
execute function does the same work for as long as its time budget allows.
"""

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger("pingpay.drain")


@dataclass
class DrainSummary:
    """What one drain did."""

    moved: int = 0
    executed: int = 0
    seconds: float = 0.0
    stopped_by: str = "empty queue"


def drain(
    runtime: "Runtime", budget_seconds: float, reserve_seconds: float
) -> DrainSummary:
    """Run due tasks until the queue is empty or the budget runs low.

    A task is only started while more than ``reserve_seconds`` remain, the
    longest an attempt may take, so an attempt never outlives the budget.
    """
    huey = runtime.queue.huey
    started = time.monotonic()
    summary = DrainSummary()
    while True:
        left = budget_seconds - (time.monotonic() - started)
        if left <= reserve_seconds:
            summary.stopped_by = "time budget"
            break
        for task in huey.read_schedule():
            huey.enqueue(task)
            summary.moved += 1
        task = huey.dequeue()
        if task is None:
            break
        huey.execute(task)
        summary.executed += 1
    summary.seconds = time.monotonic() - started
    log.info(
        "drain: %d tasks moved from the schedule, %d executed in %.3f s (%s)",
        summary.moved,
        summary.executed,
        summary.seconds,
        summary.stopped_by,
    )
    return summary
