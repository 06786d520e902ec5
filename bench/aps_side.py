"""The APScheduler 3 side of each workload, run in a process of its own.

Set up as a Python user would set it up next to our service: a
BackgroundScheduler, a SQLAlchemy job store on the same PostgreSQL, and a
thread pool as large as our workers' delivery threads together. It prints
one JSON object on stdout; the harness reads the arrivals from the sink.

The executor runs each fire time of a job separately, with the fire time in
``bench.aps_jobs.fire_time``, so the request can name it; APScheduler's own
``run_job`` still decides, per fire time, whether it was missed.
"""

import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor as Threads

import click
import requests
from apscheduler.events import EVENT_JOB_MISSED
from apscheduler.executors.base import run_job
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bench import aps_jobs
from bench.plan import spread_starts, utc
from bench.stats import latency_summary


class FireTimeExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, telling the job function its fire time."""

    def _do_submit_job(self, job, run_times):
        def callback(future):
            error = future.exception()
            if error:
                self._run_job_error(job.id, error, error.__traceback__)
            else:
                self._run_job_success(job.id, future.result())

        future = self._pool.submit(
            _run_each, job, job._jobstore_alias, run_times, self._logger.name
        )
        future.add_done_callback(callback)


def _run_each(job, jobstore_alias, run_times, logger_name) -> list:
    events = []
    for run_time in run_times:
        aps_jobs.fire_time.value = run_time
        events += run_job(job, jobstore_alias, [run_time], logger_name)
    return events


def new_scheduler(
    database: str, table: str, threads: int, grace: float | None
) -> BackgroundScheduler:
    aps_jobs.use_pool(threads)
    return BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=database, tablename=table)},
        executors={"default": FireTimeExecutor(threads)},
        job_defaults={"misfire_grace_time": grace, "coalesce": True},
        timezone="UTC",
    )


class MissedEvents:
    """Counts the fire times in [begin, end) APScheduler reports as missed."""

    def __init__(
        self, scheduler: BackgroundScheduler, begin: float = 0, end: float = 1e12
    ) -> None:
        self.count = 0
        self.begin, self.end = begin, end
        scheduler.add_listener(self._missed, EVENT_JOB_MISSED)

    def _missed(self, event) -> None:
        if self.begin <= event.scheduled_run_time.timestamp() < self.end:
            self.count += 1


def add_jobs(scheduler, triggers: list, sink: str, clients: int) -> dict:
    """Add one job per trigger from ``clients`` threads; the add rate."""

    def add(index: int) -> None:
        job_id = f"aps-{index}"
        scheduler.add_job(
            aps_jobs.deliver,
            triggers[index],
            args=[job_id, sink],
            id=job_id,
            name=job_id,
        )

    started = time.monotonic()
    with Threads(clients) as pool:
        list(pool.map(add, range(len(triggers))))
    seconds = time.monotonic() - started
    return {"add_seconds": seconds, "add_rate": len(triggers) / seconds}


def probe_until(scheduler, count: int, stop: threading.Event) -> list[float]:
    """Time ``get_job`` of random jobs, one after the other, until ``stop``."""
    latencies = []
    while not stop.is_set():
        job_id = f"aps-{random.randrange(count)}"
        started = time.monotonic()
        scheduler.get_job(job_id)
        latencies.append(time.monotonic() - started)
        stop.wait(0.01)
    return latencies


def wait_for_jobs(sink: str, count: int, deadline: float) -> bool:
    """Wait until ``count`` jobs arrived at the sink; False at the deadline."""
    control = sink.rsplit("/", 1)[0]
    while time.time() < deadline:
        if requests.get(control + "/_count", timeout=10).json()["jobs"] >= count:
            return True
        time.sleep(0.2)
    return False


@click.group()
def main() -> None:
    """One APScheduler workload; the result as JSON on stdout."""


@main.command()
@click.option("--database", required=True)
@click.option("--table", required=True)
@click.option("--threads", type=int, required=True)
@click.option("--clients", type=int, required=True)
@click.option("--count", type=int, required=True)
@click.option("--fire-at", type=float, required=True)
@click.option("--sink", required=True)
@click.option("--timeout", type=float, required=True)
def burst(database, table, threads, clients, count, fire_at, sink, timeout) -> None:
    """``count`` one-time jobs all due at ``fire_at``; lookups during the drain.

    No misfire grace: APScheduler's default of 1 s skips almost the whole
    burst, and the point is how long delivering it takes.
    """
    scheduler = new_scheduler(database, table, threads, grace=None)
    missed = MissedEvents(scheduler)
    scheduler.start()
    triggers = [DateTrigger(run_date=utc(fire_at))] * count
    result = add_jobs(scheduler, triggers, sink, clients)
    time.sleep(max(0.0, fire_at - time.time()))

    stop = threading.Event()
    lookups: list[float] = []
    prober = threading.Thread(
        target=lambda: lookups.extend(probe_until(scheduler, count, stop))
    )
    prober.start()
    drained = wait_for_jobs(sink, count, fire_at + timeout)
    stop.set()
    prober.join()
    scheduler.shutdown(wait=False)
    result |= {
        "drained": drained,
        "missed_events": missed.count,
        "lookups": {"get": latency_summary(lookups)},
    }
    click.echo(json.dumps(result))


@main.command()
@click.option("--database", required=True)
@click.option("--table", required=True)
@click.option("--threads", type=int, required=True)
@click.option("--clients", type=int, required=True)
@click.option("--count", type=int, required=True)
@click.option("--first", type=float, required=True)
@click.option("--until", type=float, required=True)
@click.option("--sink", required=True)
@click.option("--grace", type=float, required=True)
@click.option("--begin", type=float, required=True, help="The measured window.")
@click.option("--end", type=float, required=True)
def steady(
    database, table, threads, clients, count, first, until, sink, grace, begin, end
):
    """``count`` jobs each every minute, their fire times spread over it."""
    scheduler = new_scheduler(database, table, threads, grace=grace)
    missed = MissedEvents(scheduler, begin, end)
    scheduler.start()
    triggers = [
        IntervalTrigger(minutes=1, start_date=utc(start), timezone="UTC")
        for start in spread_starts(count, first)
    ]
    result = add_jobs(scheduler, triggers, sink, clients)
    time.sleep(max(0.0, until - time.time()))
    scheduler.shutdown(wait=False)
    click.echo(json.dumps(result | {"missed_events": missed.count}))


if __name__ == "__main__":
    main()
