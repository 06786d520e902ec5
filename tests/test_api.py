"""The REST contract of API.md: every endpoint, its answers and its 4xx."""

import base64
from datetime import timedelta

import pytest

from shared.times import iso_z, utcnow

EXAMPLE = {
    "name": "Example Job",
    "description": "An example job that sends a notification",
    "type": "http",
    "target": "https://example.com/api/notify",
    "payload": {"message": "Hello, world!"},
    "schedule_type": "recurring",
    "interval": "hour",
    "interval_value": 1,
}


def create(client, **changes) -> dict:
    response = client.post("/jobs", json=EXAMPLE | changes)
    assert response.status_code == 201, response.text
    return response.json()


def problems(response) -> dict[str, str]:
    """A 422's problems as {field: message}."""
    assert response.status_code == 422, response.text
    return {item["loc"][-1]: item["msg"] for item in response.json()["detail"]}


def test_health_reports_both_dependencies(client, backend):
    body = client.get("/health").json()
    assert body == {
        "status": "ok",
        "database": "ok",
        "queue": "ok",
        "mode": "embedded" if backend.name == "embedded" else "servers",
    }


def test_create_answers_the_job_with_its_next_fire_time(client):
    before = utcnow()
    job = create(client)
    assert job["name"] == "Example Job"
    assert job["status"] == "active"
    assert job["method"] == "POST"
    assert job["retry"] == {
        "max_attempts": 3,
        "backoff_seconds": 10,
        "max_backoff_seconds": 3600,
    }
    anchor = before.replace(second=0, microsecond=0)
    assert job["next_run_at"] in {
        iso_z(anchor + timedelta(hours=1)),
        iso_z(anchor + timedelta(hours=1, minutes=1)),
    }
    assert job["created_at"].endswith("Z")


