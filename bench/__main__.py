"""``python -m bench``: run the workloads for both systems; print and save.

``bench/run`` is the one command: it makes ``bench/.venv`` and calls this.
"""

import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from bench import burst, report, steady, stored
from bench.context import Bench
from bench.machine import load_average
from bench.service import Database, Layout, Sink

RESULTS = Path(__file__).resolve().parent / "results"
WORKLOADS = ("burst", "steady", "scale", "tick", "api")

#: Sizes of the full run and of ``--quick``, which checks the harness end to end.
SIZES = {
    "full": {
        "burst": [1000, 10000],
        "steady": [1000, 10000],
        "scale": 50000,
        "window": 180.0,
        "stored": (100_000, 10_000),
        "api_seconds": 15.0,
    },
    "quick": {
        "burst": [100, 1000],
        "steady": [100, 1000],
        "scale": 2000,
        "window": 60.0,
        "stored": (10_000, 1_000),
        "api_seconds": 5.0,
    },
}


@click.group(invoke_without_command=True)
@click.option("--quick", is_flag=True, help="Small sizes, to check the harness.")
@click.option(
    "--only",
    default=",".join(WORKLOADS),
    show_default=True,
    help="Comma-separated workloads to run.",
)
@click.option("--api-instances", default=1, show_default=True)
@click.option("--workers", default=2, show_default=True)
@click.option("--concurrency", default=10, show_default=True, help="Per worker.")
@click.option("--scale-workers", default=3, show_default=True)
@click.option("--clients", default=50, show_default=True, help="Creating clients.")
@click.option(
    "--postgres",
    envvar="PINGPAY_BENCH_POSTGRES_URL",
    default="postgresql://postgres@127.0.0.1:5432/postgres",
    show_default=True,
    help="An administrative database URL; the bench makes its own database.",
)
@click.option(
    "--redis",
    envvar="PINGPAY_BENCH_REDIS_URL",
    default="redis://127.0.0.1:6379/0",
    show_default=True,
)
@click.pass_context
def main(context: click.Context, **options: Any) -> None:
    """Run every workload for PingPay Scheduler and APScheduler 3."""
    if context.invoked_subcommand is None:
        run(**options)


@main.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, path_type=Path))
def summary(files: tuple[Path, ...]) -> None:
    """The median of each figure over several runs' result files."""
    click.echo(report.table(report.summarise(list(files))))


def run(
    quick: bool,
    only: str,
    api_instances: int,
    workers: int,
    concurrency: int,
    scale_workers: int,
    clients: int,
    postgres: str,
    redis: str,
) -> None:
    sizes = SIZES["quick" if quick else "full"]
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = RESULTS / stamp
    folder.mkdir(parents=True, exist_ok=True)
    layout = Layout(api_instances, workers, concurrency)
    results: dict[str, Any] = {
        "started": stamp,
        "sizes": "quick" if quick else "full",
        "layout": vars(layout),
        "scale_layout": vars(Layout(api_instances, scale_workers, concurrency)),
        "clients": clients,
        "machine": _machine(),
        "workloads": {},
    }
    path = RESULTS / f"{stamp}.json"
    database = Database(postgres)
    database.create()
    sink = Sink(folder)
    bench = Bench(
        database,
        redis,
        sink,
        folder,
        layout,
        Layout(api_instances, scale_workers, concurrency),
        clients,
    )
    try:
        for name, measure in _plan(bench, sizes, chosen):
            click.echo(f"{_now()} {name} (load {load_average()})", err=True)
            results["workloads"] |= measure()
            path.write_text(json.dumps(results, indent=1))
    finally:
        sink.stop()
        database.drop()
    results["finished"] = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path.write_text(json.dumps(results, indent=1))
    click.echo(report.table(report.rows(results)))
    click.echo(f"\nresults in {path}, logs in {folder}", err=True)


def _plan(
    bench: Bench, sizes: dict, chosen: list[str]
) -> list[tuple[str, Callable[[], dict]]]:
    """The measurements to make, in order, each giving workload results."""
    plan: list[tuple[str, Callable[[], dict]]] = []
    window = sizes["window"]
    if "burst" in chosen:
        for count in sizes["burst"]:
            plan.append(
                (f"burst {count}", lambda c=count: {f"burst_{c}": burst.run(bench, c)})
            )
    if "steady" in chosen:
        for count in sizes["steady"]:
            plan.append(
                (
                    f"steady {count}",
                    lambda c=count: {
                        f"steady_{c}": steady.run(bench, c, window, bench.layout)
                    },
                )
            )
    if "scale" in chosen:
        count = sizes["scale"]
        plan.append(
            (
                f"steady at scale {count}",
                lambda: {
                    f"scale_{count}": steady.run(
                        bench, count, window, bench.scale_layout
                    )
                },
            )
        )
    parts = {"tick", "api"} & set(chosen)
    if parts:
        total, due = sizes["stored"]
        seconds = sizes["api_seconds"]
        plan.append(
            (
                f"{' and '.join(sorted(parts))} with {total} stored jobs",
                lambda: stored.run(bench, total, due, seconds, parts),
            )
        )
    return plan


def _machine() -> dict[str, Any]:
    import psutil

    return {
        "cores": psutil.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def _now() -> str:
    return time.strftime("%H:%M:%S")


if __name__ == "__main__":
    main()
