"""Lines about runs: readable as text, with their fields as JSON keys."""

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shared.logs import QueueErrorsOncePerMinute, formatter
from tests.helpers import wait_for
from tests.targets import Reply

SECRET = "hush-hush-4711"


@pytest.fixture
def log_lines() -> Iterator[dict[str, io.StringIO]]:
    """Every record at DEBUG and above, formatted as text and as JSON."""
    streams = {"text": io.StringIO(), "json": io.StringIO()}
    handlers = []
    for fmt, stream in streams.items():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter(fmt))
        handlers.append(handler)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    yield streams
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


def run_to_the_end(client, target: str) -> dict:
    job = client.post(
        "/jobs",
        json={
            "name": "Logged",
            "target": target,
            "schedule_type": "recurring",
            "interval": "day",
            "interval_value": 1,
            "headers": {"Authorization": f"Bearer {SECRET}"},
            "payload": {"token": SECRET},
            "retry": {"max_attempts": 2, "backoff_seconds": 0},
        },
    ).json()
    run = client.post(f"/jobs/{job['id']}/trigger").json()

    def final():
        found = client.get(f"/runs/{run['id']}").json()
        return found if found["status"] in ("succeeded", "failed") else None

    return wait_for(final, 15)


def about(stream: io.StringIO, run_id: str) -> list[dict]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line.get("run_id") == run_id]


def test_each_attempt_is_one_line_with_the_runs_fields(
    client, worker, target_server, log_lines
):
    target_server.reply("/flaky", Reply(503), Reply(200))

    run = run_to_the_end(client, target_server.url("/flaky"))
    lines = wait_for(
        lambda: (
            len(about(log_lines["json"], run["id"])) == 2
            and about(log_lines["json"], run["id"])
        )
    )

    retry, success = lines
    assert retry["level"] == "WARNING" and success["level"] == "INFO"
    for number, line in enumerate(lines, 1):
        assert line["logger"] == "pingpay.execution"
        assert line["job_id"] == run["job_id"]
        assert line["attempt"] == number
        assert line["fire_time"] == run["scheduled_for"]
        assert line["duration_ms"] >= 0
    assert (retry["outcome"], retry["status_code"]) == ("retry", 503)
    assert (success["outcome"], success["status_code"]) == ("succeeded", 200)
    text = log_lines["text"].getvalue()
    assert f"job {run['job_id']} run {run['id']} attempt 1 retry: 503" in text


def test_a_final_failure_is_an_error_and_no_secret_is_logged(
    client, worker, target_server, log_lines
):
    target_server.reply("/down", Reply(500, body=SECRET.encode()))

    run = run_to_the_end(client, target_server.url("/down"))
    lines = wait_for(
        lambda: (
            len(about(log_lines["json"], run["id"])) == 2
            and about(log_lines["json"], run["id"])
        )
    )

    assert [line["level"] for line in lines] == ["WARNING", "ERROR"]
    assert lines[-1]["outcome"] == "failed"
    for stream in log_lines.values():
        assert SECRET not in stream.getvalue()


def test_a_queue_error_repeated_many_times_is_logged_once_a_minute():
    gate = QueueErrorsOncePerMinute(interval=60)
    record = logging.LogRecord(
        "huey.consumer.Worker-1",
        logging.ERROR,
        __file__,
        1,
        "Error reading from queue",
        None,
        None,
    )
    ours = logging.LogRecord(
        "pingpay.execution", logging.ERROR, __file__, 1, "run failed", None, None
    )

    passed = [gate.filter(record) for _ in range(100)]

    assert passed.count(True) == 1
    assert all(gate.filter(ours) for _ in range(3))


def test_json_lines_leave_out_uvicorns_coloured_copy_of_the_message():
    # Uvicorn logs like this: the message twice, once with colour codes.
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        "Started server process [%d]",
        (4711,),
        None,
    )
    record.color_message = "Started server process [\x1b[36m%d\x1b[0m]"

    line = json.loads(formatter("json").format(record))

    assert line["message"] == "Started server process [4711]"
    assert "color_message" not in line
    assert "\x1b" not in json.dumps(line)
