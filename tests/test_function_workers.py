"""The tick and execute functions, invoked as the platform's scheduler does."""

import json
import logging
import time
from datetime import timedelta

import psycopg
from sqlalchemy import select

from shared.store.tables import runs
from shared.times import iso_z, utcnow
from tests.functions import (
    LambdaContext,
    http_event,
    load_event,
    load_handler_fixture,  # noqa: F401 - the load_handler fixture
    on_servers,
    response_json,
)
from tests.targets import Reply

NOBODY = "127.0.0.1:9"  # the discard port: nothing listens there


def job(target: str, **changes) -> dict:
    # Fires a month from now: whatever the time of day, no scheduled run
    # joins the runs a test triggers.
    return {
        "name": "function job",
        "target": target,
        "payload": {"message": "Hello, world!"},
        "schedule_type": "specific_time",
        "specific_time": iso_z(utcnow() + timedelta(days=30)),
    } | changes


def create(api, body: dict) -> dict:
    response = api(http_event("http_api_v2", "POST", "/jobs", body=body), None)
    assert response["statusCode"] == 201, response
    return response_json(response)


def trigger(api, job_id: str) -> None:
    response = api(http_event("http_api_v2", "POST", f"/jobs/{job_id}/trigger"), None)
    assert response["statusCode"] == 202, response


def run_statuses(runtime) -> list[str]:
    with runtime.store.engine.connect() as conn:
        return sorted(conn.scalars(select(runs.c.status)))


def test_tick_creates_queues_and_recovers_runs(backend, load_handler):
    api = load_handler("api", backend).handler
    ticker = load_handler("tick", backend, LOOKAHEAD_SECONDS="300")
    fire_time = utcnow().replace(microsecond=0) + timedelta(seconds=200)
    # Beyond the API's own look-ahead of 90 s, so only the tick plans it.
    planned = create(
        api,
        job(
            "https://example.com/hook",
            schedule_type="specific_time",
            specific_time=iso_z(fire_time),
        ),
    )
    lost = ticker.runtime.store.runs.add_manual(
        planned["id"], utcnow() - timedelta(minutes=10)
    )

    summary = ticker.handler(load_event("scheduled"), LambdaContext(60))

    assert summary["runs_created"] == 1
    assert summary["runs_recovered"] == 1
    assert summary["runs_queued"] == 2
    assert json.loads(json.dumps(summary)) == summary
    assert run_statuses(ticker.runtime) == ["queued", "queued"]
    etas = {task.args[0]: task.eta for task in ticker.runtime.queue.huey.pending()}
    # Huey keeps ETAs as naive UTC.
    assert etas.pop(lost.id) is None
    assert list(etas.values()) == [fire_time.replace(tzinfo=None)]


def test_execute_delivers_a_run_at_its_fire_time(backend, load_handler, target_server):
    api = load_handler("api", backend).handler
    execute = load_handler("execute", backend, EXECUTE_MARGIN_SECONDS="1")
    fire_time = utcnow().replace(microsecond=0) + timedelta(seconds=2)
    create(
        api,
        job(
            target_server.url("/hook"),
            schedule_type="specific_time",
            specific_time=iso_z(fire_time),
            timeout_seconds=1,
        ),
    )

    summary = execute.handler(load_event("scheduled"), LambdaContext(6))

    [request] = target_server.received("/hook")
    lateness = (request.at - fire_time).total_seconds()
    assert 0 <= lateness < 2.5, f"arrived {lateness:.3f} s after its fire time"
    assert summary["moved"] == 1 and summary["started"] == 1
    assert summary["stopped_by"] == "time budget"
    assert run_statuses(execute.runtime) == ["succeeded"]


def test_execute_stops_starting_attempts_in_time(backend, load_handler, target_server):
    target_server.reply("/slow", Reply(200, delay=1.0))
    api = load_handler("api", backend).handler
    execute = load_handler(
        "execute", backend, WORKER_CONCURRENCY="2", EXECUTE_MARGIN_SECONDS="1"
    )
    slow = create(api, job(target_server.url("/slow"), timeout_seconds=1.5))
    for _ in range(6):
        trigger(api, slow["id"])

    started = time.monotonic()
    summary = execute.handler(load_event("scheduled"), LambdaContext(4))
    elapsed = time.monotonic() - started

    # Attempts start while 1.5 s and the margin are left of the 4 s: two
    # rounds of two, each attempt taking 1 s. The others wait, still queued.
    assert elapsed < 4, f"the drain took {elapsed:.2f} s of a 4 s budget"
    sent = len(target_server.received("/slow"))
    assert 2 <= sent <= 4
    assert summary["started"] == sent
    assert summary["deferred"] >= 6 - sent
    statuses = run_statuses(execute.runtime)
    assert statuses.count("succeeded") == sent
    assert statuses.count("queued") == 6 - sent
    huey = execute.runtime.queue.huey
    assert huey.pending_count() + huey.scheduled_count() == 6 - sent


def test_execute_never_starts_an_attempt_longer_than_itself(
    backend, load_handler, target_server, caplog
):
    api = load_handler("api", backend).handler
    execute = load_handler("execute", backend, EXECUTE_MARGIN_SECONDS="1")
    patient = create(api, job(target_server.url("/patient"), timeout_seconds=30))
    trigger(api, patient["id"])

    with caplog.at_level(logging.ERROR, logger="pingpay.drain"):
        summary = execute.handler(load_event("scheduled"), LambdaContext(2.5))

    assert target_server.received() == []
    assert (summary["started"], summary["deferred"]) == (0, 1)
    assert patient["id"] in caplog.text and "timeout_seconds" in caplog.text
    # It waits on the schedule for an invocation long enough to take it.
    assert execute.runtime.queue.huey.scheduled_count() == 1
    assert run_statuses(execute.runtime) == ["queued"]


@on_servers
def test_execute_without_its_queue_returns_at_once(backend, load_handler):
    execute = load_handler("execute", backend, REDIS_URL=f"redis://{NOBODY}/0")

    started = time.monotonic()
    summary = execute.handler(load_event("scheduled"), LambdaContext(30))

    assert summary["stopped_by"] == "queue or database unavailable"
    assert time.monotonic() - started < 10


@on_servers
def test_no_function_leaves_a_transaction_open(backend, load_handler, target_server):
    api = load_handler("api", backend).handler
    ticker = load_handler("tick", backend)
    execute = load_handler("execute", backend, EXECUTE_MARGIN_SECONDS="1")
    created = create(api, job(target_server.url("/hook"), timeout_seconds=1))
    trigger(api, created["id"])

    ticker.handler(load_event("scheduled"), LambdaContext(60))
    execute.handler(load_event("scheduled"), LambdaContext(3))

    assert len(target_server.received("/hook")) == 1
    with psycopg.connect(backend.postgres_url, autocommit=True) as conn:
        states = conn.execute(
            "SELECT state FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    assert states and all(state == "idle" for (state,) in states), states
