"""Burst: N one-time jobs created through each system's API, all due at once.

Measures the creation rate, the drain (from the fire time until the last job
arrived), lateness, lost and duplicate deliveries, and how fast each system
answers lookups of its jobs while the burst fires.
"""

import asyncio
import json
import math
import random
import time
from datetime import datetime
from typing import Any

import aiohttp

from bench import seed
from bench.context import Bench, sleep_until, with_load
from bench.load import LoadResult, drive
from bench.stats import deliveries, latency_summary
from shared.web.pages import encode_cursor

#: How long past the fire time a burst may take to arrive before the rest
#: counts as lost.
TIMEOUT = 180.0


def lead_time(count: int) -> float:
    """Seconds from now to the fire time: enough to create every job first.

    Within the 90 s look-ahead, so our API plans each job as it is created.
    """
    return 15 + count / 150


def run(bench: Bench, count: int) -> dict[str, Any]:
    name = f"burst_{count}"
    return {
        "pingpay": with_load(lambda: _ours(bench, name, count)),
        "apscheduler": with_load(lambda: _theirs(bench, name, count)),
    }


def _ours(bench: Bench, name: str, count: int) -> dict[str, Any]:
    service = bench.service(name)
    service.start()
    fire_at = math.ceil(time.time() + lead_time(count))
    try:
        with bench.sampler(service.groups()) as creating:
            created = asyncio.run(
                _create(bench, service.api_urls, name, count, fire_at)
            )
        ids = [answer["id"] for answer in created.answers]
        sleep_until(fire_at)
        with bench.sampler(service.groups()) as draining:
            lookups = asyncio.run(_probe(bench, service.api_urls, created.answers))
        time.sleep(3)
    finally:
        service.stop()
    arrivals = bench.sink.arrivals()
    result = _drain(arrivals, {(job_id, float(fire_at)) for job_id in ids}, fire_at)
    return result | {
        "created": len(ids),
        "create_errors": created.errors,
        "create_rate": created.rate,
        "create_latency": latency_summary(created.latencies),
        "lookups": lookups,
        "resources": {"create": creating.summary(), "drain": draining.summary()},
    }


def _theirs(bench: Bench, name: str, count: int) -> dict[str, Any]:
    fire_at = math.ceil(time.time() + lead_time(count))
    aps = bench.aps(
        "burst",
        name,
        {
            "threads": bench.layout.threads,
            "count": count,
            "fire_at": fire_at,
            "timeout": TIMEOUT,
        },
    )
    with bench.sampler({"apscheduler": aps.pids}) as creating:
        sleep_until(fire_at)
    with bench.sampler({"apscheduler": aps.pids}) as draining:
        result = aps.result()
    time.sleep(3)
    expected = {(f"aps-{index}", float(fire_at)) for index in range(count)}
    arrivals = bench.sink.arrivals()
    return _drain(arrivals, expected, fire_at) | {
        "create_rate": result["add_rate"],
        "missed_events": result["missed_events"],
        "lookups": result["lookups"],
        "resources": {"create": creating.summary(), "drain": draining.summary()},
    }


def _drain(arrivals: list, expected: set, fire_at: float) -> dict[str, Any]:
    summary = deliveries(arrivals, expected)
    last = summary["last_arrival"]
    drained = summary["lost"] == 0 and last is not None
    return summary | {"drain_seconds": last - fire_at if drained else None}


async def _create(
    bench: Bench, urls: list[str], name: str, count: int, fire_at: float
) -> LoadResult:
    target = bench.sink.url(name)

    def make(index: int):
        return "POST", "/jobs", seed.once(f"{name} {index}", target, fire_at)

    result = await drive(urls, make, bench.clients, total=count, keep_answers=True)
    result.answers = [json.loads(answer) for answer in result.answers]
    return result


async def _probe(bench: Bench, urls: list[str], jobs: list[dict]) -> dict[str, Any]:
    """Get and list jobs, one request at a time each, until the burst arrived."""
    stop = asyncio.Event()
    cursors = [
        encode_cursor(datetime.fromisoformat(job["created_at"]), job["id"])
        for job in jobs
    ]

    def get(_index: int):
        return "GET", f"/jobs/{random.choice(jobs)['id']}", None

    def page(_index: int):
        return "GET", f"/jobs?limit=100&cursor={random.choice(cursors)}", None

    probes = [
        drive(urls, make, 1, seconds=TIMEOUT, stop=stop, pause=0.01)
        for make in (get, page)
    ]
    watcher = _stop_when_arrived(bench, len(jobs), stop)
    got, listed, _ = await asyncio.gather(*probes, watcher)
    return {
        "get": latency_summary(got.latencies) | {"errors": got.errors},
        "list": latency_summary(listed.latencies) | {"errors": listed.errors},
    }


async def _stop_when_arrived(bench: Bench, count: int, stop: asyncio.Event) -> None:
    deadline = time.monotonic() + TIMEOUT
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            async with session.get(bench.sink.control + "/_count") as response:
                if (await response.json())["jobs"] >= count:
                    break
            await asyncio.sleep(0.2)
    stop.set()
