"""Steady: N jobs each firing every minute, their fire times spread evenly.

The first minute is a warm-up; the measured window is the next ``window``
seconds. Every fire time in the window is one expected delivery: lateness is
measured over all of them, and one that has not arrived ``TAIL`` seconds
after the window is counted as not delivered. Each system also says how many
fire times of the window it gave up on: our runs recorded as ``missed``, and
APScheduler's missed-job events.
"""

import time
from typing import Any

from sqlalchemy import func, select

from bench import seed
from bench.context import Bench, sleep_until, with_load
from bench.plan import PERIOD, spread_starts, utc, window_keys
from bench.service import Layout
from bench.stats import deliveries
from shared.store.engine import create_store_engine
from shared.store.tables import runs

#: Seconds after the window that late deliveries are still waited for.
TAIL = 30.0

#: APScheduler's misfire grace: the same as our MISFIRE_GRACE_SECONDS.
GRACE = 60.0


def run(bench: Bench, count: int, window: float, layout: Layout) -> dict[str, Any]:
    name = f"steady_{count}"
    return {
        "pingpay": with_load(lambda: _ours(bench, name, count, window, layout)),
        "apscheduler": with_load(lambda: _theirs(bench, name, count, window, layout)),
    }


def _ours(
    bench: Bench, name: str, count: int, window: float, layout: Layout
) -> dict[str, Any]:
    service = bench.service(name, layout)
    first = time.time() + 20 + count / 2000
    starts = spread_starts(count, first)
    target = bench.sink.url(name)
    bodies = [seed.every_minute(f"{name} {i}", target, s) for i, s in enumerate(starts)]
    engine = create_store_engine(bench.database.sqlalchemy_url)
    ids = seed.store_jobs(engine, bodies)
    service.start()
    begin, end = first + PERIOD, first + PERIOD + window
    try:
        resources = _measure(bench, service.groups(), begin, end)
        sleep_until(end + TAIL)
    finally:
        service.stop()
    missed = _missed_runs(engine, begin, end)
    engine.dispose()
    result = _window(bench, window, window_keys(ids, starts, begin, end))
    return result | {"missed_runs": missed, "resources": resources}


def _theirs(
    bench: Bench, name: str, count: int, window: float, layout: Layout
) -> dict[str, Any]:
    # Leave time to add every job before the first fires (400 to 900 a second
    # were measured here; the warm-up minute absorbs a slower start).
    first = time.time() + 10 + count / 500
    begin, end = first + PERIOD, first + PERIOD + window
    aps = bench.aps(
        "steady",
        name,
        {
            "threads": layout.threads,
            "count": count,
            "first": first,
            "until": end + TAIL,
            "grace": GRACE,
            "begin": begin,
            "end": end,
        },
    )
    resources = _measure(bench, {"apscheduler": aps.pids}, begin, end)
    added = aps.result()
    ids = [f"aps-{index}" for index in range(count)]
    expected = window_keys(ids, spread_starts(count, first), begin, end)
    return _window(bench, window, expected) | {
        "add_rate": added["add_rate"],
        "missed_events": added["missed_events"],
        "resources": resources,
    }


def _measure(bench: Bench, groups: dict, begin: float, end: float) -> dict:
    """CPU and memory of ``groups`` over the window."""
    sleep_until(begin)
    with bench.sampler(groups) as sampler:
        sleep_until(end)
    return sampler.summary()


def _window(bench: Bench, window: float, expected: set) -> dict[str, Any]:
    summary = deliveries(bench.sink.arrivals(), expected)
    return summary | {"deliveries_per_second": summary["delivered"] / window}


def _missed_runs(engine, begin: float, end: float) -> int:
    """Our runs in the window that the service itself recorded as missed."""
    query = select(func.count()).where(
        runs.c.status == "missed",
        runs.c.scheduled_for >= utc(begin),
        runs.c.scheduled_for < utc(end),
    )
    with engine.connect() as conn:
        return conn.scalar(query)
