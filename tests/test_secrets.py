"""Credentials in job headers: masked in every answer, sent intact, never logged."""

import logging
import signal
from datetime import timedelta

import pytest

from shared.delivery import OutgoingRequest, Sender
from shared.errors import InvalidFields
from shared.logs import configure_logging
from shared.masking import MASK, is_sensitive, refuse_moving_credentials
from shared.targets import TargetRule
from shared.times import iso_z, utcnow
from tests.helpers import wait_for
from tests.targets import Reply
from tests.test_api import EXAMPLE, problems

SECRETS = {
    "Authorization": "Bearer target-secret-0001",
    "X-Api-Key": "target-secret-0002",
    "Cookie": "session=target-secret-0003",
    "X-Webhook-Token": "target-secret-0004",
}
HEADERS = SECRETS | {"X-Trace": "visible-value"}


@pytest.mark.parametrize(
    ("name", "sensitive"),
    [
        ("Authorization", True),
        ("proxy-authorization", True),
        ("X-API-KEY", True),
        ("Cookie", True),
        ("X-Client-Secret", True),
        ("X-Auth-Token", True),
        ("X-Hub-Signature", True),
        ("Content-Type", False),
        ("X-Trace", False),
    ],
)
def test_which_headers_are_credentials(name, sensitive):
    assert is_sensitive(name) == sensitive


def test_every_answer_masks_credentials(client):
    created = client.post("/jobs", json=EXAMPLE | {"headers": HEADERS})
    job_id = created.json()["id"]
    answers = [
        created,
        client.get(f"/jobs/{job_id}"),
        client.patch(f"/jobs/{job_id}", json={"name": "Renamed"}),
        client.post(f"/jobs/{job_id}/pause"),
    ]
    listed = client.get("/jobs").json()

    expected = {name: MASK for name in SECRETS} | {"X-Trace": "visible-value"}
    for answer in answers:
        assert answer.json()["headers"] == expected
    assert listed[0]["headers"] == expected
    for answer in [*answers, client.get("/jobs")]:
        assert "target-secret" not in answer.text


def test_sending_a_job_back_as_read_keeps_its_credentials(
    client, worker, target_server
):
    job = client.post(
        "/jobs",
        json=EXAMPLE | {"headers": HEADERS, "target": target_server.url("/hook")},
    ).json()
    as_read = {name: job[name] for name in EXAMPLE} | {"headers": job["headers"]}

    replaced = client.put(f"/jobs/{job['id']}", json=as_read | {"name": "Again"})
    client.patch(f"/jobs/{job['id']}", json={"headers": job["headers"]})
    client.post(f"/jobs/{job['id']}/trigger")

    [request] = target_server.wait_for(1, "/hook")
    assert replaced.status_code == 200, replaced.text
    for name, value in HEADERS.items():
        assert request.headers[name] == value


def test_a_mask_for_a_header_the_job_lacks_is_a_422(client):
    job = client.post("/jobs", json=EXAMPLE).json()

    response = client.patch(
        f"/jobs/{job['id']}", json={"headers": {"Authorization": MASK}}
    )

    assert "send its value" in problems(response)["headers"]


def test_a_refused_header_value_is_not_echoed(client):
    headers = {"Authorization": "Bearer target-secret-0005\r\nX-Injected: 1"}

    response = client.post("/jobs", json=EXAMPLE | {"headers": headers})

    assert "headers" in problems(response)
    assert "target-secret" not in response.text


def test_nothing_logs_a_credential_or_an_api_key(make_client, target_server, caplog):
    """A job with credentials runs through the API, the queue and a delivery."""
    caplog.set_level(logging.DEBUG)
    key = "api-key-for-the-log-test-0123456789"
    client = make_client(api_keys=key)
    auth = {"Authorization": f"Bearer {key}"}
    target_server.reply("/hook", *_failing_then_ok())
    job = {
        **EXAMPLE,
        "headers": HEADERS,
        "target": target_server.url("/hook"),
        "schedule_type": "specific_time",
        "interval": None,
        "interval_value": None,
        "specific_time": iso_z(utcnow() + timedelta(seconds=1)),
        "retry": {"max_attempts": 2, "backoff_seconds": 0.2},
    }

    created = client.post("/jobs", json=job, headers=auth).json()
    client.get("/jobs", headers={"Authorization": "Bearer " + key[:-1]})
    _deliver_with_a_worker(client, created["id"], auth)

    logged = "\n".join(_everything_logged(caplog.records))
    assert "attempt 2 succeeded" in logged
    assert "target-secret" not in logged
    assert key[:-1] not in logged


