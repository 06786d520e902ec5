"""The ``pingpay-scheduler`` command, run as a user runs it."""

import signal
import socket
import subprocess
import sys

import requests

from shared.store import migrate
from tests.helpers import process_env, wait_for


def run_cli(*args: str, env: dict[str, str], timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        env=process_env(**env),
        cwd=env.get("DATA_DIR"),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_db_upgrade_then_tick(backend):
    upgrade = run_cli("db", "upgrade", env=backend.env())
    tick = run_cli("tick", env=backend.env())

    assert upgrade.returncode == 0, upgrade.stderr
    assert f"revision {migrate.head()}" in upgrade.stdout
    assert tick.returncode == 0, tick.stderr
    assert "0 jobs due, 0 runs created" in tick.stdout


def test_api_refuses_a_database_without_schema(tmp_path):
    result = run_cli("api", env={"DATA_DIR": str(tmp_path)})

    assert result.returncode != 0
    assert "pingpay-scheduler db upgrade" in result.stderr


def test_dev_serves_the_api_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = process_env(DATA_DIR=str(tmp_path), PORT=str(port))
    process = subprocess.Popen(
        [sys.executable, "-m", "shared.cli", "dev"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        health = wait_for(lambda: _get(f"http://127.0.0.1:{port}/health"), 20)
        assert health.json()["mode"] == "embedded"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert (tmp_path / "jobs.db").exists()
    assert "no API_KEYS" in stderr
    assert "so it listens on this machine only" in stderr


def _get(url: str):
    try:
        return requests.get(url, timeout=1)
    except requests.ConnectionError:
        return None
