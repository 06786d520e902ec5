"""The ``pingpay-scheduler`` command: run the service, a tick, or migrations."""

import logging

import click
import uvicorn

from shared import metrics
from shared.logs import configure_logging
from shared.remote.commands import jobs, preview
from shared.runtime import build_runtime
from shared.settings import get_settings
from shared.store import migrate
from shared.tick import Ticker, tick
from shared.web.app import create_app

log = logging.getLogger("pingpay.cli")


@click.group()
def main() -> None:
    """PingPay Scheduler: fires HTTP requests on time."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)
def dev(host: str) -> None:
    """Everything in one process: API, tick and deliveries (on PORT)."""
    settings = get_settings()
    runtime = build_runtime(settings)
    migrate.upgrade(runtime.store.engine)
    consumer = runtime.queue.consumer(settings.worker_concurrency)
    ticker = Ticker(runtime)
    runtime.start()
    consumer.start()
    ticker.start()
    log.info("PingPay Scheduler on http://%s:%d (docs at /docs)", host, settings.port)
    try:
        _serve(create_app(runtime), host, settings.port)
    finally:
        ticker.stop()
        consumer.stop(graceful=True)
        runtime.close()


@main.command()
def api() -> None:
    """The REST API under uvicorn (HOST, PORT)."""
    settings = get_settings()
    _require_schema(settings)
    _serve(create_app(), settings.host, settings.port)


@main.command()
def worker() -> None:
    """A queue consumer that also ticks every minute."""
    settings = get_settings()
    _require_schema(settings)
    runtime = build_runtime(settings)
    consumer = runtime.queue.consumer(settings.worker_concurrency)
    ticker = Ticker(runtime)
    if settings.metrics_port:
        metrics.serve(settings.host, settings.metrics_port)
    runtime.start()
    ticker.start()
    try:
        consumer.run()
    finally:
        ticker.stop()
        runtime.close()


@main.command(name="tick")
def tick_once() -> None:
    """One tick, then exit: runs due soon go to the queue with their ETA."""
    settings = get_settings()
    runtime = build_runtime(settings, dispatch="eta")
    try:
        summary = tick(runtime)
    finally:
        runtime.close()
    click.echo(
        f"{summary.jobs} jobs due, {summary.runs_created} runs created, "
        f"{summary.runs_recovered} recovered in {summary.seconds:.3f} s"
    )


@main.group()
def db() -> None:
    """The job store's schema."""


@db.command()
def upgrade() -> None:
    """Create or migrate the schema to the latest revision (was db:init)."""
    revision = migrate.upgrade_database(get_settings().database_url)
    click.echo(f"database at revision {revision}")


main.add_command(jobs)
main.add_command(preview)


def _require_schema(settings) -> None:
    from shared.store.engine import create_store_engine

    engine = create_store_engine(settings.database_url)
    try:
        if migrate.current(engine) is None:
            raise click.ClickException(
                "the database has no schema yet: run `pingpay-scheduler db upgrade`"
            )
    finally:
        engine.dispose()


def _serve(app, host: str, port: int) -> None:
    uvicorn.Server(
        uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    ).run()


if __name__ == "__main__":
    main()
