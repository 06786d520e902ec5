"""``/metrics`` and each worker's own endpoint, read as Prometheus reads them.

Counters belong to the process and grow across tests, so tests compare a
figure before and after what they do.
"""

import subprocess
import sys
from datetime import timedelta

import requests
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from shared import metrics
from shared.runtime import build_runtime
from shared.settings import Settings
from shared.store import migrate
from shared.tick import TickSummary, tick
from shared.times import iso_z, utcnow
from shared.web.app import create_app
from tests.helpers import process_env, wait_for
from tests.targets import Reply
from tests.test_cli import free_port


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def job_body(target: str, **changes) -> dict:
    return {
        "name": "Metered",
        "target": target,
        "schedule_type": "recurring",
        "interval": "day",
        "interval_value": 1,
    } | changes


def finished(client, run_id: str) -> dict:
    def final():
        run = client.get(f"/runs/{run_id}").json()
        return run if run["status"] in ("succeeded", "failed") else None

    return wait_for(final, 15)


def test_the_service_state_is_read_at_scrape_time(client, target_server):
    for _ in range(2):
        client.post("/jobs", json=job_body(target_server.url("/")))
    paused = client.post("/jobs", json=job_body(target_server.url("/"))).json()
    client.post(f"/jobs/{paused['id']}/pause")

    response = client.get("/metrics")

    text = response.text
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert value(text, "pingpay_jobs", status="active") == 2
    assert value(text, "pingpay_jobs", status="inactive") == 1
    assert value(text, "pingpay_dependency_up", dependency="database") == 1
    assert value(text, "pingpay_dependency_up", dependency="queue") == 1
    for status in metrics.LIVE_STATUSES:
        assert ("pingpay_runs", frozenset({("status", status)})) in samples(text)
    assert ("pingpay_queue_depth", frozenset()) in samples(text)


def test_runs_waiting_for_a_worker_are_counted_by_status(client, runtime):
    job = client.post("/jobs", json=job_body("http://127.0.0.1:9/")).json()
    runtime.dispatcher.stop()
    for _ in range(3):
        runtime.store.runs.add_manual(job["id"], utcnow())

    text = client.get("/metrics").text

    assert value(text, "pingpay_runs", status="pending") == 3


def test_attempts_runs_durations_and_lateness_are_counted(
    client, worker, target_server
):
    target_server.reply("/flaky", Reply(503), Reply(200))
    target_server.reply("/gone", Reply(410))
    retry = {"max_attempts": 2, "backoff_seconds": 0, "max_backoff_seconds": 0}
    flaky = client.post(
        "/jobs", json=job_body(target_server.url("/flaky"), retry=retry)
    ).json()
    gone = client.post("/jobs", json=job_body(target_server.url("/gone"))).json()
    before = client.get("/metrics").text

    finished(client, client.post(f"/jobs/{flaky['id']}/trigger").json()["id"])
    finished(client, client.post(f"/jobs/{gone['id']}/trigger").json()["id"])
    after = client.get("/metrics").text

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("pingpay_attempts_total", outcome="retry", status_class="5xx") == 1
    assert grew("pingpay_attempts_total", outcome="succeeded", status_class="2xx") == 1
    assert grew("pingpay_attempts_total", outcome="failed", status_class="4xx") == 1
    assert grew("pingpay_runs_finished_total", outcome="succeeded") == 1
    assert grew("pingpay_runs_finished_total", outcome="failed") == 1
    assert grew("pingpay_delivery_duration_seconds_count") == 3
    assert grew("pingpay_run_lateness_seconds_count") == 2
    assert grew("pingpay_dispatched_runs_total", result="queued") >= 3


def test_ticks_are_timed_with_the_runs_they_create(client, runtime, target_server):
    soon = iso_z(utcnow() + timedelta(seconds=30))
    body = job_body(target_server.url("/"), schedule_type="specific_time")
    body |= {"specific_time": soon, "interval": None, "interval_value": None}
    before = client.get("/metrics").text

    client.post("/jobs", json=body)
    tick(runtime)
    after = client.get("/metrics").text

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("pingpay_tick_duration_seconds_count", scope="changed") == 1
    assert grew("pingpay_tick_runs_created_sum", scope="changed") == 1
    assert grew("pingpay_tick_duration_seconds_count", scope="all") == 1
    assert grew("pingpay_tick_runs_created_sum", scope="all") == 0
    assert value(after, "pingpay_dispatcher_held_runs") >= 1
    # Runs leave memory at their fire time only, cancelled or not.
    assert "including any cancelled or deleted since" in after


def test_recovered_runs_are_counted():
    before = metrics.RECOVERED._value.get()

    metrics.tick_finished(TickSummary(runs_recovered=3, seconds=0.01), regular=True)

    assert metrics.RECOVERED._value.get() - before == 3


def test_a_queue_that_does_not_answer_leaves_the_scrape_working(tmp_path):
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        redis_url="redis://127.0.0.1:9/0",
        allow_no_auth=True,
    )
    runtime = build_runtime(settings)
    migrate.upgrade(runtime.store.engine)
    try:
        with TestClient(create_app(runtime)) as client:
            response = client.get("/metrics")
    finally:
        runtime.close()

    assert response.status_code == 200
    assert value(response.text, "pingpay_dependency_up", dependency="queue") == 0
    assert value(response.text, "pingpay_dependency_up", dependency="database") == 1
    assert "pingpay_queue_depth" not in response.text
    assert value(response.text, "pingpay_jobs", status="active") == 0


def test_a_worker_serves_its_own_figures(backend):
    port = free_port()
    env = process_env(**backend.env(), METRICS_PORT=str(port), HOST="127.0.0.1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "worker"],
        env=env,
        cwd=backend.data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        response = wait_for(lambda: _get(f"http://127.0.0.1:{port}/metrics"), 20)
    finally:
        worker.terminate()
        worker.communicate(timeout=20)

    assert "pingpay_attempts_total" in response.text
    assert "pingpay_tick_duration_seconds" in response.text
    # The service's state comes from the API alone, so it is never summed twice.
    assert "pingpay_jobs" not in response.text


def _get(url: str):
    try:
        return requests.get(url, timeout=1)
    except requests.ConnectionError:
        return None
