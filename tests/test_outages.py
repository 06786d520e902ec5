"""A dependency that does not answer is a 503 naming it, never a 500."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from shared.runtime import build_runtime
from shared.settings import Settings
from shared.store import migrate
from shared.store.engine import create_store_engine
from shared.web.app import create_app

NOBODY = "127.0.0.1:9"  # the discard port: nothing listens there

JOB = {
    "name": "outage",
    "target": "https://example.com/hook",
    "schedule_type": "cron",
    "cron_expression": "0 9 * * *",
}


@contextmanager
def api(settings: Settings) -> Iterator[TestClient]:
    runtime = build_runtime(settings)
    try:
        with TestClient(create_app(runtime), raise_server_exceptions=False) as client:
            yield client
    finally:
        runtime.close()


def test_a_database_that_does_not_answer_is_a_503(tmp_path):
    settings = Settings(
        _env_file=None,
        postgres_url=f"postgresql://postgres@{NOBODY}/nothing",
        data_dir=tmp_path,
        allow_no_auth=True,
    )
    with api(settings) as client:
        health = client.get("/health")
        created = client.post("/jobs", json=JOB)
        listed = client.get("/jobs")

    assert health.status_code == 503
    assert health.json()["database"].startswith("unavailable")
    assert health.json()["queue"] == "ok"
    for answer in (created, listed):
        assert answer.status_code == 503
        assert answer.json() == {"detail": "database unavailable, try again shortly"}


def test_a_queue_that_does_not_answer_is_a_503_on_health_only(tmp_path):
    settings = Settings(
        _env_file=None,
        redis_url=f"redis://{NOBODY}/0",
        data_dir=tmp_path,
        allow_no_auth=True,
    )
    engine = create_store_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    with api(settings) as client:
        health = client.get("/health")
        created = client.post("/jobs", json=JOB)

    assert health.status_code == 503
    assert health.json()["queue"].startswith("unavailable")
    # Jobs are still accepted: the runs wait in the database for the queue.
    assert created.status_code == 201
