"""API keys: 401 without one, 403 with a wrong one, every path but /health."""

import logging
import signal
import subprocess
import sys

import pytest
import requests
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.responses import PlainTextResponse

from shared.runtime import build_runtime
from shared.settings import Settings
from shared.web.app import create_app
from shared.web.auth import KeyRing, hashed_key
from tests.helpers import process_env, wait_for
from tests.test_api import EXAMPLE
from tests.test_cli import free_port, run_cli

KEY = "first-key-0123456789abcdef"
OTHER_KEY = "second-key-0123456789abcdef"
KEYS = f"{hashed_key(KEY)}, {OTHER_KEY}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keyed(make_client):
    """A client of an app with two keys, one of them given in hashed form."""
    return make_client(api_keys=KEYS)


def every_path(client) -> list[tuple[str, str]]:
    """(method, path) of every operation the app documents, and of its docs."""
    app = client.app
    calls = [("GET", path) for path in (app.openapi_url, app.docs_url, app.redoc_url)]
    for path, operations in app.openapi()["paths"].items():
        concrete = path.replace("{job_id}", "x").replace("{run_id}", "x")
        calls += [(method.upper(), concrete) for method in operations]
    return calls


def test_every_path_but_health_needs_a_key(keyed):
    calls = every_path(keyed) + [("GET", "/no/such/path"), ("DELETE", "/")]

    answers = {(m, p): keyed.request(m, p).status_code for m, p in calls}

    assert answers.pop(("GET", "/health")) == 200
    assert len(answers) > 15
    assert set(answers.values()) == {401}, answers


def test_routes_and_apps_added_later_need_a_key_too(keyed):
    later = APIRouter()
    later.add_api_route("/later", lambda: {"runs": 0})
    keyed.app.include_router(later)
    keyed.app.mount("/mounted", PlainTextResponse("mounted app"))

    assert keyed.get("/later").status_code == 401
    assert keyed.get("/mounted").status_code == 401
    assert keyed.get("/later", headers=bearer(KEY)).status_code == 200
    assert keyed.get("/mounted", headers=bearer(KEY)).text == "mounted app"


def test_the_dashboard_may_send_the_key_as_its_cookie_and_nothing_else(keyed):
    dashboard = APIRouter(prefix="/ui")
    dashboard.add_api_route("", lambda: {"page": "jobs"})
    dashboard.add_api_route("/login", lambda: {"page": "login"})
    keyed.app.include_router(dashboard)

    def get(path: str, key: str) -> int:
        keyed.cookies.set("pingpay_api_key", key)
        return keyed.get(path).status_code

    assert get("/ui", KEY) == 200
    assert get("/ui", "wrong-" + KEY) == 403
    assert get("/jobs", KEY) == 401
    keyed.cookies.clear()
    assert keyed.get("/ui").status_code == 401
    assert keyed.get("/ui/login").status_code == 200
    assert (
        keyed.get("/uix", headers={"Cookie": f"pingpay_api_key={KEY}"}).status_code
        == 401
    )


def test_either_key_works_plain_or_hashed(keyed):
    for key in (KEY, OTHER_KEY):
        response = keyed.post("/jobs", json=EXAMPLE, headers=bearer(key))
        assert response.status_code == 201, response.text

    assert keyed.get("/jobs", headers={"authorization": f"bearer {KEY}"}).json()


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Bearer ", f"Basic {KEY}", KEY, f"Token {KEY}"],
)
def test_no_usable_key_is_a_401(keyed, header):
    headers = {} if header is None else {"Authorization": header}

    response = keyed.get("/jobs", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"detail": "an API key is required"}
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "key",
    [
        KEY[:-1],
        KEY + "x",
        KEY.upper(),
        hashed_key(KEY),
        hashed_key(KEY).removeprefix("sha256:"),
        OTHER_KEY[:16],
        "x" * 10_000,
    ],
)
def test_a_wrong_key_is_a_403_that_says_nothing_more(keyed, key):
    response = keyed.get("/jobs", headers=bearer(key))

    assert response.status_code == 403
    assert response.json() == {"detail": "the API key is not valid"}


def test_refusals_are_logged_without_the_key(keyed, caplog):
    caplog.set_level(logging.DEBUG)
    near_miss = KEY[:-1] + "?"

    keyed.get("/jobs", headers=bearer(near_miss))
    keyed.get("/jobs")

    lines = [record.getMessage() for record in caplog.records]
    assert any("wrong API key" in line for line in lines)
    assert any("no API key" in line for line in lines)
    assert not [line for line in lines if near_miss in line or KEY in line]


def test_the_openapi_document_names_the_scheme_and_the_answers(keyed):
    doc = keyed.get("/openapi.json", headers=bearer(KEY)).json()

    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert "security" not in doc["paths"]["/health"]["get"]
    create = doc["paths"]["/jobs"]["post"]
    assert create["security"] == [{"apiKey": []}]
    assert {"401", "403", "413", "422", "503"} <= set(create["responses"])


def test_without_keys_the_api_is_open(client):
    assert client.get("/jobs").status_code == 200


def test_key_ring_matches_whole_keys_only():
    ring = KeyRing([hashed_key(KEY), OTHER_KEY])

    assert ring.accepts(KEY) and ring.accepts(OTHER_KEY)
    assert not ring.accepts(KEY[:-1])
    assert not ring.accepts("")
    assert not KeyRing([])


