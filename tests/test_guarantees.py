"""Delivery guarantees under failure, with real processes and servers.

Each test makes a failure happen for real (a worker killed with SIGKILL, a
Redis server stopped and started empty, PostgreSQL's connections cut) and
counts what the target received: runs due, delivered, duplicated, lost.
"""

import time

from fastapi.testclient import TestClient
from sqlalchemy import delete

from shared.store.tables import delivery_slots
from shared.web.app import create_app
from tests.helpers import servers_only, wait_for
from tests.processes import CuttableProxy
from tests.targets import Reply
from tests.test_end_to_end import finished_run, one_time_job


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
