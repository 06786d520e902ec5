"""Our service as the README runs it in servers mode, plus the bench's sink.

``pingpay-scheduler api`` instances under uvicorn and ``pingpay-scheduler
worker`` processes, on a PostgreSQL database and a Redis queue name of the
bench run's own. Every process logs to a file under the run's folder.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import requests

from shared.settings import Settings
from shared.store.engine import create_store_engine
from shared.web.auth import hashed_key, new_key

COMMAND = str(Path(sys.executable).parent / "pingpay-scheduler")
REPOSITORY = Path(__file__).resolve().parent.parent

#: The API key the bench's clients send; the service holds only its hash.
API_KEY = new_key()
AUTHORIZATION = {"Authorization": f"Bearer {API_KEY}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.1)


@dataclass
class Database:
    """A PostgreSQL database made for one bench run, dropped at its end."""

    admin_url: str
    name: str = field(default_factory=lambda: f"pingpay_bench_{uuid.uuid4().hex[:8]}")

    @property
    def url(self) -> str:
        return self.admin_url.rsplit("/", 1)[0] + "/" + self.name

    @property
    def sqlalchemy_url(self) -> str:
        return Settings(_env_file=None, postgres_url=self.url).database_url

    def create(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        subprocess.run(
            [COMMAND, "db", "upgrade"],
            env=child_env(POSTGRES_URL=self.url),
            check=True,
            capture_output=True,
        )

    def empty(self) -> None:
        engine = create_store_engine(self.sqlalchemy_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("TRUNCATE attempts, runs, jobs")
        engine.dispose()

    def backend_pids(self) -> list[int]:
        """The server processes serving this database's connections now."""
        query = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            return [row[0] for row in conn.execute(query, (self.name,))]

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Processes:
    """Child processes started with their output in a log file each."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.children: list[tuple[str, subprocess.Popen, object]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]):
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - kept open
        process = subprocess.Popen(
            argv, env=env, cwd=REPOSITORY, stdout=log, stderr=subprocess.STDOUT
        )
        self.children.append((name, process, log))
        return process

    def pids(self, prefix: str = "") -> list[int]:
        """The running children whose name starts with ``prefix``."""
        return [
            process.pid
            for name, process, _ in self.children
            if name.startswith(prefix) and process.poll() is None
        ]

    def stop(self) -> None:
        """SIGINT (a clean stop), then SIGKILL for whatever is still up."""
        for _, process, _ in self.children:
            if process.poll() is None:
                process.send_signal(2)
        for _, process, log in self.children:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
        self.children.clear()


@dataclass
class Layout:
    """How many processes of each kind, and delivery threads per worker."""

    api_instances: int
    workers: int
    concurrency: int

    @property
    def threads(self) -> int:
        return self.workers * self.concurrency


class Service:
    """API instances and workers of one workload, on a queue name of its own."""

    def __init__(
        self, database: Database, redis_url: str, folder: Path, layout: Layout
    ) -> None:
        self.layout = layout
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.processes = Processes(folder)
        self.queue_name = f"bench-{uuid.uuid4().hex[:8]}"
        self.redis_url = redis_url
        self.ports = [free_port() for _ in range(layout.api_instances)]
        self.env = child_env(
            POSTGRES_URL=database.url,
            REDIS_URL=redis_url,
            QUEUE_NAME=self.queue_name,
            WORKER_CONCURRENCY=str(layout.concurrency),
            HOST="127.0.0.1",
            API_KEYS=hashed_key(API_KEY),
            # The sink listens on this machine's loopback address.
            ALLOW_PRIVATE_TARGETS="true",
        )

    @property
    def api_urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def groups(self) -> dict:
        """Our processes by kind, for the sampler."""
        return {
            "api": lambda: self.processes.pids("api"),
            "workers": lambda: self.processes.pids("worker"),
        }

    def start(self, workers: bool = True) -> None:
        for index, port in enumerate(self.ports):
            env = self.env | {"PORT": str(port)}
            self.processes.start(f"api-{index}", [COMMAND, "api"], env)
        for url in self.api_urls:
            wait_until(lambda url=url: _healthy(url), 60, f"the API at {url}")
        if workers:
            self.start_workers()

    def start_workers(self) -> None:
        for index in range(self.layout.workers):
            self.processes.start(f"worker-{index}", [COMMAND, "worker"], self.env)
        wait_until(self._workers_started, 60, "the workers")

    def stop(self) -> None:
        self.processes.stop()
        _forget_queue(self.redis_url, self.queue_name)

    def _workers_started(self) -> bool:
        logs = self.folder.glob("worker-*.log")
        started = sum("dispatch" in log.read_text(errors="replace") for log in logs)
        return started >= self.layout.workers


class Sink:
    """The sink process (``bench.sink``) and a client for its records."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.processes = Processes(folder)
        self.processes.start(
            "sink", [sys.executable, "-m", "bench.sink", str(self.port)], child_env()
        )
        wait_until(self._answers, 30, "the sink")

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.control}/{path}"

    def reset(self) -> None:
        requests.post(self.control + "/_reset", timeout=10).raise_for_status()

    def count(self) -> dict[str, int]:
        return requests.get(self.control + "/_count", timeout=30).json()

    def arrivals(self) -> list[list]:
        return requests.get(self.control + "/_arrivals", timeout=120).json()

    def pids(self) -> list[int]:
        return self.processes.pids()

    def stop(self) -> None:
        self.processes.stop()

    def _answers(self) -> bool:
        try:
            return requests.get(self.control + "/_count", timeout=1).ok
        except requests.RequestException:
            return False


def redis_server_pids() -> list[int]:
    """The Redis server's processes (shared with everyone on the machine)."""
    import psutil

    return [
        process.pid
        for process in psutil.process_iter(["name"])
        if process.info["name"] == "redis-server"
    ]


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=1).ok
    except requests.RequestException:
        return False


def _forget_queue(redis_url: str, queue_name: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"*{queue_name}*"))
    if keys:
        client.delete(*keys)
    client.close()


#: Settings of the developer's shell that must not reach the bench's processes.
_SETTINGS = (
    "POSTGRES_URL",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "PORT",
    "HOST",
    "DATA_DIR",
    "QUEUE_NAME",
    "WORKER_CONCURRENCY",
)


def child_env(**settings: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _SETTINGS}
    env["PYTHONPATH"] = str(REPOSITORY)
    return env | settings


def cleanup_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
