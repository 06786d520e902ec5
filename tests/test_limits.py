"""Hostile and oversized input: every case a 4xx that names the field or limit."""

import json

import pytest

from tests.test_api import EXAMPLE, problems

JSON = {"Content-Type": "application/json"}


def body(**changes) -> bytes:
    return json.dumps(EXAMPLE | changes).encode()


def test_a_body_over_the_limit_is_a_413_before_it_is_read(make_client):
    client = make_client(max_request_bytes=4096)
    padding = {"description": "x" * 5000}

    declared = client.post("/jobs", content=body(**padding), headers=JSON)
    chunked = client.post(
        "/jobs", content=(body(**padding)[i : i + 100] for i in range(0, 6000, 100))
    )
    within = client.post("/jobs", content=body(), headers=JSON)

    for answer in (declared, chunked):
        assert answer.status_code == 413
        assert answer.json() == {
            "detail": "the request body is larger than 4096 bytes (MAX_REQUEST_BYTES)"
        }
    assert within.status_code == 201


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"payload": {"blob": "x" * 2000}}, "payload", "MAX_PAYLOAD_BYTES"),
        ({"payload": {"deep": json.loads("[" * 150 + "]" * 150)}}, "payload", "100"),
        ({"headers": {f"X-H{i}": "v" for i in range(4)}}, "headers", "MAX_JOB_HEADERS"),
        ({"headers": {"X-Big": "v" * 300}}, "headers", "MAX_HEADER_BYTES"),
        ({"name": "n" * 21}, "name", "MAX_NAME_LENGTH"),
        ({"description": "d" * 101}, "description", "MAX_DESCRIPTION_LENGTH"),
    ],
)
def test_each_field_limit_is_a_422_naming_its_setting(
    make_client, changes, field, words
):
    client = make_client(
        max_payload_bytes=1024,
        max_job_headers=3,
        max_header_bytes=256,
        max_name_length=20,
        max_description_length=100,
    )

    found = problems(client.post("/jobs", json=EXAMPLE | changes))

    assert words in found[field]


def test_limits_apply_to_replace_and_change_too(make_client):
    client = make_client(max_name_length=20)
    job = client.post("/jobs", json=EXAMPLE).json()

    replaced = client.put(f"/jobs/{job['id']}", json=EXAMPLE | {"name": "n" * 21})
    changed = client.patch(f"/jobs/{job['id']}", json={"name": "n" * 21})

    assert "MAX_NAME_LENGTH" in problems(replaced)["name"]
    assert "MAX_NAME_LENGTH" in problems(changed)["name"]


def test_page_size_is_capped_by_its_setting(make_client):
    client = make_client(max_page_size=2)
    for _ in range(3):
        client.post("/jobs", json=EXAMPLE)

    default = client.get("/jobs")
    too_many = client.get("/jobs?limit=3")
    job_id = default.json()[0]["id"]
    runs = client.get(f"/jobs/{job_id}/runs?limit=3")

    assert len(default.json()) == 2 and "X-Next-Cursor" in default.headers
    for answer in (too_many, runs):
        assert answer.status_code == 422
        [problem] = answer.json()["detail"]
        assert problem["loc"] == ["query", "limit"]
        assert "MAX_PAGE_SIZE" in problem["msg"]


