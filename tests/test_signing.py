"""Request signatures a target can verify, through a secret rotation."""

from fastapi.testclient import TestClient

from shared import signing
from shared.web.app import create_app
from tests.test_end_to_end import finished_run, one_time_job

NOW = 1_800_000_000


def test_a_signature_verifies_with_its_secret_only():
    header = signing.sign(["current"], NOW, b'{"a":1}')

    assert signing.verify(header, b'{"a":1}', "current", NOW + 10)
    assert not signing.verify(header, b'{"a":2}', "current", NOW)
    assert not signing.verify(header, b'{"a":1}', "other", NOW)


def test_an_old_signature_is_refused():
    header = signing.sign(["current"], NOW, b"")

    assert not signing.verify(header, b"", "current", NOW + 301)


def test_during_a_rotation_either_secret_verifies():
    header = signing.sign(["old", "new"], NOW, b"body")

    assert signing.verify(header, b"body", "old", NOW)
    assert signing.verify(header, b"body", "new", NOW)
    assert header.count("v1=") == 2


def test_a_malformed_header_is_refused():
    for header in ("", "v1=abc", "t=abc,v1=abc", "t=1,t=2,v1=abc"):
        assert not signing.verify(header, b"", "secret", NOW)


def test_each_attempt_arrives_signed(start_service, target_server):
    runtime = start_service(signing_secret="s3cret", signing_secret_next="n3xt")
    with TestClient(create_app(runtime)) as client:
        job = client.post(
            "/jobs", json=one_time_job(target_server.url("/signed"), 1)
        ).json()
        [request] = target_server.wait_for(1, "/signed")
        finished_run(client, job["id"])

    header = request.headers[signing.HEADER]
    stamp = int(header.split(",")[0].removeprefix("t="))
    assert signing.verify(header, request.body, "s3cret", stamp)
    assert signing.verify(header, request.body, "n3xt", stamp)
