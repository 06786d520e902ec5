"""Delivery guarantees under failure, with real processes and servers.

Each test makes a failure happen for real (a worker killed with SIGKILL, a
Redis server stopped and started empty, PostgreSQL's connections cut) and
counts what the target received: runs due, delivered, duplicated, lost.
"""

import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta

import requests
from fastapi.testclient import TestClient
from sqlalchemy import delete

from shared.definitions import new_job
from shared.runtime import build_runtime
from shared.store.tables import delivery_slots
from shared.times import iso_z, utcnow
from shared.web.app import create_app
from tests.helpers import process_env, servers_only, wait_for
from tests.processes import CuttableProxy, free_port
from tests.targets import Reply
from tests.test_end_to_end import finished_run, one_time_job
from tests.test_tick import EVERY_MINUTE


def api_for(runtime) -> TestClient:
    return TestClient(create_app(runtime))


def test_a_worker_killed_mid_delivery_is_replaced_and_the_run_delivered(
    backend, start_service, workers, target_server
):
    target_server.reply("/slow", Reply(200, delay=3), Reply(200, body=b"done"))
    runtime = start_service(deliver=False)
    doomed = workers(backend.env())
    with api_for(runtime) as client:
        body = one_time_job(target_server.url("/slow"), 1, timeout_seconds=2)
        job = client.post("/jobs", json=body).json()
        target_server.wait_for(1, "/slow", timeout=15)

        doomed.kill()
        workers(backend.env())
        run = finished_run(client, job["id"], timeout=30)

    received = target_server.received("/slow")
    assert run["status"] == "succeeded"
    assert [a["outcome"] for a in run["attempts"]] == ["lost", "succeeded"]
    assert {r.headers["Idempotency-Key"] for r in received} == {run["id"]}
    assert len(received) == 2


@servers_only
def test_a_redis_restarted_empty_loses_no_queued_run(
    backend, start_service, workers, private_redis, target_server
):
    runtime = start_service(deliver=False, redis_url=private_redis.url)
    env = backend.env() | {"REDIS_URL": private_redis.url}
    with api_for(runtime) as client:
        jobs = [
            client.post(
                "/jobs", json=one_time_job(target_server.url(f"/r{n}"), 1)
            ).json()["id"]
            for n in range(10)
        ]
        wait_for(lambda: runtime.queue.depth() == 10, timeout=10)

        private_redis.stop()
        private_redis.start()
        assert runtime.queue.depth() == 0
        workers(env)
        runs = [finished_run(client, job_id, timeout=40) for job_id in jobs]

    assert {run["status"] for run in runs} == {"succeeded"}
    assert sorted(len(target_server.received(f"/r{n}")) for n in range(10)) == [1] * 10


@servers_only
def test_runs_due_while_redis_is_down_go_out_when_it_is_back(
    backend, start_service, workers, private_redis, target_server
):
    runtime = start_service(deliver=False, redis_url=private_redis.url)
    env = backend.env() | {"REDIS_URL": private_redis.url}
    private_redis.stop()
    with api_for(runtime) as client:
        created = client.post("/jobs", json=one_time_job(target_server.url("/d"), 1))
        assert created.status_code == 201
        job_id = created.json()["id"]
        assert client.get("/health").status_code == 503

        wait_for(lambda: runtime.dispatcher.held() == 0, timeout=10)
        [run] = client.get(f"/jobs/{job_id}/runs").json()
        assert run["status"] == "pending"

        private_redis.start()
        workers(env)
        run = finished_run(client, job_id, timeout=40)

    assert run["status"] == "succeeded"
    assert len(target_server.received("/d")) == 1


@servers_only
def test_a_worker_finishes_its_run_after_postgres_comes_back(
    backend, start_service, workers, target_server
):
    host_port = backend.postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = CuttableProxy(host, int(port))
    database = backend.postgres_url.rsplit("/", 1)[1]
    through_proxy = f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}"
    target_server.reply("/pg", Reply(200, delay=2, body=b"ok"))
    runtime = start_service(deliver=False)
    workers(backend.env() | {"POSTGRES_URL": through_proxy})
    try:
        with api_for(runtime) as client:
            job = client.post(
                "/jobs", json=one_time_job(target_server.url("/pg"), 1)
            ).json()
            target_server.wait_for(1, "/pg", timeout=15)
            proxy.cut()
            time.sleep(4)  # the attempt ends while PostgreSQL is away
            proxy.restore()
            run = finished_run(client, job["id"], timeout=40)
    finally:
        proxy.close()

    assert run["status"] == "succeeded"
    assert [a["outcome"] for a in run["attempts"]] == ["succeeded"]
    assert len(target_server.received("/pg")) == 1


@servers_only
def test_the_api_answers_503_while_postgres_is_cut(backend, start_service):
    host_port = backend.postgres_url.split("@", 1)[1].split("/", 1)[0]
    host, port = host_port.split(":")
    proxy = CuttableProxy(host, int(port))
    database = backend.postgres_url.rsplit("/", 1)[1]
    runtime = start_service(
        deliver=False,
        postgres_url=f"postgresql://postgres@127.0.0.1:{proxy.port}/{database}",
    )
    try:
        with api_for(runtime) as client:
            assert client.get("/jobs").status_code == 200
            proxy.cut()
            down = client.get("/jobs")
            proxy.restore()
            back = client.get("/jobs")
    finally:
        proxy.close()

    assert down.status_code == 503
    assert down.json()["detail"].startswith("database unavailable")
    assert back.status_code == 200


