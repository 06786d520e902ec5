"""Calling the function handlers as a function platform calls them.

A handler builds its runtime when its module is imported, from the
environment, once per container. The ``load_handler`` fixture imports a fresh
copy of a handler module under the settings of a test's backend, as a new
container would, and closes its runtime afterwards. The events are payloads of
the shapes API Gateway, function URLs and the platform's scheduler send (in
``tests/events/``), with each request's method, path, query and body filled in.
"""

import base64
import importlib.util
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

import pytest

from shared.settings import Settings, get_settings

if TYPE_CHECKING:
    from tests.conftest import Backend

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).resolve().parent / "events"

#: The kinds of HTTP event the api function receives.
HTTP_EVENTS = ("http_api_v2", "rest_api_v1", "function_url")

#: Marks a test about PostgreSQL and Redis: it takes ``backend`` on servers only.
on_servers = pytest.mark.parametrize("backend", ["servers"], indirect=True)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text())


def http_event(
    kind: str,
    method: str,
    path: str,
    query: dict[str, str] | None = None,
    body: Any = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An event of ``kind`` for one request; ``body`` is sent as JSON."""
    event = load_event(kind)
    raw_body = None if body is None else json.dumps(body)
    if base64_body and raw_body is not None:
        raw_body = base64.b64encode(raw_body.encode()).decode()
    if kind == "rest_api_v1":
        _fill_rest_event(event, method, path, query or {})
    else:
        _fill_http_event(event, method, path, query or {})
    if raw_body is not None:
        headers = event["headers"]
        headers["content-type" if kind != "rest_api_v1" else "Content-Type"] = (
            "application/json"
        )
        event["body"] = raw_body
        event["isBase64Encoded"] = base64_body
    return event


def _fill_http_event(
    event: dict[str, Any], method: str, path: str, query: dict[str, str]
) -> None:
    """Payload format 2.0: API Gateway HTTP APIs and function URLs."""
    event["rawPath"] = path
    event["rawQueryString"] = urlencode(query)
    if query:
        event["queryStringParameters"] = dict(query)
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["http"]["path"] = path


def _fill_rest_event(
    event: dict[str, Any], method: str, path: str, query: dict[str, str]
) -> None:
    """Payload format 1.0: API Gateway REST APIs, proxy integration."""
    event["path"] = path
    event["httpMethod"] = method
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["httpMethod"] = method
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    if query:
        event["queryStringParameters"] = dict(query)
        event["multiValueQueryStringParameters"] = {
            name: [value] for name, value in query.items()
        }


def response_headers(response: dict[str, Any]) -> dict[str, str]:
    """An answer's headers, lower-cased, whichever way the format carries them."""
    headers = {k.lower(): v for k, v in (response.get("headers") or {}).items()}
    for name, values in (response.get("multiValueHeaders") or {}).items():
        headers[name.lower()] = ", ".join(values)
    return headers


def response_json(response: dict[str, Any]) -> Any:
    body = response.get("body") or ""
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    return json.loads(body) if body else None


def next_cursor(response: dict[str, Any]) -> str | None:
    link = response_headers(response).get("link")
    if not link:
        return None
    url = link.split(">", 1)[0].lstrip("<")
    return parse_qs(url.split("?", 1)[1])["cursor"][0]


class LambdaContext:
    """The context a function platform hands each invocation, as handlers read it."""

    def __init__(self, seconds: float, function_name: str = "pingpay-test") -> None:
        self._deadline = time.monotonic() + seconds
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 512
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = (
            f"arn:aws:lambda:eu-west-1:111122223333:function:{function_name}"
        )

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@pytest.fixture(name="load_handler")
def load_handler_fixture(monkeypatch) -> Iterator[Callable[..., ModuleType]]:
    """Import ``functions/<name>/handler.py`` afresh under a backend's settings.

    A test module that takes ``load_handler`` imports this fixture.
    """
    loaded: list[ModuleType] = []

    def load(name: str, backend: "Backend", **settings: str) -> ModuleType:
        _set_environment(monkeypatch, backend, settings)
        module = _import_fresh(name)
        loaded.append(module)
        return module

    yield load

    for module in loaded:
        runtime = getattr(module, "runtime", None)
        if runtime is not None:
            runtime.close()
    get_settings.cache_clear()


def _set_environment(monkeypatch, backend: "Backend", settings: dict[str, str]) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    for name, value in (backend.env() | {"WORKER_CONCURRENCY": "4"} | settings).items():
        monkeypatch.setenv(name, value)
    # A developer's .env in the working directory must not reach the handler.
    monkeypatch.chdir(backend.data_dir)
    get_settings.cache_clear()


def _import_fresh(name: str) -> ModuleType:
    path = ROOT / "functions" / name / "handler.py"
    spec = importlib.util.spec_from_file_location(
        f"functions.{name}.handler_{uuid.uuid4().hex}", path
    )
    module = importlib.util.module_from_spec(spec)

    # The handler sets up logging for its container; keep pytest's capture.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        spec.loader.exec_module(module)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    return module