def test_api_keys_come_comma_separated_from_the_environment(monkeypatch):
    monkeypatch.setenv("API_KEYS", f" {KEY} ,,{hashed_key(OTHER_KEY)} ")

    settings = Settings(_env_file=None)

    assert [k.get_secret_value() for k in settings.api_keys] == [
        KEY,
        hashed_key(OTHER_KEY),
    ]
    assert KEY not in repr(settings)


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ("changeme", "at least 16 characters"),
        ("sha256:abc", "64 lowercase hex digits"),
        (hashed_key(KEY).upper().replace("SHA256", "sha256"), "64 lowercase hex"),
    ],
)
def test_weak_or_malformed_keys_are_refused_at_start(keys, words):
    with pytest.raises(ValidationError, match=words):
        Settings(_env_file=None, api_keys=keys)


# The commands, run as an operator runs them -----------------------------------


def test_api_refuses_to_start_without_keys_unless_told(tmp_path):
    assert run_cli("db", "upgrade", env={"DATA_DIR": str(tmp_path)}).returncode == 0

    refused = run_cli("api", env={"DATA_DIR": str(tmp_path)})

    assert refused.returncode != 0
    assert "no API_KEYS are set" in refused.stderr
    assert "ALLOW_NO_AUTH=true" in refused.stderr


def test_dev_refuses_to_listen_beyond_loopback_without_keys(tmp_path):
    result = run_cli("dev", "--host", "0.0.0.0", env={"DATA_DIR": str(tmp_path)})

    assert result.returncode != 0
    assert "no API_KEYS are set" in result.stderr
    assert not (tmp_path / "jobs.db").exists()


def test_api_with_keys_serves_only_key_holders(tmp_path):
    port = free_port()
    env = {"DATA_DIR": str(tmp_path), "PORT": str(port), "HOST": "127.0.0.1"}
    assert run_cli("db", "upgrade", env=env).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "api"],
        env=process_env(**env, API_KEYS=KEYS),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{base}/health"), 20)
        anonymous = requests.get(f"{base}/jobs", timeout=5)
        wrong = requests.get(f"{base}/jobs", headers=bearer("nope" * 5), timeout=5)
        right = requests.get(f"{base}/jobs", headers=bearer(KEY), timeout=5)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)

    assert (anonymous.status_code, wrong.status_code) == (401, 403)
    assert right.status_code == 200
    assert KEY not in stderr and OTHER_KEY not in stderr


def test_api_key_prints_a_key_and_its_hashed_form():
    result = run_cli("api-key", env={})

    key = result.stdout.split("key (give it to the client): ")[1].split()[0]
    assert f"API_KEYS entry (store this): {hashed_key(key)}" in result.stdout
    assert len(key) >= 40


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_a_bad_key_setting_is_named_without_its_value(tmp_path):
    result = run_cli("api", env={"DATA_DIR": str(tmp_path), "API_KEYS": "short-secret"})

    assert result.returncode != 0
    assert "invalid settings: API_KEYS" in result.stderr
    assert "at least 16 characters" in result.stderr
    assert "short-secret" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_hash_spelled_in_capitals_is_refused_not_taken_as_a_plain_key():
    entry = "SHA256:" + "ab" * 32
    with pytest.raises(ValidationError, match="sha256"):
        Settings(_env_file=None, api_keys=entry)


def test_without_keys_on_loopback_other_hosts_and_origins_are_refused(backend):
    runtime = build_runtime(backend.settings(allow_no_auth=False))
    with TestClient(
        create_app(runtime, local_only=True), base_url="http://127.0.0.1:3000"
    ) as local:
        ok = local.get("/jobs")
        rebound = local.get("/jobs", headers={"Host": "attacker.test:3000"})
        cross_site = preview_from(local, "http://evil.example")
        same_machine = preview_from(local, "http://localhost:3000")
    runtime.close()

    assert ok.status_code == 200
    assert rebound.status_code == 403
    assert cross_site.status_code == 403
    assert same_machine.status_code == 200


def preview_from(client: TestClient, origin: str):
    """A change posted as a page at ``origin`` would post it."""
    return client.post(
        "/schedules/preview",
        json={"schedule_type": "cron", "cron_expression": "* * * * *"},
        headers={"Origin": origin},
    )


@pytest.mark.parametrize(
    "address", ["127.0.0.2:3000", "127.8.9.10", "[::1]:3000", "LOCALHOST:3000"]
)
def test_without_keys_any_loopback_address_is_this_machine(backend, address):
    # `dev --host 127.0.0.2` listens there, and browsers send that as Host.
    runtime = build_runtime(backend.settings(allow_no_auth=False))
    with TestClient(
        create_app(runtime, local_only=True), base_url=f"http://{address}"
    ) as local:
        read = local.get("/jobs")
        same_machine = preview_from(local, f"http://{address}")
        cross_site = preview_from(local, "http://127.0.0.2.evil.example")
    runtime.close()

    assert read.status_code == 200
    assert same_machine.status_code == 200
    assert cross_site.status_code == 403


def test_a_browser_without_a_key_is_sent_to_the_dashboard_sign_in(keyed):
    page = keyed.get("/ui", headers={"Accept": "text/html"}, follow_redirects=False)
    api = keyed.get("/ui", follow_redirects=False)

    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login"
    assert api.status_code == 401