@servers_only
def test_the_whole_service_runs_no_more_deliveries_at_once_than_its_limit(
    backend, start_service, workers, target_server
):
    target_server.reply("/slow", Reply(200, delay=1))
    runtime = start_service(deliver=False)
    with runtime.store.engine.begin() as conn:
        # Slots that other tests' runs hold in this shared database.
        conn.execute(delete(delivery_slots))
    for _ in range(3):
        workers(backend.env() | {"MAX_DELIVERIES_IN_FLIGHT": "3"})
    with api_for(runtime) as client:
        body = one_time_job(target_server.url("/slow"), 2)
        jobs = [client.post("/jobs", json=body).json()["id"] for _ in range(9)]
        finished = [finished_run(client, job, timeout=40) for job in jobs]

    received = target_server.received("/slow")

    arrivals = sorted(r.monotonic for r in received)
    # Each request is answered a second after it arrives: the requests in
    # flight when one arrives are those that arrived less than a second ago.
    at_once = max(sum(a <= b < a + 1 for b in arrivals) for a in arrivals)
    assert at_once == 3
    assert [run["status"] for run in finished] == ["succeeded"] * 9
    assert len({r.headers["X-PingPay-Run-Id"] for r in received}) == len(received)


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - utcnow()).total_seconds()))


def pending_fire_times(runtime, job_id: str) -> list[datetime]:
    runs = runtime.store.runs.page_for_job(job_id, 10, status="pending")
    return sorted(run["scheduled_for"] for run in runs)


def final_statuses(runtime, job_id: str, fire_times: list[datetime]) -> dict | None:
    """Each run's status by fire time, once those at ``fire_times`` are final."""
    runs = runtime.store.runs.page_for_job(job_id, 10)
    statuses = {run["scheduled_for"]: run["status"] for run in runs}
    final = ("succeeded", "failed", "missed")
    return statuses if all(statuses.get(at) in final for at in fire_times) else None


@servers_only
def test_a_worker_restarted_cleanly_delivers_every_fire_time_it_had_planned(
    backend, workers, target_server
):
    # The sweep at its default pace: the runs the stopped worker held must
    # not wait STALE_AFTER_SECONDS for it, or the misfire check drops them.
    env = backend.env() | {"STALE_AFTER_SECONDS": "120"}
    runtime = build_runtime(backend.settings(), dispatch="eta")
    first_worker = workers(env)
    first = (utcnow() + timedelta(seconds=12)).replace(microsecond=0)
    planned = [first, first + timedelta(minutes=1)]
    every_minute = EVERY_MINUTE | {
        "target": target_server.url("/minute"),
        "schedule_type": "recurring",
        "cron_expression": None,
        "interval": "minute",
        "interval_value": 1,
        "start_at": first,
    }
    job = new_job(every_minute, utcnow())
    runtime.store.jobs.insert(job)

    # Its first tick plans both fire times within its look-ahead.
    wait_for(lambda: pending_fire_times(runtime, job["id"]) == planned, timeout=10)
    first_worker.stop()
    assert pending_fire_times(runtime, job["id"]) == planned
    sleep_until(first + timedelta(seconds=3))  # due while no worker runs
    workers(env)
    received = target_server.wait_for(2, "/minute", timeout=75)
    statuses = wait_for(lambda: final_statuses(runtime, job["id"], planned))
    runtime.close()

    fired = [r.headers["X-PingPay-Scheduled-For"] for r in received]
    assert fired == [iso_z(at) for at in planned]
    assert len(target_server.received("/minute")) == 2
    assert [statuses[at] for at in planned] == ["succeeded", "succeeded"]
    assert "missed" not in statuses.values()
    late = [
        (r.at - at).total_seconds() for r, at in zip(received, planned, strict=True)
    ]
    assert late[0] < 15, "due during the restart: out once a worker is back"
    assert 0 <= late[1] < 1, "due after the restart: out on time"


def test_dev_restarted_with_ctrl_c_delivers_the_runs_it_held(tmp_path, target_server):
    port = free_port()
    env = process_env(
        DATA_DIR=str(tmp_path), PORT=str(port), ALLOW_PRIVATE_TARGETS="true"
    )
    api = f"http://127.0.0.1:{port}"
    dev = start_dev(env, api)
    during = one_time_job(target_server.url("/during"), 5)
    after = one_time_job(target_server.url("/after"), 15)
    jobs = [requests.post(f"{api}/jobs", json=body).json() for body in (during, after)]

    # Both were planned when created, held in the dev process's memory.
    stop_dev(dev)
    sleep_until(datetime.fromisoformat(during["specific_time"]) + timedelta(seconds=1))
    dev = start_dev(env, api)
    try:
        target_server.wait_for(1, "/after", timeout=20)
        target_server.wait_for(1, "/during", timeout=5)
        runs = [requests.get(f"{api}/jobs/{job['id']}/runs").json() for job in jobs]
    finally:
        stop_dev(dev)

    assert [[run["status"] for run in job_runs] for job_runs in runs] == [
        ["succeeded"],
        ["succeeded"],
    ]
    [on_time] = target_server.received("/after")
    late = on_time.at - datetime.fromisoformat(after["specific_time"])
    assert timedelta(0) <= late < timedelta(seconds=1)
    assert len(target_server.received("/during")) == 1


def start_dev(env: dict[str, str], api: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "dev"],
        env=env,
        cwd=env["DATA_DIR"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: _answers(f"{api}/health"), timeout=20)
    return process


def stop_dev(process: subprocess.Popen) -> None:
    """Ctrl-C, as a developer stops it."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False
