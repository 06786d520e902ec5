"""Fixtures: every test that takes ``backend`` runs embedded and on servers.

``embedded`` is SQLite for jobs and Huey's SQLite storage for the queue, in
the test's own temporary folder. ``servers`` is PostgreSQL (a database made
for this test session, emptied before each test) and Redis (a queue name of
the test's own).
"""

import signal
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from shared.runtime import Runtime, build_runtime
from shared.settings import Settings
from shared.store import migrate
from shared.store.engine import create_store_engine
from shared.web.app import create_app
from tests import services
from tests.live import live_service  # noqa: F401 - a fixture for every test
from tests.processes import PrivateRedis, WorkerProcess
from tests.targets import target_server  # noqa: F401 - a fixture for every test


@pytest.fixture(scope="session")
def containers() -> Iterator[list]:
    started: list = []
    yield started
    for container in started:
        container.stop()


@pytest.fixture(scope="session")
def postgres_database(containers) -> Iterator[str]:
    """A fresh, migrated database for this session, dropped at its end."""
    admin = services.postgres_url(containers)
    name = f"pingpay_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = admin.rsplit("/", 1)[0] + "/" + name
    engine = create_store_engine(Settings(postgres_url=url).database_url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_server(containers) -> str:
    return services.redis_url(containers)


@dataclass
class Backend:
    """How to reach the store and queue of one test."""

    name: str
    postgres_url: str | None
    redis_url: str | None
    data_dir: Path
    queue_name: str

    def settings(self, **overrides) -> Settings:
        """Test settings: targets on 127.0.0.1 and no API keys are allowed."""
        values = {
            "postgres_url": self.postgres_url,
            "redis_url": self.redis_url,
            "redis_host": None,
            "data_dir": self.data_dir,
            "queue_name": self.queue_name,
            "worker_concurrency": 4,
            "allow_private_targets": True,
            "allow_no_auth": True,
        }
        return Settings(_env_file=None, **(values | overrides))

    def env(self) -> dict[str, str]:
        """The same settings as environment variables, for a subprocess."""
        env = {
            "DATA_DIR": str(self.data_dir),
            "QUEUE_NAME": self.queue_name,
            "POSTGRES_URL": self.postgres_url or "",
            "REDIS_URL": self.redis_url or "",
            "ALLOW_PRIVATE_TARGETS": "true",
            "ALLOW_NO_AUTH": "true",
        }
        return {key: value for key, value in env.items() if value}


@pytest.fixture(params=["embedded", "servers"])
def backend(request, tmp_path) -> Iterator[Backend]:
    queue_name = f"test-{uuid.uuid4().hex[:10]}"
    if request.param == "embedded":
        backend = Backend("embedded", None, None, tmp_path, queue_name)
        engine = create_store_engine(backend.settings().database_url)
        migrate.upgrade(engine)
        engine.dispose()
        yield backend
        return
    database = request.getfixturevalue("postgres_database")
    redis_url = request.getfixturevalue("redis_server")
    _empty_tables(database)
    yield Backend("servers", database, redis_url, tmp_path, queue_name)
    _forget_queue(redis_url, queue_name)


def _empty_tables(url: str) -> None:
    engine = create_store_engine(Settings(postgres_url=url).database_url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE attempts, runs, jobs"))
    engine.dispose()


def _forget_queue(redis_url: str, queue_name: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"*{queue_name}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def start_service(backend):
    """Start a runtime with custom settings, with or without delivery threads.

    Everything started is stopped after the test.
    """
    started: list[tuple[Runtime, object]] = []

    def start(deliver: bool = True, **overrides) -> Runtime:
        runtime = build_runtime(backend.settings(**overrides))
        runtime.start()
        consumer = None
        if deliver:
            consumer = runtime.queue.consumer(runtime.settings.worker_concurrency)
            consumer.start()
            # The consumer takes over SIGINT; give it back to pytest.
            signal.signal(signal.SIGINT, signal.default_int_handler)
        started.append((runtime, consumer))
        return runtime

    yield start
    for runtime, consumer in reversed(started):
        if consumer:
            consumer.stop(graceful=True)
        runtime.close()


@pytest.fixture
def runtime(start_service) -> Runtime:
    """A started runtime (dispatcher running), delivering nothing by itself."""
    return start_service(deliver=False)


@pytest.fixture
def worker(runtime) -> Iterator[Runtime]:
    """Delivery threads (a Huey consumer) for ``runtime``, in this process."""
    consumer = runtime.queue.consumer(runtime.settings.worker_concurrency)
    consumer.start()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield runtime
    consumer.stop(graceful=True)


@pytest.fixture
def client(runtime) -> Iterator[TestClient]:
    with TestClient(create_app(runtime)) as test_client:
        yield test_client


#: Settings that make a worker process recover in seconds instead of minutes.
FAST_RECOVERY = {
    "TICK_INTERVAL_SECONDS": "1",
    "STALE_AFTER_SECONDS": "1",
    "LEASE_MARGIN_SECONDS": "1",
    "WORKER_CONCURRENCY": "2",
}


@pytest.fixture
def workers(tmp_path):
    """Start worker processes; every one is stopped after the test.

    They recover fast (``FAST_RECOVERY``) unless ``env`` says otherwise.
    """
    started: list[WorkerProcess] = []

    def start(env: dict[str, str]) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started)}.log"
        worker = WorkerProcess(FAST_RECOVERY | env, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture
def private_redis(tmp_path):
    redis = PrivateRedis(tmp_path)
    yield redis
    redis.stop()


@pytest.fixture
def make_client(backend) -> Iterator[Callable[..., TestClient]]:
    """Makes clients of apps over the test's backend, with settings changed.

    ``make_client(api_keys=[KEY])`` is a client of an app that needs a key.
    """
    opened: list[tuple[Runtime, TestClient]] = []

    def make(**overrides) -> TestClient:
        runtime = build_runtime(backend.settings(**overrides))
        runtime.start()
        test_client = TestClient(create_app(runtime)).__enter__()
        opened.append((runtime, test_client))
        return test_client

    yield make
    for runtime, test_client in reversed(opened):
        test_client.__exit__(None, None, None)
        runtime.close()
