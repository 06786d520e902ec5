"""The dashboard's pages and buttons, over HTTP (the browser test drives it too)."""

import re
from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient

from shared.cli import server_config
from shared.describe import describe_schedule, duration, relative
from shared.runtime import build_runtime
from shared.times import utcnow
from shared.web.app import create_app
from shared.web.chart import day_chart, day_start
from tests.helpers import wait_for
from tests.targets import Reply


def make_job(client, target: str, **changes) -> dict:
    body = {
        "name": "Dashboard job",
        "target": target,
        "schedule_type": "cron",
        "cron_expression": "0 9 * * MON-FRI",
        "timezone": "Europe/Paris",
    } | changes
    response = client.post("/jobs", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def test_the_list_shows_each_job_and_filters_by_status(client, target_server):
    active = make_job(client, target_server.url("/"), name="Weekday report")
    paused = make_job(client, target_server.url("/"), name="Paused sync")
    client.post(f"/jobs/{paused['id']}/pause")

    everything = client.get("/ui")
    only_paused = client.get("/ui?status=inactive")

    assert everything.status_code == 200
    assert "Weekday report" in everything.text and "Paused sync" in everything.text
    assert "At 09:00, Monday through Friday (Europe/Paris)" in everything.text
    assert f'data-job-id="{active["id"]}"' in everything.text
    assert "Paused sync" in only_paused.text
    assert "Weekday report" not in only_paused.text
    assert client.get("/ui?status=sleeping").status_code == 422


def test_auto_refresh_stays_on_across_tabs_and_the_icon_is_inline(client):
    refreshing = client.get("/ui?status=active&refresh=5").text
    still = client.get("/ui").text

    assert 'href="/ui?refresh=5"' in refreshing
    assert 'href="/ui?status=inactive&amp;refresh=5"' in refreshing
    assert 'href="/ui?status=failed"' in still
    assert still.count("refresh=5") == 1  # the Auto-refresh link only
    assert '<link rel="icon" href="data:image/svg+xml,' in still


def test_a_job_page_shows_runs_attempts_and_hides_header_values(
    client, worker, target_server
):
    target_server.reply("/flaky", Reply(503, body=b"busy"), Reply(200, body=b"done!"))
    job = make_job(
        client,
        target_server.url("/flaky"),
        headers={"Authorization": "Bearer hush-hush"},
        retry={"max_attempts": 2, "backoff_seconds": 0},
    )
    run = client.post(f"/jobs/{job['id']}/trigger").json()
    wait_for(lambda: client.get(f"/runs/{run['id']}").json()["status"] == "succeeded")

    page = client.get(f"/ui/jobs/{job['id']}").text

    assert f'data-run-id="{run["id"]}"' in page
    assert "Authorization: •••" in page
    assert "hush-hush" not in page
    assert "busy" in page and "done!" in page
    assert page.count("CET") + page.count("CEST") >= 5  # next fire times, local
    attempts = page.split(f'data-run-id="{run["id"]}"')[1]
    assert re.search(r"503.*retry.*200.*succeeded", attempts, re.S)


def test_buttons_act_then_show_the_job(client, target_server):
    job = make_job(client, target_server.url("/"))
    page = f"/ui/jobs/{job['id']}"

    paused = client.post(f"{page}/pause")
    resumed = client.post(f"{page}/resume", follow_redirects=False)
    triggered = client.post(f"{page}/trigger")
    deleted = client.post(f"{page}/delete")

    assert "Paused: nothing fires" in paused.text
    assert "Resume</button>" in paused.text
    assert resumed.status_code == 303
    assert resumed.headers["location"].endswith(f"{page}?notice=resumed")
    assert "Triggered" in triggered.text and "manual" in triggered.text
    assert "Deleted, with its history." in deleted.text
    assert client.get(f"/jobs/{job['id']}").status_code == 404
    assert client.get(page).status_code == 404
    assert client.post(f"{page}/pause").status_code == 404


def test_a_triggered_run_is_marked_below_a_later_scheduled_run(client, target_server):
    # Every minute: the tick has already planned the next fire time, which
    # sorts above the run a trigger makes now.
    job = make_job(
        client,
        target_server.url("/"),
        schedule_type="recurring",
        interval="minute",
        interval_value=1,
        cron_expression=None,
    )

    page = client.post(f"/ui/jobs/{job['id']}/trigger")

    new_run = page.url.params["new_run"]
    runs = re.findall(r'<details data-run-id="([^"]+)"( class="new")?', page.text)
    assert (new_run, ' class="new"') in runs
    assert [run for run, mark in runs if mark] == [new_run]
    assert runs[0][0] != new_run
    assert "at the top" not in page.text
    assert "marked new" in page.text


def test_resuming_a_schedule_with_no_future_says_why(client, runtime, target_server):
    soon = (utcnow() + timedelta(minutes=10)).isoformat()
    job = make_job(
        client,
        target_server.url("/"),
        schedule_type="specific_time",
        specific_time=soon,
        cron_expression=None,
    )
    client.post(f"/jobs/{job['id']}/pause")
    past = utcnow() - timedelta(minutes=1)
    runtime.store.jobs.update(
        job["id"], {"specific_time": past, "updated_at": past}, False
    )

    page = client.post(f"/ui/jobs/{job['id']}/resume")

    assert "no fire time after now" in page.text


def test_the_key_is_kept_in_a_strict_cookie_for_the_dashboard_only(client):
    response = client.post("/ui/login", data={"key": "k-123"}, follow_redirects=False)

    cookie = response.headers["set-cookie"]
    assert response.status_code == 303
    assert cookie.startswith("pingpay_api_key=k-123;")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/ui" in cookie
    forgotten = client.post("/ui/logout", follow_redirects=False)
    assert 'pingpay_api_key=""' in forgotten.headers["set-cookie"]


def test_a_sign_in_posted_by_another_site_is_refused(client):
    def sign_in(origin: str | None) -> object:
        headers = {"Origin": origin} if origin else {}
        return client.post(
            "/ui/login", data={"key": "k-123"}, headers=headers, follow_redirects=False
        )

    other_site = sign_in("https://evil.example")
    sandboxed = sign_in("null")
    own_page = sign_in("http://testserver")
    no_origin = sign_in(None)

    for refused in (other_site, sandboxed):
        assert refused.status_code == 403
        assert "set-cookie" not in refused.headers
    assert own_page.status_code == 303 and "set-cookie" in own_page.headers
    assert no_origin.status_code == 303


def test_behind_a_trusted_proxy_that_ends_tls_the_cookie_is_secure(backend):
    settings = backend.settings(forwarded_allow_ips="10.1.2.3")
    runtime = build_runtime(settings)
    config = server_config(create_app(runtime), "127.0.0.1", settings)
    config.load()

    def sign_in(client_address: str) -> object:
        with TestClient(config.loaded_app, client=(client_address, 50000)) as client:
            return client.post(
                "/ui/login",
                data={"key": "k-123"},
                headers={"X-Forwarded-Proto": "https"},
                follow_redirects=False,
            )

    proxy, anyone = sign_in("10.1.2.3"), sign_in("10.9.9.9")
    runtime.close()

    assert "secure" in proxy.headers["set-cookie"].lower()
    assert "secure" not in anyone.headers["set-cookie"].lower()


def test_the_day_chart_counts_runs_by_hour_in_both_databases(client, runtime):
    job = make_job(client, "http://127.0.0.1:9/")
    now = utcnow()
    for minutes in (0, 1, 61):
        runtime.store.runs.add_manual(job["id"], now - timedelta(minutes=minutes))
    rows = runtime.store.runs.hourly_statuses(day_start(now))

    chart = day_chart(rows, now)

    by_hour = {bar.hour: bar.total for bar in chart.bars if bar.total}
    expected: dict[datetime, int] = {}
    for minutes in (0, 1, 61):
        hour = (now - timedelta(minutes=minutes)).replace(
            minute=0, second=0, microsecond=0
        )
        expected[hour] = expected.get(hour, 0) + 1
    assert by_hour == expected
    assert chart.totals["in flight"] == 3


def test_chart_bars_stack_to_scale():
    now = datetime(2026, 3, 8, 12, 30, tzinfo=UTC)
    noon = datetime(2026, 3, 8, 12, tzinfo=UTC)
    rows = [(noon, "succeeded", 3), (noon, "failed", 1), (noon, "missed", 4)]
    rows.append((noon - timedelta(hours=30), "failed", 9))  # before the day

    chart = day_chart(rows, now)

    last = chart.bars[-1]
    assert len(chart.bars) == 24 and last.hour == noon
    assert chart.peak == 8
    assert [(s.series, s.count) for s in last.segments] == [
        ("succeeded", 3),
        ("failed", 1),
        ("not sent", 4),
    ]
    assert sum(s.height for s in last.segments) == chart.height
    assert chart.totals == {"succeeded": 3, "failed": 1, "in flight": 0, "not sent": 4}


def test_schedules_and_times_in_words():
    once = datetime(2026, 3, 8, 8, 0, tzinfo=UTC)
    now = datetime(2026, 3, 8, 7, 59, 18, tzinfo=UTC)

    assert describe_schedule(
        {"schedule_type": "cron", "cron_expression": "@daily"}
    ) == ("At 00:00")
    assert describe_schedule(
        {"schedule_type": "recurring", "interval": "hour", "interval_value": 2}
    ) == ("Every 2 hours")
    assert describe_schedule(
        {
            "schedule_type": "specific_time",
            "specific_time": once,
            "timezone": "Europe/Paris",
        }
    ) == ("Once, at 2026-03-08 09:00:00 CET")
    assert relative(once, now) == "in 42 s"
    assert relative(now - timedelta(hours=3), now) == "3 h ago"
    assert duration(3600) == "1 h" and duration(90) == "90 s"