@pytest.mark.parametrize(
    ("raw", "content_type", "status"),
    [
        (b'{"name": ', "application/json", 422),
        (b"[]", "application/json", 422),
        (b"null", "application/json", 422),
        (b'"job"', "application/json", 422),
        (b"\xff\xfe{}", "application/json", 422),
        ('{"name": "\xe9"}'.encode("latin-1"), "application/json", 400),
        (b'{"payload": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json", 422),
        (b'{"payload": ' + b"9" * 5000 + b"}", "application/json", 400),
        (body(), "text/plain", 422),
        (body(), "application/x-www-form-urlencoded", 422),
    ],
)
def test_malformed_bodies_are_a_4xx(client, raw, content_type, status):
    response = client.post("/jobs", content=raw, headers={"Content-Type": content_type})

    assert response.status_code == status, response.text
    assert client.get("/jobs").json() == []


def test_json_nested_beyond_the_parser_is_a_422_naming_the_body(client):
    deep = b'{"payload": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"

    response = client.post("/jobs", content=deep, headers=JSON)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["loc"] == ["body"]
    assert "nested too deeply" in problem["msg"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"payload": {"n": float("nan")}}, "payload"),
        ({"payload": [float("inf")]}, "payload"),
        ({"timeout_seconds": float("nan")}, "timeout_seconds"),
        ({"retry": {"backoff_seconds": float("inf")}}, "backoff_seconds"),
        ({"name": "nul\x00name"}, "name"),
        ({"description": "\x00"}, "description"),
        ({"timezone": "UTC\x00"}, "timezone"),
        ({"target": "https://example.com/\x00"}, "target"),
        ({"payload": {"text": "\ud800"}}, "payload"),
        ({"payload": [{"\udc00": 1}]}, "payload"),
    ],
)
def test_values_json_or_postgresql_cannot_hold_are_a_422(client, changes, field):
    # json.dumps writes NaN as a bare token, as FastAPI's parser accepts it.
    response = client.post("/jobs", content=body(**changes), headers=JSON)

    assert field in problems(response)
    assert client.get("/jobs").json() == []


def test_a_payload_may_hold_nul_stored_and_sent_escaped(client, worker, target_server):
    # The payload column is json, not jsonb, which keeps \u0000 as written;
    # JSON carries it escaped, so neither the database nor a target sees a
    # raw NUL byte. Text fields, which PostgreSQL cannot hold NUL in, are 422s.
    payload = {"key\x00": ["value\x00"]}
    job = client.post(
        "/jobs",
        json=EXAMPLE | {"payload": payload, "target": target_server.url("/hook")},
    ).json()

    stored = client.get(f"/jobs/{job['id']}").json()
    client.post(f"/jobs/{job['id']}/trigger")

    [request] = target_server.wait_for(1, "/hook")
    assert stored["payload"] == payload
    assert request.body == b'{"key\\u0000":["value\\u0000"]}'


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Evil": "a\r\nInjected: yes"},
        {"X-Evil": "a\nInjected: yes"},
        {"X-Evil": "a\rInjected: yes"},
        {"X-Evil": "nul\x00byte"},
        {"X-Evil": "bell\x07"},
        {"X-Evil": "del\x7f"},
        {"X-Evil": " leading blank"},
        {"X-Evil": "euro €"},
        {"X-Evil\r\nInjected": "yes"},
        {"X-Evil\n": "yes"},
        {"X Evil": "yes"},
        {"X-Evil:": "yes"},
        {"": "empty name"},
        {"Host": "internal.example"},
        {"Content-Length": "0"},
        {"Transfer-Encoding": "chunked"},
        {"Connection": "upgrade"},
        {"Upgrade": "websocket"},
        {"Expect": "100-continue"},
        {"Idempotency-Key": "mine"},
        {"X-PingPay-Run-Id": "forged"},
    ],
)
def test_header_injection_in_job_headers_is_a_422(client, headers):
    response = client.post("/jobs", json=EXAMPLE | {"headers": headers})

    assert "headers" in problems(response)
    assert client.get("/jobs").json() == []


def test_ordinary_headers_are_accepted(client):
    headers = {"X-Trace": "a\tb c", "Accept-Language": "fr-CH, fr;q=0.9", "X-E": "é"}

    response = client.post("/jobs", json=EXAMPLE | {"headers": headers})

    assert response.status_code == 201, response.text
    assert response.json()["headers"] == headers


@pytest.mark.parametrize(
    ("interval", "value"),
    [("year", 1_000_000), ("month", 1_000_000), ("week", 999_999)],
)
def test_a_schedule_beyond_the_calendar_is_a_422(client, interval, value):
    response = client.post(
        "/jobs", json=EXAMPLE | {"interval": interval, "interval_value": value}
    )

    assert "no fire time after now" in problems(response)["schedule_type"]
