"""Time rules end to end: a daylight-saving night, downtime, racing workers.

The tick takes ``now`` as an argument, so a night in November or an outage of
four hours is replayed minute by minute with real ticks, a real store, a real
queue, real workers and a real target: nothing patches the clock.
"""

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from shared.definitions import new_job
from shared.store.tables import runs
from shared.tick import tick
from tests.helpers import servers_only, wait_for
from tests.test_tick import EVERY_MINUTE


def add_job(runtime, defined_at: datetime, **fields) -> dict:
    job = new_job(EVERY_MINUTE | fields, defined_at)
    runtime.store.jobs.insert(job)
    return job


def replay(runtime, start: datetime, end: datetime) -> None:
    """Tick once a minute from ``start`` to ``end``, as a worker would.

    Each minute waits until the runs due by then have started, as they would
    have in that minute: the replay moves the tick's clock, not the workers'.
    """
    now = start
    while now <= end:
        tick(runtime, now=now, sweep=False)
        wait_for(lambda at=now: not waiting_runs(runtime, at))
        now += timedelta(minutes=1)


def waiting_runs(runtime, by: datetime) -> list:
    query = select(runs.c.id).where(
        runs.c.status.in_(("pending", "queued")), runs.c.scheduled_for <= by
    )
    with runtime.store.engine.connect() as conn:
        return list(conn.execute(query))


def fire_times(runtime, job_id: str) -> list[tuple[datetime, str, str]]:
    query = (
        select(runs.c.scheduled_for, runs.c.status, runs.c.trigger)
        .where(runs.c.job_id == job_id)
        .order_by(runs.c.scheduled_for)
    )
    with runtime.store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(query)]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_the_fall_back_night_delivers_a_fixed_time_once(worker, target_server):
    defined = utc("2026-10-31T12:00:00")
    fixed = add_job(
        worker,
        defined,
        cron_expression="30 1 * * *",
        timezone="America/New_York",
        target=target_server.url("/fixed"),
    )
    hourly = add_job(
        worker,
        utc("2026-11-01T03:30:00"),
        cron_expression="0 * * * *",
        timezone="America/New_York",
        target=target_server.url("/hourly"),
    )

    replay(worker, utc("2026-11-01T03:30:00"), utc("2026-11-01T07:30:00"))

    target_server.wait_for(4, "/hourly", timeout=20)
    [delivery] = target_server.wait_for(1, "/fixed", timeout=20)
    time.sleep(1)  # room for a wrong second delivery to show up
    assert len(target_server.received("/fixed")) == 1
    assert delivery.headers["X-PingPay-Scheduled-For"] == "2026-11-01T05:30:00Z"
    assert [t for t, _, _ in fire_times(worker, fixed["id"])] == [
        utc("2026-11-01T05:30:00")
    ]
    # Every hour of elapsed time: 05:00Z and 06:00Z are both 01:00 local.
    assert [t.hour for t, _, _ in fire_times(worker, hourly["id"])] == [4, 5, 6, 7]


def test_downtime_sends_one_catch_up_and_records_the_missed(worker, target_server):
    job = add_job(
        worker,
        utc("2026-05-04T00:30:00"),
        cron_expression="0 * * * *",
        target=target_server.url("/hourly"),
    )

    replay(worker, utc("2026-05-04T00:59:00"), utc("2026-05-04T01:10:00"))
    # Down from 01:10 to 05:20, then ticking again.
    replay(worker, utc("2026-05-04T05:20:00"), utc("2026-05-04T05:59:00"))

    received = target_server.wait_for(3, "/hourly", timeout=20)
    wait_for(lambda: all(s != "running" for _, s, _ in fire_times(worker, job["id"])))
    time.sleep(1)
    assert len(target_server.received("/hourly")) == 3
    assert sorted(r.headers["X-PingPay-Scheduled-For"] for r in received) == [
        "2026-05-04T01:00:00Z",
        "2026-05-04T05:00:00Z",
        "2026-05-04T06:00:00Z",
    ]
    assert [
        (t.hour, status, trigger)
        for t, status, trigger in fire_times(worker, job["id"])
    ] == [
        (1, "succeeded", "schedule"),
        (2, "missed", "schedule"),
        (3, "missed", "schedule"),
        (4, "missed", "schedule"),
        (5, "succeeded", "catch_up"),
        (6, "succeeded", "schedule"),
    ]


@servers_only
@pytest.mark.timeout(300)
def test_three_workers_over_three_minutes_send_three_runs(
    backend,
    start_service,
    workers,
    target_server,  # noqa: F811
):
    env = backend.env() | {"TICK_INTERVAL_SECONDS": "5"}
    for _ in range(3):
        workers(env)
    runtime = start_service(deliver=False)
    job = add_job(runtime, datetime.now(UTC), target=target_server.url("/minute"))
    first = job["next_run_at"]

    received = target_server.wait_for(3, "/minute", timeout=200)
    wait_for(
        lambda: datetime.now(UTC) > first + timedelta(minutes=2, seconds=10), timeout=60
    )

    received = target_server.received("/minute")
    stamps = [r.headers["X-PingPay-Scheduled-For"] for r in received]
    assert len(received) == 3, stamps
    assert len(set(stamps)) == 3
    assert len(fire_times(runtime, job["id"])) >= 3
