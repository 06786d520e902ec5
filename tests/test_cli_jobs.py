"""``pingpay-scheduler jobs …`` and ``preview`` against a running service."""

import json
import re
from datetime import timedelta

import pytest
from click.testing import CliRunner

from shared.cli import main
from shared.times import iso_z, utcnow
from tests.targets import Reply


@pytest.fixture
def cli(live_service):
    """Run a command against the live service; answer (exit code, out, err)."""
    runner = CliRunner()

    def run(*args: str, input: str | None = None, **env: str):
        # A wide terminal, so that no table wraps a value the test looks for.
        environment = {"PINGPAY_URL": live_service.url, "COLUMNS": "200"} | env
        result = runner.invoke(main, list(args), input=input, env=environment)
        return result.exit_code, result.stdout, result.stderr

    return run


def created(cli, *args: str) -> dict:
    code, out, err = cli("jobs", "create", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_create_three_kinds_of_job_and_list_them(cli, target_server):
    target = target_server.url("/hook")
    at = iso_z(utcnow() + timedelta(hours=1))

    every = created(cli, "Every five", target, "--every", "5 minutes")
    cron = created(
        cli, "Weekdays", target, "--cron", "0 9 * * MON-FRI", "--tz", "Europe/Paris"
    )
    once = created(
        cli, "Once", target, "--at", at, "--method", "PUT", "--payload", '{"a": 1}'
    )
    code, out, _ = cli("jobs", "list")
    _, listed, _ = cli("jobs", "list", "--json")

    assert (every["interval"], every["interval_value"]) == ("minute", 5)
    assert cron["cron_expression"] == "0 9 * * MON-FRI"
    assert cron["timezone"] == "Europe/Paris"
    assert (once["specific_time"], once["method"], once["payload"]) == (
        at,
        "PUT",
        {"a": 1},
    )
    assert code == 0
    for job in (every, cron, once):
        assert job["id"][:8] in out
    assert "Every 5 minutes" in out
    assert "At 09:00, Monday through Friday (Europe/Paris)" in out
    assert [job["id"] for job in json.loads(listed)] == [
        every["id"],
        cron["id"],
        once["id"],
    ]


def test_show_pause_resume_and_delete_by_a_short_id(cli, target_server):
    job = created(
        cli,
        "Nightly",
        target_server.url("/n"),
        "--cron",
        "30 2 * * *",
        "--header",
        "Authorization: Bearer hush-hush",
    )
    short = job["id"][:8]

    shown = cli("jobs", "show", short)
    paused = cli("jobs", "pause", short, "--json")
    listed_paused = cli("jobs", "list", "--status", "paused", "--json")
    listed_inactive = cli("jobs", "list", "--status", "inactive", "--json")
    resumed = cli("jobs", "resume", short, "--json")
    deleted = cli("jobs", "delete", short, "--yes")
    gone = cli("jobs", "show", job["id"])

    assert shown[0] == 0
    assert job["id"] in shown[1]
    assert "At 02:30" in shown[1]
    assert "Authorization" in shown[1] and "hush-hush" not in shown[1]
    assert json.loads(paused[1])["status"] == "inactive"
    assert [j["id"] for j in json.loads(listed_paused[1])] == [job["id"]]
    assert json.loads(listed_inactive[1]) == json.loads(listed_paused[1])
    assert json.loads(resumed[1])["status"] == "active"
    assert deleted[0] == 0 and f"Deleted job {job['id']}" in deleted[1]
    assert gone[0] == 3
    assert "not found" in gone[2]


def test_pause_and_resume_say_when_it_fires_next(cli, target_server):
    job = created(cli, "Nightly", target_server.url("/n"), "--cron", "30 2 * * *")

    paused = cli("jobs", "pause", job["id"][:8])
    listed = cli("jobs", "list")
    resumed = cli("jobs", "resume", job["id"][:8])

    assert paused[0] == 0
    assert paused[1].endswith("(Nightly): no next fire time while paused\n")
    assert re.search(rf"{job['id'][:8]} +Nightly +paused ", listed[1])
    assert resumed[0] == 0
    # As `show` prints it: on the job's clock, and how soon.
    assert re.search(r"next fire time \d{4}-\d\d-\d\d 02:30:00 UTC, in ", resumed[1])


def test_delete_asks_and_says_to_pass_yes_without_a_terminal(cli, target_server):
    job = created(cli, "Kept", target_server.url("/"), "--every", "hour")

    no_answer = cli("jobs", "delete", job["id"][:8])
    as_json = cli("jobs", "delete", job["id"][:8], "--json")
    declined = cli("jobs", "delete", job["id"][:8], input="n\n")
    still_there = cli("jobs", "show", job["id"])
    confirmed = cli("jobs", "delete", job["id"][:8], input="y\n")

    assert no_answer[0] == 2 and "pass --yes" in no_answer[2]
    assert "Aborted" not in no_answer[2]
    assert json.loads(as_json[1])["exit_code"] == 2
    assert declined[0] == 8 and "Not deleted." in declined[2]
    assert still_there[0] == 0
    assert confirmed[0] == 0 and f"Deleted job {job['id']}" in confirmed[1]


def test_with_json_an_error_is_json_on_standard_output(cli, target_server):
    unknown = "0" * 8 + "-0000-4000-8000-" + "0" * 12
    missing = cli("jobs", "show", unknown, "--json")
    refused = cli(
        "jobs",
        "create",
        "x",
        target_server.url("/"),
        "--cron",
        "*/90 * * * *",
        "--json",
    )
    no_service = cli("jobs", "list", "--json", "--url", "http://127.0.0.1:9")
    usage = cli("jobs", "create", "x", target_server.url("/"), "--json")

    assert missing[0] == 3
    assert json.loads(missing[1]) == {
        "error": missing[2].removeprefix("Error: ").strip(),
        "status": 404,
        "exit_code": 3,
    }
    assert refused[0] == 1
    assert json.loads(refused[1])["status"] == 422
    assert "cron_expression" in json.loads(refused[1])["error"]
    assert no_service[0] == 5
    assert json.loads(no_service[1])["status"] is None
    assert usage[0] == 2
    assert json.loads(usage[1])["exit_code"] == 2


def test_trigger_and_wait_exits_by_the_runs_outcome(cli, target_server):
    target_server.reply("/fails", Reply(400, body=b"no such account"))
    good = created(cli, "Good", target_server.url("/ok"), "--every", "day")
    bad = created(cli, "Bad", target_server.url("/fails"), "--every", "day")

    succeeded = cli("jobs", "trigger", good["id"][:8], "--wait", "--json")
    failed = cli("jobs", "trigger", bad["id"][:8], "--wait")
    runs = cli("jobs", "runs", bad["id"][:8])
    run_id = json.loads(cli("jobs", "runs", bad["id"], "--json")[1])[0]["id"]
    detail = cli("jobs", "runs", bad["id"][:8], run_id[:8])

    assert succeeded[0] == 0, succeeded[2]
    assert json.loads(succeeded[1])["status"] == "succeeded"
    assert len(target_server.received("/ok")) == 1
    assert failed[0] == 6
    assert "failed" in failed[1]
    assert runs[0] == 0 and "manual" in runs[1] and "400" in runs[1]
    assert detail[0] == 0
    assert "answered: no such account" in detail[1]


def test_a_refused_job_exits_1_naming_the_field(cli, target_server):
    code, out, err = cli(
        "jobs", "create", "x", target_server.url("/"), "--cron", "*/90 * * * *"
    )

    assert code == 1
    assert "cron_expression" in err
    assert out == ""


def test_wrong_usage_exits_2(cli, target_server):
    target = target_server.url("/")
    no_schedule = cli("jobs", "create", "x", target)
    two_schedules = cli(
        "jobs", "create", "x", target, "--cron", "* * * * *", "--at", "x"
    )
    bad_every = cli("jobs", "create", "x", target, "--every", "5 fortnights")
    bad_payload = cli(
        "jobs", "create", "x", target, "--every", "hour", "--payload", "{"
    )
    created(cli, "One", target, "--every", "hour")
    created(cli, "Two", target, "--every", "hour")
    ambiguous = cli("jobs", "show", "")

    assert no_schedule[0] == 2 and "--cron, --every or --at" in no_schedule[2]
    assert two_schedules[0] == 2
    assert bad_every[0] == 2 and "--every" in bad_every[2]
    assert bad_payload[0] == 2 and "--payload" in bad_payload[2]
    assert ambiguous[0] == 2 and "2 job ids start with" in ambiguous[2]


def test_no_service_exits_5(cli):
    code, _, err = cli("jobs", "list", "--url", "http://127.0.0.1:9")

    assert code == 5
    assert "no answer from http://127.0.0.1:9" in err


def test_the_key_is_sent_and_a_refusal_exits_4(cli, target_server):
    target_server.reply("/jobs", Reply(401, body=b'{"detail": "wrong API key"}'))

    code, _, err = cli("jobs", "list", "--url", target_server.base_url, "--key", "k1")

    assert code == 4
    assert "wrong API key" in err
    [request] = target_server.received("/jobs")
    assert request.headers["Authorization"] == "Bearer k1"


def test_preview_describes_and_lists_fire_times():
    runner = CliRunner()

    text = runner.invoke(main, ["preview", "0 9 * * MON-FRI", "--tz", "Europe/Paris"])
    data = runner.invoke(main, ["preview", "@daily", "--count", "2", "--json"])
    invalid = runner.invoke(main, ["preview", "0 0 31 2 *"])

    assert text.exit_code == 0
    assert "At 09:00, Monday through Friday (Europe/Paris)" in text.stdout
    assert text.stdout.count(" CET ") + text.stdout.count(" CEST ") == 5
    answer = json.loads(data.stdout)
    assert answer["description"] == "At 00:00"
    assert [t[11:] for t in answer["fire_times"]] == ["00:00:00Z", "00:00:00Z"]
    assert invalid.exit_code == 1
    assert "cron_expression" in invalid.stderr
    invalid_json = runner.invoke(main, ["preview", "0 0 31 2 *", "--json"])
    assert invalid_json.exit_code == 1
    assert "cron_expression" in json.loads(invalid_json.stdout)["error"]
