"""What every workload shares: the servers, the sink, the layout, and timing."""

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.machine import PidSource, Sampler, load_average
from bench.service import (
    REPOSITORY,
    Database,
    Layout,
    Service,
    Sink,
    child_env,
    redis_server_pids,
)


@dataclass
class Bench:
    """One bench run: its database, Redis, sink, folder and sizes."""

    database: Database
    redis_url: str
    sink: Sink
    folder: Path
    layout: Layout
    scale_layout: Layout
    clients: int

    def service(
        self, name: str, layout: Layout | None = None, empty: bool = True
    ) -> Service:
        """Our service for one workload, by default on an emptied database."""
        if empty:
            self.database.empty()
        self.sink.reset()
        return Service(
            self.database, self.redis_url, self.folder / name, layout or self.layout
        )

    def sampler(self, groups: dict[str, PidSource]) -> Sampler:
        """A sampler of ``groups`` plus the database, Redis and the sink.

        Redis is the machine's, shared with anyone else using it.
        """
        return Sampler(
            groups
            | {
                "postgres": self.database.backend_pids,
                "redis": redis_server_pids,
                "sink": self.sink.pids,
            }
        )

    def aps(self, workload: str, name: str, args: dict[str, Any]) -> "ApsProcess":
        """Start the APScheduler side of a workload (``bench.aps_side``)."""
        self.sink.reset()
        argv = [sys.executable, "-m", "bench.aps_side", workload]
        argv += [
            "--database",
            self.database.sqlalchemy_url,
            "--table",
            f"aps_{name}",
            "--threads",
            str(args.pop("threads")),
            "--clients",
            str(self.clients),
            "--sink",
            self.sink.url(name),
        ]
        for option, value in args.items():
            argv += [f"--{option.replace('_', '-')}", str(value)]
        log = self.folder / f"apscheduler-{name}.log"
        return ApsProcess(argv, log)


class ApsProcess:
    """The APScheduler side of one workload, running."""

    def __init__(self, argv: list[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "ab")  # noqa: SIM115 - closed in result()
        self.process = subprocess.Popen(
            argv,
            env=child_env(),
            cwd=REPOSITORY,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )

    def pids(self) -> list[int]:
        return [self.process.pid] if self.process.poll() is None else []

    def result(self) -> dict[str, Any]:
        """Wait for the process; its JSON result."""
        out, _ = self.process.communicate()
        self._log.close()
        if self.process.returncode:
            raise RuntimeError(
                f"the APScheduler side failed ({self.process.returncode}); "
                f"see {self._log.name}"
            )
        return json.loads(out)


def sleep_until(epoch: float) -> None:
    time.sleep(max(0.0, epoch - time.time()))


def with_load(measure) -> dict[str, Any]:
    """``measure()``'s result with the load average before and after."""
    before = load_average()
    result = measure()
    return result | {"load_before": before, "load_after": load_average()}
