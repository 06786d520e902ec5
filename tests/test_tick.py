"""The tick: batches, racing ticks, the sweep and the ETA hand-off."""

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from shared.definitions import new_job
from shared.runtime import build_runtime
from shared.store.tables import runs
from shared.tick import OVERDUE, tick
from shared.times import utcnow
from tests.helpers import servers_only

EVERY_MINUTE = {
    "name": "every minute",
    "description": None,
    "type": "http",
    "target": "http://127.0.0.1:9/",
    "payload": None,
    "method": "POST",
    "headers": {},
    "timeout_seconds": 5,
    "schedule_type": "cron",
    "cron_expression": "* * * * *",
    "specific_time": None,
    "interval": None,
    "interval_value": None,
    "timezone": "UTC",
    "start_at": None,
    "end_at": None,
    "retry": {"max_attempts": 1, "backoff_seconds": 1, "max_backoff_seconds": 1},
    "max_concurrency": None,
    "overlap_policy": "allow",
    "misfire_policy": "run_once",
}


def add_jobs(runtime, count: int, now: datetime) -> list[str]:
    ids = []
    for n in range(count):
        job = new_job(EVERY_MINUTE | {"name": f"job {n}"}, now)
        runtime.store.jobs.insert(job)
        ids.append(job["id"])
    return ids


def run_rows(runtime) -> list:
    with runtime.store.engine.connect() as conn:
        return list(conn.execute(select(runs)))


def test_tick_claims_in_batches_and_writes_one_run_per_fire_time(backend):
    runtime = build_runtime(
        backend.settings(tick_batch_size=7, lookahead_seconds=60), dispatch="eta"
    )
    start = datetime(2031, 1, 1, 12, 0, 10, tzinfo=UTC)
    add_jobs(runtime, 20, start)

    summary = tick(runtime, now=start + timedelta(seconds=40), sweep=False)

    assert summary.jobs == 20
    assert summary.runs_created == 20
    rows = run_rows(runtime)
    assert {row.scheduled_for for row in rows} == {
        start.replace(second=0) + timedelta(minutes=1)
    }
    assert {row.status for row in rows} == {"queued"}
    again = tick(runtime, now=start + timedelta(seconds=41), sweep=False)
    assert again.runs_created == 0
    runtime.close()


def test_tick_hands_runs_to_the_queue_with_an_aware_utc_eta(backend):
    runtime = build_runtime(backend.settings(lookahead_seconds=60), dispatch="eta")
    now = utcnow()
    add_jobs(runtime, 1, now)
    due = now.replace(second=0, microsecond=0) + timedelta(minutes=1)

    tick(runtime, now=due - timedelta(seconds=30), sweep=False)

    # Huey queues a task with its ETA; a consumer moves it to its schedule.
    tasks = runtime.queue.huey.pending()
    assert len(tasks) == 1
    assert tasks[0].eta.replace(tzinfo=UTC) == due  # Huey keeps naive UTC
    runtime.close()


@servers_only
def test_racing_ticks_on_postgres_create_no_duplicate_run(backend):
    settings = backend.settings(tick_batch_size=25)
    runtimes = [build_runtime(settings, dispatch="eta") for _ in range(4)]
    start = datetime(2031, 1, 1, 12, 0, 10, tzinfo=UTC)
    add_jobs(runtimes[0], 300, start)
    now = start + timedelta(minutes=5)
    summaries, barrier = [], threading.Barrier(len(runtimes))

    def race(runtime):
        barrier.wait()
        summaries.append(tick(runtime, now=now, sweep=False))

    threads = [threading.Thread(target=race, args=(r,)) for r in runtimes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(s.jobs for s in summaries) == 300
    with runtimes[0].store.engine.connect() as conn:
        per_job = conn.execute(
            select(runs.c.job_id, runs.c.scheduled_for, func.count())
            .group_by(runs.c.job_id, runs.c.scheduled_for)
            .having(func.count() > 1)
        ).all()
        total = conn.scalar(select(func.count()).select_from(runs))
    assert per_job == []
    # Fire times 12:01 ... 12:06 per job; all but the latest missed one and
    # the on-time ones are recorded as missed, none dropped.
    assert total == 300 * 6
    for runtime in runtimes:
        runtime.close()


def test_sweep_requeues_runs_whose_dispatcher_died(backend):
    runtime = build_runtime(backend.settings(stale_after_seconds=30), dispatch="eta")
    now = utcnow()
    job = new_job(EVERY_MINUTE, now) | {"status": "inactive"}
    runtime.store.jobs.insert(job)
    lost = runtime.store.runs.add_manual(job["id"], now - timedelta(minutes=5))

    summary = tick(runtime, now=now)

    assert summary.runs_recovered == 1
    assert runtime.store.runs.get(lost.id)["status"] == "queued"
    assert runtime.queue.depth() == 1
    runtime.close()


def test_sweep_queues_runs_pending_past_their_fire_time_but_not_those_on_time(
    backend,
):
    # A dead worker's runs wait pending; a live dispatcher's are queued at
    # their fire time. The sweep takes the overdue ones in seconds, not only
    # once STALE_AFTER_SECONDS late, and leaves the ones just due.
    runtime = build_runtime(backend.settings(), dispatch="eta")
    now = utcnow()
    job = new_job(EVERY_MINUTE, now) | {"status": "inactive"}
    runtime.store.jobs.insert(job)
    overdue = runtime.store.runs.add_manual(job["id"], now - 2 * OVERDUE)
    just_due = runtime.store.runs.add_manual(job["id"], now - OVERDUE / 2)

    summary = tick(runtime, now=now)

    assert summary.runs_recovered == 1
    assert runtime.store.runs.get(overdue.id)["status"] == "queued"
    assert runtime.store.runs.get(just_due.id)["status"] == "pending"
    runtime.close()
