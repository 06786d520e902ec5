"""Finding the PostgreSQL and Redis servers the tests run against.

In order: URLs from ``PINGPAY_TEST_POSTGRES_URL`` / ``PINGPAY_TEST_REDIS_URL``;
servers answering on 127.0.0.1's standard ports; containers started with
testcontainers when a Docker engine runs. When none of these is there, the
tests that need the server are skipped with the reason, unless
``PINGPAY_REQUIRE_SERVERS=1`` (set by CI), which makes that a failure.
"""

import os
import socket
from urllib.parse import urlsplit

import pytest

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=1):
            return True
    except OSError:
        return False


def _docker_runs() -> bool:
    try:
        import docker

        docker.from_env().ping()
        return True
    except Exception:
        return False


def _unavailable(what: str) -> None:
    message = (
        f"no {what} server: set PINGPAY_TEST_{what.upper()}_URL, run one on "
        f"127.0.0.1, or install Docker for testcontainers"
    )
    if os.environ.get("PINGPAY_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def postgres_url(containers: list) -> str:
    """A PostgreSQL URL to an administrative database."""
    url = os.environ.get("PINGPAY_TEST_POSTGRES_URL", LOCAL_POSTGRES)
    if _answers(url):
        return url
    if _docker_runs():
        from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver=None).start()
        containers.append(container)
        return container.get_connection_url()
    _unavailable("postgres")


def redis_url(containers: list) -> str:
    url = os.environ.get("PINGPAY_TEST_REDIS_URL", LOCAL_REDIS)
    if _answers(url):
        return url
    if _docker_runs():
        from testcontainers.redis import RedisContainer

        container = RedisContainer("redis:7-alpine").start()
        containers.append(container)
        host = container.get_container_host_ip()
        return f"redis://{host}:{container.get_exposed_port(6379)}/0"
    _unavailable("redis")
