"""The api function answers API Gateway and function URL events like the API."""

import pytest
from sqlalchemy import event

from tests.functions import (
    HTTP_EVENTS,
    http_event,
    load_handler_fixture,  # noqa: F401 - the load_handler fixture
    next_cursor,
    on_servers,
    response_headers,
    response_json,
)

JOB = {
    "name": "Example Job",
    "type": "http",
    "target": "https://example.com/api/notify",
    "payload": {"message": "Hello, world!"},
    "schedule_type": "recurring",
    "interval": "hour",
    "interval_value": 1,
}


@pytest.mark.parametrize("kind", HTTP_EVENTS)
def test_create_list_get_and_delete_a_job(kind, backend, load_handler):
    api = load_handler("api", backend).handler

    created = api(http_event(kind, "POST", "/jobs", body=JOB), None)
    job = response_json(created)
    listed = api(http_event(kind, "GET", "/jobs", {"status": "active"}), None)
    fetched = api(http_event(kind, "GET", f"/jobs/{job['id']}"), None)
    deleted = api(http_event(kind, "DELETE", f"/jobs/{job['id']}"), None)
    gone = api(http_event(kind, "GET", f"/jobs/{job['id']}"), None)

    assert created["statusCode"] == 201, created
    assert job["name"] == "Example Job" and job["status"] == "active"
    assert response_headers(created)["content-type"] == "application/json"
    assert listed["statusCode"] == 200
    assert [item["id"] for item in response_json(listed)] == [job["id"]]
    assert fetched["statusCode"] == 200
    assert response_json(fetched) == job
    assert deleted["statusCode"] == 204
    assert gone["statusCode"] == 404
    assert job["id"] in response_json(gone)["detail"]


@pytest.mark.parametrize("kind", HTTP_EVENTS)
def test_an_invalid_job_is_a_422_naming_the_field(kind, backend, load_handler):
    api = load_handler("api", backend).handler

    response = api(
        http_event(kind, "POST", "/jobs", body=JOB | {"interval": "fortnight"}), None
    )

    assert response["statusCode"] == 422
    fields = [item["loc"][-1] for item in response_json(response)["detail"]]
    assert fields == ["interval"]


def test_an_unknown_path_is_a_404(backend, load_handler):
    api = load_handler("api", backend).handler

    response = api(http_event("http_api_v2", "GET", "/nothing/here"), None)

    assert response["statusCode"] == 404


@pytest.mark.parametrize("kind", ("rest_api_v1", "function_url"))
def test_pages_carry_their_link_and_cursor_headers(kind, backend, load_handler):
    api = load_handler("api", backend).handler
    for name in ("first", "second"):
        api(http_event(kind, "POST", "/jobs", body=JOB | {"name": name}), None)

    first = api(http_event(kind, "GET", "/jobs", {"limit": "1"}), None)
    cursor = next_cursor(first)
    second = api(
        http_event(kind, "GET", "/jobs", {"limit": "1", "cursor": cursor}), None
    )

    assert response_headers(first)["x-next-cursor"] == cursor
    assert [job["name"] for job in response_json(first)] == ["first"]
    assert [job["name"] for job in response_json(second)] == ["second"]


def test_a_base64_body_is_decoded(backend, load_handler):
    # Function URLs and HTTP APIs may pass a body base64-encoded.
    api = load_handler("api", backend).handler

    event = http_event("function_url", "POST", "/jobs", body=JOB, base64_body=True)
    response = api(event, None)

    assert response["statusCode"] == 201, response
    assert response_json(response)["name"] == "Example Job"


def test_health_answers_through_the_function(backend, load_handler):
    api = load_handler("api", backend).handler

    response = api(http_event("http_api_v2", "GET", "/health"), None)

    assert response["statusCode"] == 200
    assert response_json(response)["database"] == "ok"
    assert response_json(response)["queue"] == "ok"


@on_servers
def test_invocations_share_one_connection_and_return_it(backend, load_handler):
    module = load_handler("api", backend)
    engine = module.runtime.store.engine
    opened = []
    event.listen(engine, "connect", lambda *_: opened.append(1))

    for _ in range(5):
        created = module.handler(
            http_event("http_api_v2", "POST", "/jobs", body=JOB), None
        )
        module.handler(http_event("http_api_v2", "GET", "/jobs"), None)
        assert created["statusCode"] == 201

    assert len(opened) <= 1
    assert engine.pool.checkedout() == 0