def test_get_list_replace_and_delete(client):
    job = create(client)
    assert client.get(f"/jobs/{job['id']}").json() == job

    listed = client.get("/jobs").json()
    assert [j["id"] for j in listed] == [job["id"]]

    replaced = client.put(
        f"/jobs/{job['id']}",
        json=EXAMPLE
        | {
            "name": "Renamed",
            "schedule_type": "cron",
            "interval": None,
            "interval_value": None,
            "cron_expression": "0 9 * * MON",
        },
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["name"] == "Renamed"
    assert replaced.json()["cron_expression"] == "0 9 * * MON"

    assert client.delete(f"/jobs/{job['id']}").status_code == 204
    assert client.get(f"/jobs/{job['id']}").status_code == 404
    assert client.delete(f"/jobs/{job['id']}").status_code == 404


def test_list_filters_by_status_and_pages(client):
    ids = [create(client, name=f"job {n}")["id"] for n in range(5)]
    client.post(f"/jobs/{ids[0]}/pause")

    inactive = client.get("/jobs", params={"status": "inactive"}).json()
    assert [j["id"] for j in inactive] == [ids[0]]

    first = client.get("/jobs", params={"limit": 2})
    assert [j["id"] for j in first.json()] == ids[:2]
    cursor = first.headers["X-Next-Cursor"]
    assert 'rel="next"' in first.headers["Link"]
    second = client.get("/jobs", params={"limit": 2, "cursor": cursor})
    third = client.get(
        "/jobs", params={"limit": 2, "cursor": second.headers["X-Next-Cursor"]}
    )
    assert [j["id"] for j in second.json()] == ids[2:4]
    assert [j["id"] for j in third.json()] == ids[4:]
    assert "Link" not in third.headers


def test_list_rejects_a_bad_status_and_cursor(client):
    assert client.get("/jobs", params={"status": "sleeping"}).status_code == 422
    assert "cursor" in problems(client.get("/jobs", params={"cursor": "nonsense!"}))


def test_patch_changes_some_fields(client):
    job = create(client)
    response = client.patch(f"/jobs/{job['id']}", json={"name": "Patched"})
    assert response.status_code == 200
    assert response.json()["name"] == "Patched"
    assert response.json()["next_run_at"] == job["next_run_at"]


def test_patch_to_another_schedule_type_drops_the_old_seed_fields(client):
    job = create(client)
    response = client.patch(
        f"/jobs/{job['id']}",
        json={"schedule_type": "cron", "cron_expression": "*/5 * * * *"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["interval"] is None
    assert response.json()["cron_expression"] == "*/5 * * * *"


def test_patch_is_validated_as_a_whole(client):
    job = create(client)
    response = client.patch(f"/jobs/{job['id']}", json={"interval": "fortnight"})
    assert "interval" in problems(response)
    response = client.patch(f"/jobs/{job['id']}", json={"cron_expression": "* * * * *"})
    assert "not allowed" in problems(response)["cron_expression"]


def test_pause_and_resume(client):
    job = create(client)
    paused = client.post(f"/jobs/{job['id']}/pause").json()
    assert paused["status"] == "inactive"
    resumed = client.post(f"/jobs/{job['id']}/resume").json()
    assert resumed["status"] == "active"
    assert resumed["next_run_at"] == job["next_run_at"]


def test_trigger_creates_a_manual_run(client):
    job = create(client)
    response = client.post(f"/jobs/{job['id']}/trigger")
    assert response.status_code == 202
    run = response.json()
    assert run["trigger"] == "manual"
    assert run["job_id"] == job["id"]
    runs = client.get(f"/jobs/{job['id']}/runs").json()
    assert [r["id"] for r in runs] == [run["id"]]
    detail = client.get(f"/runs/{run['id']}").json()
    assert detail["attempts"] == []


def test_unknown_ids_are_404(client):
    for method, path in [
        ("get", "/jobs/nope"),
        ("put", "/jobs/nope"),
        ("patch", "/jobs/nope"),
        ("delete", "/jobs/nope"),
        ("post", "/jobs/nope/pause"),
        ("post", "/jobs/nope/resume"),
        ("post", "/jobs/nope/trigger"),
        ("get", "/jobs/nope/runs"),
        ("get", "/runs/nope"),
    ]:
        body = EXAMPLE if method == "put" else ({} if method == "patch" else None)
        response = client.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert "not found" in response.json()["detail"]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"cron_expression": "* * * * *"}, "cron_expression", "not allowed"),
        ({"interval": None}, "interval", "required"),
        (
            {"schedule_type": "cron", "interval": None, "interval_value": None},
            "cron_expression",
            "required",
        ),
        (
            {
                "schedule_type": "cron",
                "interval": None,
                "interval_value": None,
                "cron_expression": "*/90 * * * *",
            },
            "cron_expression",
            "",
        ),
        (
            {
                "schedule_type": "cron",
                "interval": None,
                "interval_value": None,
                "cron_expression": "0 0 31 2 *",
            },
            "cron_expression",
            "",
        ),
        (
            {
                "schedule_type": "cron",
                "interval": None,
                "interval_value": None,
                "cron_expression": "61 * * * *",
            },
            "cron_expression",
            "",
        ),
        (
            {
                "schedule_type": "specific_time",
                "interval": None,
                "interval_value": None,
                "specific_time": "2020-01-01T00:00:00Z",
            },
            "specific_time",
            "future",
        ),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone", ""),
        ({"target": "ftp://example.com/file"}, "target", "http"),
        ({"target": "not a url"}, "target", ""),
        ({"colour": "blue"}, "colour", "Extra inputs"),
        ({"interval_value": 0}, "interval_value", ""),
        ({"interval": "fortnight"}, "interval", ""),
        ({"method": "TRACE"}, "method", ""),
        ({"name": ""}, "name", ""),
        ({"headers": {"X-Evil": "a\r\nInjected: yes"}}, "headers", "control"),
        ({"retry": {"max_attempts": 0}}, "max_attempts", ""),
        ({"timeout_seconds": 0}, "timeout_seconds", ""),
        (
            {"start_at": "2027-01-02T00:00:00Z", "end_at": "2027-01-01T00:00:00Z"},
            "end_at",
            "after start_at",
        ),
        ({"end_at": "2020-01-01T00:00:00Z"}, "end_at", "no fire time"),
        (
            {"timezone": "America/New_York", "start_at": "2027-03-14T02:30:00"},
            "start_at",
            "does not exist",
        ),
    ],
)
def test_create_rejects_bad_bodies_naming_the_field(client, changes, field, words):
    found = problems(client.post("/jobs", json=EXAMPLE | changes))
    assert field in found, found
    assert words in found[field]


def test_local_times_are_read_in_the_job_zone(client):
    job = create(
        client,
        schedule_type="specific_time",
        interval=None,
        interval_value=None,
        specific_time="2030-06-01T09:00:00",
        timezone="Europe/Paris",
    )
    assert job["specific_time"] == "2030-06-01T07:00:00Z"
    assert job["next_run_at"] == "2030-06-01T07:00:00Z"


