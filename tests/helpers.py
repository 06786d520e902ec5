"""Small helpers shared by the tests."""

import os
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

#: Marks a test that is about PostgreSQL or Redis: it takes the ``backend``
#: fixture on servers only.
servers_only = pytest.mark.parametrize("backend", ["servers"], indirect=True)


def wait_for(check: Callable[[], T], timeout: float = 10, every: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout} s: {check}")
        time.sleep(every)


#: Settings a developer's shell may hold that must not reach a test's process.
_SETTING_NAMES = (
    "POSTGRES_URL",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "PORT",
    "HOST",
    "DATA_DIR",
    "QUEUE_NAME",
    "WORKER_CONCURRENCY",
    "API_KEYS",
    "ALLOW_NO_AUTH",
    "ALLOW_PRIVATE_TARGETS",
    "TARGET_ALLOWLIST",
)


def process_env(**settings: str) -> dict[str, str]:
    """This process's environment without service settings, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if k not in _SETTING_NAMES}
    return env | settings
