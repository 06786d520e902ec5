"""Many stored jobs: one tick's cost, and the API's speed, at 100,000 jobs.

Only our service has these workloads: APScheduler has neither a tick that
can be timed alone nor a REST API. Its job lookups are timed during the
burst instead.

The tick is timed in this process, on a runtime whose dispatcher is not
started (the planned runs stay in memory, as in a worker until their fire
time), three cases: the full store with the full due count, the full store
with a tenth of it due, and a store holding only the due jobs. If the tick's
time follows the due count and not the total, the first and third match and
the second is about ten times faster.
"""

import asyncio
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, bindparam, delete, event, select, update

from bench import seed
from bench.context import Bench, with_load
from bench.load import drive
from bench.plan import utc
from bench.stats import latency_summary
from shared.runtime import Runtime, build_runtime
from shared.settings import Settings
from shared.store.engine import create_store_engine
from shared.store.tables import jobs, runs
from shared.tick import tick
from shared.web.pages import encode_cursor

REPEATS = 3
FAR = 86400.0
API_CLIENTS = 50


def run(
    bench: Bench, total: int, due: int, api_seconds: float, parts: set[str]
) -> dict[str, Any]:
    """The ``tick`` and ``api`` workloads (whichever ``parts`` names)."""
    bench.database.empty()
    engine = create_store_engine(bench.database.sqlalchemy_url)
    due_ids, far_ids = _store(engine, bench.sink.url("stored"), total, due)
    results: dict[str, Any] = {}
    if "tick" in parts:
        results["tick"] = with_load(
            lambda: {
                "full": _tick_case(bench, engine, due_ids),
                "tenth_due": _tick_case(bench, engine, due_ids[: due // 10]),
            }
        )
    if "api" in parts:
        results["api"] = with_load(
            lambda: _api(bench, engine, due_ids + far_ids, api_seconds)
        )
    if "tick" in parts:
        _delete(engine, far_ids)
        results["tick"]["only_due"] = _tick_case(bench, engine, due_ids)
        results["tick"] |= {"total": total, "due": due}
    engine.dispose()
    return results


def _store(engine: Engine, target: str, total: int, due: int) -> tuple[list, list]:
    """``due`` jobs due within the next minute and the rest a day away."""
    now = time.time()
    soon = [
        seed.every_minute(f"due {index}", target, now + 30 + index * 50 / due)
        for index in range(due)
    ]
    later = [
        seed.every_minute(f"later {index}", target, now + FAR + index)
        for index in range(total - due)
    ]
    return seed.store_jobs(engine, soon), seed.store_jobs(engine, later)


def _tick_case(bench: Bench, engine: Engine, due_ids: list[str]) -> dict[str, Any]:
    """Time ``REPEATS`` ticks with exactly ``due_ids`` due, then one traced."""
    timings = [_one_tick(bench, engine, due_ids, traced=False) for _ in range(REPEATS)]
    traced = _one_tick(bench, engine, due_ids, traced=True)
    return {
        "due": len(due_ids),
        "seconds": [round(t["seconds"], 3) for t in timings],
        "seconds_median": statistics.median(t["seconds"] for t in timings),
        "statements": timings[0]["statements"],
        "runs_created": timings[0]["runs_created"],
        "python_peak_mib": traced["python_peak_mib"],
    }


def _one_tick(
    bench: Bench, engine: Engine, due_ids: list[str], traced: bool
) -> dict[str, Any]:
    _make_due(engine, due_ids)
    runtime = _runtime(bench)
    statements = _counter(runtime.store.engine)
    if traced:
        tracemalloc.start()
    try:
        summary = tick(runtime)
    finally:
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
        tracemalloc.stop()
        runtime.close()
    return {
        "seconds": summary.seconds,
        "statements": statements(),
        "runs_created": summary.runs_created,
        "python_peak_mib": round(peak / 2**20, 1),
    }


def _runtime(bench: Bench) -> Runtime:
    settings = Settings(
        _env_file=None,
        postgres_url=bench.database.url,
        redis_url=bench.redis_url,
        queue_name="bench-tick",
    )
    return build_runtime(settings)


def _counter(engine: Engine) -> Callable[[], int]:
    """A function answering how many statements ``engine`` has sent so far."""
    count = 0

    @event.listens_for(engine, "before_cursor_execute")
    def _count(*_args) -> None:
        nonlocal count
        count += 1

    return lambda: count


def _make_due(engine: Engine, due_ids: list[str]) -> None:
    """Exactly ``due_ids`` due within the next minute, spread over it."""
    now = time.time()
    due = set(due_ids)
    advance = (
        update(jobs)
        .where(jobs.c.id == bindparam("b_id"))
        .values(next_run_at=bindparam("b_next"))
    )
    with engine.begin() as conn:
        conn.execute(delete(runs))
        everyone = list(conn.scalars(select(jobs.c.id).where(jobs.c.name.like("due%"))))
        moves = [
            {
                "b_id": job_id,
                "b_next": utc(now + 5 + index * 50 / len(everyone))
                if job_id in due
                else utc(now + FAR),
            }
            for index, job_id in enumerate(everyone)
        ]
        conn.execute(advance, moves)


def _delete(engine: Engine, job_ids: list[str]) -> None:
    with engine.begin() as conn:
        for start in range(0, len(job_ids), 5000):
            conn.execute(
                delete(jobs).where(jobs.c.id.in_(job_ids[start : start + 5000]))
            )


def _api(bench: Bench, engine: Engine, ids: list[str], seconds: float) -> dict:
    """Get, list and create from 50 concurrent clients, each for ``seconds``."""
    with engine.connect() as conn:
        rows = conn.execute(select(jobs.c.created_at, jobs.c.id)).all()
    cursors = [encode_cursor(at, job_id) for at, job_id in random.sample(rows, 1000)]
    target = bench.sink.url("api")
    tomorrow = time.time() + FAR

    makers = {
        "get": lambda _i: ("GET", f"/jobs/{random.choice(ids)}", None),
        "list": lambda _i: (
            "GET",
            f"/jobs?limit=100&cursor={random.choice(cursors)}",
            None,
        ),
        "create": lambda i: ("POST", "/jobs", seed.once(f"api {i}", target, tomorrow)),
    }
    service = bench.service("api", empty=False)
    service.start(workers=False)
    results: dict[str, Any] = {"stored": len(ids), "clients": API_CLIENTS}
    try:
        for name, make in makers.items():
            with bench.sampler(service.groups()) as sampler:
                load = asyncio.run(
                    drive(service.api_urls, make, API_CLIENTS, seconds=seconds)
                )
            results[name] = latency_summary(load.latencies) | {
                "rate": load.rate,
                "errors": load.errors,
                "resources": sampler.summary(),
            }
    finally:
        service.stop()
    return results
