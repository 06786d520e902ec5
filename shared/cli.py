"""The ``pingpay-scheduler`` command: run the service, a tick, or migrations."""

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import click
import sqlalchemy.exc
import uvicorn
from pydantic import ValidationError

from shared import metrics
from shared.logs import configure_logging
from shared.remote.commands import jobs, preview
from shared.runtime import build_runtime
from shared.settings import Settings, get_settings
from shared.store import migrate
from shared.targets import literal_address
from shared.tick import Ticker, tick
from shared.web.app import create_app
from shared.web.auth import (
    AuthNotConfigured,
    hashed_key,
    new_key,
    require_keys_or_opt_out,
)

log = logging.getLogger("pingpay.cli")


@click.group()
def main() -> None:
    """PingPay Scheduler: fires HTTP requests on time."""
    try:
        settings = get_settings()
    except ValidationError as error:
        raise click.ClickException(_settings_problems(error)) from None
    configure_logging(settings.log_level, settings.log_format)


@main.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
)
def dev(host: str) -> None:
    """Everything in one process: API, tick and deliveries (on PORT)."""
    settings = get_settings()
    local_only = _is_loopback(host)
    _require_auth(settings, local_only)
    if not settings.api_keys:
        log.warning(
            "no API_KEYS: the API takes requests without a key%s",
            ", so it listens on this machine only" if local_only else "",
        )
    _require_free_port(host, settings.port)
    runtime = build_runtime(settings)
    with _database_errors():
        migrate.upgrade(runtime.store.engine)
    consumer = runtime.queue.consumer(settings.worker_concurrency)
    ticker = Ticker(runtime)
    runtime.start()
    consumer.start()
    ticker.start()
    log.info("PingPay Scheduler on http://%s:%d (docs at /docs)", host, settings.port)
    try:
        _serve(create_app(runtime, local_only), host, settings)
    finally:
        ticker.stop()
        consumer.stop(graceful=True)
        runtime.close()


@main.command()
def api() -> None:
    """The REST API under uvicorn (HOST, PORT)."""
    settings = get_settings()
    _require_schema(settings)
    _require_auth(settings)
    _serve(create_app(), settings.host, settings)


@main.command(name="api-key")
def api_key() -> None:
    """Make a new API key, and the hashed form to put in API_KEYS."""
    key = new_key()
    click.echo(f"key (give it to the client): {key}")
    click.echo(f"API_KEYS entry (store this): {hashed_key(key)}")


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
    with _database_errors():
        revision = migrate.upgrade_database(get_settings().database_url)
    click.echo(f"database at revision {revision}")


main.add_command(jobs)
main.add_command(preview)


def _require_schema(settings) -> None:
    from shared.store.engine import create_store_engine

    engine = create_store_engine(settings.database_url)
    try:
        with _database_errors():
            schema = migrate.current(engine)
    finally:
        engine.dispose()
    if schema is None:
        raise click.ClickException(
            "the database has no schema yet: run `pingpay-scheduler db upgrade`"
        )


@contextmanager
def _database_errors() -> Iterator[None]:
    """Say in one line that the database cannot be reached, not in a trace."""
    try:
        yield
    except sqlalchemy.exc.DBAPIError as error:
        first_line = str(error.orig).strip().splitlines()[0]
        raise click.ClickException(f"cannot use the database: {first_line}") from None


def _require_free_port(host: str, port: int) -> None:
    """Refuse to start, before planning any run, when the port is taken."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {error.strerror}; set PORT"
        ) from None


def _settings_problems(error: ValidationError) -> str:
    problems = [
        f"{str(problem['loc'][0]).upper()}: {problem['msg']}"
        for problem in error.errors()
    ]
    return "invalid settings: " + "; ".join(problems)


def _require_auth(settings, local_only: bool = False) -> None:
    try:
        require_keys_or_opt_out(settings, local_only)
    except AuthNotConfigured as error:
        raise click.ClickException(str(error)) from None


def _is_loopback(host: str) -> bool:
    address = literal_address(host)
    return host == "localhost" or (address is not None and address.is_loopback)


def _serve(app, host: str, settings: Settings) -> None:
    uvicorn.Server(server_config(app, host, settings)).run()


def server_config(app, host: str, settings: Settings) -> uvicorn.Config:
    """uvicorn's settings for ``app``.

    Behind a proxy that ends TLS, the request's scheme is http unless the
    proxy's X-Forwarded-Proto is believed, and the dashboard's cookie would
    then never be marked Secure. uvicorn believes it from the addresses in
    FORWARDED_ALLOW_IPS only, so no client can claim https itself.
    """
    return uvicorn.Config(
        app,
        host=host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


if __name__ == "__main__":
    main()