def test_preview_lists_fire_times(client):
    response = client.post(
        "/schedules/preview",
        json={
            "schedule_type": "cron",
            "cron_expression": "30 2 * * *",
            "timezone": "America/New_York",
            "after": "2026-03-07T12:00:00Z",
            "count": 3,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "fire_times": [
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
            "2026-03-10T06:30:00Z",
        ]
    }


def test_preview_allows_past_one_time_and_rejects_bad_schedules(client):
    past = client.post(
        "/schedules/preview",
        json={
            "schedule_type": "specific_time",
            "specific_time": "2020-01-01T00:00:00Z",
            "after": "2019-01-01T00:00:00Z",
        },
    )
    assert past.json() == {"fire_times": ["2020-01-01T00:00:00Z"]}
    bad = client.post(
        "/schedules/preview", json={"schedule_type": "cron", "cron_expression": "* *"}
    )
    assert "cron_expression" in problems(bad)
    too_many = client.post(
        "/schedules/preview",
        json={"schedule_type": "cron", "cron_expression": "* * * * *", "count": 101},
    )
    assert "count" in problems(too_many)


def test_openapi_and_docs_are_served(client):
    schema = client.get("/openapi.json").json()
    assert "/jobs/{job_id}/trigger" in schema["paths"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize(
    "field",
    [
        "name",
        "target",
        "schedule_type",
        "method",
        "headers",
        "timeout_seconds",
        "retry",
        "overlap_policy",
        "misfire_policy",
        "timezone",
    ],
)
def test_patch_to_null_of_a_required_field_is_a_422_naming_it(client, field):
    job = create(client)
    assert field in problems(client.patch(f"/jobs/{job['id']}", json={field: None}))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        (
            {
                "schedule_type": "specific_time",
                "interval": None,
                "interval_value": None,
                "specific_time": "9999-12-31T23:59:59-14:00",
            },
            "specific_time",
        ),
        (
            {"start_at": "9999-12-31T23:59:00", "timezone": "America/New_York"},
            "start_at",
        ),
        ({"interval": "year", "interval_value": 9999}, "schedule_type"),
        ({"interval_value": "5"}, "interval_value"),
        ({"interval_value": True}, "interval_value"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"retry": {"backoff_seconds": 100, "max_backoff_seconds": 10}}, "retry"),
    ],
)
def test_create_refuses_values_at_the_edges(client, changes, field):
    assert field in problems(client.post("/jobs", json=EXAMPLE | changes))


def test_text_no_database_can_store_is_a_422(client):
    body = '{"name": "\\ud800", "target": "https://example.com/", '
    body += '"schedule_type": "cron", "cron_expression": "0 9 * * *"}'
    response = client.post(
        "/jobs", content=body, headers={"Content-Type": "application/json"}
    )
    assert "name" in problems(response)


def test_ids_that_are_not_ids_are_unknown(client):
    for path in ("/jobs/%00", "/runs/%00", "/jobs/%00/runs", "/jobs/not-a-uuid"):
        assert client.get(path).status_code == 404, path
    assert client.delete("/jobs/%00").status_code == 404


def test_a_cursor_without_an_offset_and_a_bad_run_status_are_handled(client):
    job = create(client)
    position = f'["2026-01-01T00:00:00", "{job["id"]}"]'  # no offset: UTC
    naive = base64.urlsafe_b64encode(position.encode()).decode()
    assert client.get("/jobs", params={"cursor": naive}).status_code == 200
    runs = client.get(f"/jobs/{job['id']}/runs", params={"status": "bogus"})
    assert "status" in problems(runs)


def test_pausing_then_resuming_in_the_same_minute_keeps_the_next_fire_time(client):
    job = create(client, interval="minute", interval_value=1)
    planned = client.get(f"/jobs/{job['id']}/runs").json()[-1]  # the earliest

    client.post(f"/jobs/{job['id']}/pause")
    assert client.get(f"/runs/{planned['id']}").json()["status"] == "cancelled"
    resumed = client.post(f"/jobs/{job['id']}/resume").json()

    again = client.get(f"/runs/{planned['id']}").json()
    assert again["status"] in ("pending", "queued")
    assert resumed["next_run_at"] == planned["scheduled_for"]


def test_a_completed_job_cannot_be_paused(client, runtime):
    job = create(client)
    runtime.store.jobs.update(job["id"], {"status": "completed"}, cancel_runs=False)

    assert client.post(f"/jobs/{job['id']}/pause").status_code == 409


@pytest.mark.parametrize(
    "position",
    ['["2026-01-01T00:00:00Z", "\\u0000"]', '["0001-01-01T00:00:00+05:00", "x"]'],
)
def test_a_forged_cursor_is_a_422(client, position):
    cursor = base64.urlsafe_b64encode(position.encode()).decode()
    assert "cursor" in problems(client.get("/jobs", params={"cursor": cursor}))