def _failing_then_ok() -> tuple[Reply, Reply]:
    return Reply(503, body=b"try again"), Reply(200, body=b"ok")


def _deliver_with_a_worker(client, job_id: str, auth: dict[str, str]) -> None:
    runtime = client.app.state.runtime
    consumer = runtime.queue.consumer(2)
    consumer.start()
    # The consumer takes over SIGINT; give it back to pytest.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        wait_for(
            lambda: (
                client.get(f"/jobs/{job_id}", headers=auth).json()["status"]
                == "completed"
            ),
            15,
        )
    finally:
        consumer.stop(graceful=True)


def _everything_logged(records: list[logging.LogRecord]) -> list[str]:
    """Each record's message, arguments and anything attached to it."""
    lines = []
    for record in records:
        lines.append(record.getMessage())
        lines.append(repr(record.args))
        lines.append(repr(record.__dict__))
    return lines


def test_debug_logging_leaves_target_urls_out(target_server, capsys):
    # The service's own logging set-up, writing to the captured stderr.
    root = logging.getLogger()
    saved = root.handlers[:], root.level, logging.getLogger("urllib3").level
    configure_logging("DEBUG")
    path = "/hook/T000/B000/webhook-secret-0006?token=target-secret-0007"
    try:
        with Sender(targets=TargetRule(allow_private=True)) as sender:
            result = sender.send(
                OutgoingRequest("POST", target_server.url(path), {}, b"{}", 5)
            )
            logging.getLogger("pingpay.test").debug("debug lines are written")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("urllib3").setLevel(saved[2])

    logged = capsys.readouterr().err
    assert result.status_code == 200
    assert "debug lines are written" in logged
    assert "webhook-secret" not in logged and "target-secret" not in logged


def test_a_credential_is_not_carried_to_a_target_on_another_host(client):
    job = client.post(
        "/jobs",
        json={
            "name": "billing",
            "target": "https://billing.example.com/hook",
            "headers": {"Authorization": "Bearer VICTIM", "X-Trace": "1"},
            "schedule_type": "cron",
            "cron_expression": "0 9 * * *",
        },
    ).json()

    moved = client.patch(
        f"/jobs/{job['id']}", json={"target": "https://attacker.example/steal"}
    )
    masked_back = client.patch(
        f"/jobs/{job['id']}",
        json={"target": "https://attacker.example/steal", "headers": job["headers"]},
    )
    same_host = client.patch(
        f"/jobs/{job['id']}", json={"target": "https://billing.example.com/v2"}
    )
    resent = client.patch(
        f"/jobs/{job['id']}",
        json={
            "target": "https://other.example/hook",
            "headers": {"Authorization": "Bearer NEW"},
        },
    )

    assert moved.status_code == 422 and "Authorization" in moved.text
    assert masked_back.status_code == 422
    assert same_host.status_code == 200
    assert resent.status_code == 200


# The sender ends the host at the backslash (port 21999); urlsplit reads
# 127.0.0.1:21998, the job's own origin.
BACKSLASHED = "http://127.0.0.1:21999\\@127.0.0.1:21998/"


def test_a_backslash_cannot_carry_a_credential_to_another_port(client):
    job = client.post(
        "/jobs",
        json=EXAMPLE
        | {
            "target": "http://127.0.0.1:21998/hook",
            "headers": {"Authorization": "Bearer VICTIM"},
        },
    ).json()

    moved = client.patch(f"/jobs/{job['id']}", json={"target": BACKSLASHED})
    created = client.post("/jobs", json=EXAMPLE | {"target": BACKSLASHED})

    assert "backslash" in problems(moved)["target"]
    assert "backslash" in problems(created)["target"]
    stored = client.get(f"/jobs/{job['id']}").json()
    assert stored["target"] == "http://127.0.0.1:21998/hook"


def test_origins_are_compared_as_the_sender_reads_them():
    # Whatever passed validation before, the check itself sees port 21999.
    with pytest.raises(InvalidFields):
        refuse_moving_credentials(
            "http://127.0.0.1:21998/hook",
            {"Authorization": "Bearer VICTIM"},
            BACKSLASHED,
            None,
        )
