"""Jobs created through the API reach a real local target at their fire time."""

import signal
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from shared.runtime import build_runtime
from shared.times import iso_z, utcnow
from shared.web.app import create_app
from tests.helpers import process_env, wait_for
from tests.targets import Reply


def one_time_job(target: str, seconds_ahead: float, **changes) -> dict:
    return {
        "name": "Example Job",
        "description": "An example job that sends a notification",
        "type": "http",
        "target": target,
        "payload": {"message": "Hello, world!"},
        "schedule_type": "specific_time",
        "specific_time": iso_z(utcnow() + timedelta(seconds=seconds_ahead)),
    } | changes


def finished_run(client, job_id: str, timeout: float = 15) -> dict:
    def final():
        runs = client.get(f"/jobs/{job_id}/runs").json()
        done = [r for r in runs if r["status"] in ("succeeded", "failed")]
        return done[0] if done else None

    run = wait_for(final, timeout)
    return client.get(f"/runs/{run['id']}").json()


def test_the_payload_arrives_at_the_fire_time_and_is_recorded(
    client, worker, target_server
):
    body = one_time_job(target_server.url("/notify"), 2)
    job = client.post("/jobs", json=body).json()

    [request] = target_server.wait_for(1, "/notify", timeout=10)
    run = finished_run(client, job["id"])

    fire_time = body["specific_time"]
    lateness = (request.at - run_fire_time(run)).total_seconds()
    assert run["scheduled_for"] == fire_time
    assert 0 <= lateness < 1.0, f"arrived {lateness:.3f} s after its fire time"
    assert request.method == "POST"
    assert request.body == b'{"message":"Hello, world!"}'
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-PingPay-Job-Id"] == job["id"]
    assert request.headers["X-PingPay-Run-Id"] == run["id"]
    assert request.headers["Idempotency-Key"] == run["id"]
    assert request.headers["X-PingPay-Scheduled-For"] == fire_time
    assert run["status"] == "succeeded"
    assert [a["status_code"] for a in run["attempts"]] == [200]
    assert wait_for(
        lambda: client.get(f"/jobs/{job['id']}").json()["status"] == "completed"
    )


def run_fire_time(run: dict) -> datetime:
    return datetime.fromisoformat(run["scheduled_for"])


def test_a_target_failing_twice_then_succeeding_gets_three_attempts(
    client, worker, target_server
):
    target_server.reply("/flaky", Reply(503), Reply(502), Reply(200, body=b"ok"))
    retry = {"max_attempts": 4, "backoff_seconds": 0.3, "max_backoff_seconds": 5}
    job = client.post(
        "/jobs", json=one_time_job(target_server.url("/flaky"), 1, retry=retry)
    ).json()

    run = finished_run(client, job["id"])
    requests = target_server.received("/flaky")

    assert run["status"] == "succeeded"
    assert [a["status_code"] for a in run["attempts"]] == [503, 502, 200]
    assert [a["outcome"] for a in run["attempts"]] == ["retry", "retry", "succeeded"]
    assert [r.headers["X-PingPay-Attempt"] for r in requests] == ["1", "2", "3"]
    assert {r.headers["X-PingPay-Run-Id"] for r in requests} == {run["id"]}
    waits = [
        b.monotonic - a.monotonic for a, b in zip(requests, requests[1:], strict=False)
    ]
    assert waits[0] >= 0.3 * 0.8 and waits[1] >= 0.6 * 0.8
    assert run["attempts"][-1]["response_excerpt"] == "ok"


def test_a_client_error_fails_a_one_time_job_at_once(client, worker, target_server):
    target_server.reply("/gone", Reply(410, body=b"no such hook"))
    job = client.post("/jobs", json=one_time_job(target_server.url("/gone"), 1)).json()

    run = finished_run(client, job["id"])

    assert run["status"] == "failed"
    assert len(run["attempts"]) == 1
    assert run["last_status_code"] == 410
    assert wait_for(
        lambda: client.get(f"/jobs/{job['id']}").json()["status"] == "failed"
    )


def test_a_manual_trigger_is_delivered_at_once(client, worker, target_server):
    body = one_time_job(target_server.url("/now"), 3600)
    job = client.post("/jobs", json=body).json()

    run = client.post(f"/jobs/{job['id']}/trigger").json()

    [request] = target_server.wait_for(1, "/now", timeout=5)
    assert request.headers["X-PingPay-Run-Id"] == run["id"]
    assert client.get(f"/jobs/{job['id']}").json()["status"] == "active"


def test_pausing_cancels_a_run_waiting_for_its_fire_time(client, worker, target_server):
    job = client.post(
        "/jobs", json=one_time_job(target_server.url("/stop"), 1.5)
    ).json()
    [waiting] = client.get(f"/jobs/{job['id']}/runs").json()

    client.post(f"/jobs/{job['id']}/pause")

    assert client.get(f"/runs/{waiting['id']}").json()["status"] == "cancelled"
    with pytest.raises(AssertionError):
        target_server.wait_for(1, "/stop", timeout=2.5)


@pytest.fixture
def new_york_worker(backend):
    """A real worker process whose local time zone is America/New_York."""
    env = process_env(**backend.env(), TZ="America/New_York", WORKER_CONCURRENCY="2")
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker"],
        env=env,
        cwd=backend.data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield process
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def test_a_worker_in_new_york_runs_a_queued_eta_on_time(
    backend, new_york_worker, target_server
):
    # No dispatcher thread here: runs go to the queue with their fire time as
    # the ETA, as on a function platform, and a worker in another local time
    # zone must still run them at that instant.
    runtime = build_runtime(backend.settings(), dispatch="eta")
    with TestClient(create_app(runtime)) as api:
        body = one_time_job(target_server.url("/eta"), 3)
        assert api.post("/jobs", json=body).status_code == 201
        [request] = target_server.wait_for(1, "/eta", timeout=20)
        lateness = request.at - run_fire_time({"scheduled_for": body["specific_time"]})
    runtime.close()
    assert new_york_worker.poll() is None, new_york_worker.stderr.read().decode()
    # A naive ETA would be read as New York time: hours late, not seconds.
    # The bound leaves room for a slow machine starting the worker.
    assert timedelta(0) <= lateness < timedelta(seconds=30)
