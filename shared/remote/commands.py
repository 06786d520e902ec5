"""``pingpay-scheduler jobs …`` and ``preview``: steer a running service.

``jobs`` talks to a service's REST API; ``preview`` needs no service. Tables
go to standard output, progress and errors to standard error, and ``--json``
prints the API's own answer instead of a table. The exit code says what
happened (``EXIT_CODES``), the same for every command.
"""

import json
import time
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

import click
from rich.console import Console

from shared.definitions import preview_fire_times
from shared.describe import describe_cron
from shared.errors import InvalidFields
from shared.remote import render
from shared.remote.client import (
    Ambiguous,
    ApiClient,
    ApiError,
    Denied,
    Json,
    Missing,
    Refused,
    Unreachable,
)
from shared.schedules import ScheduleError
from shared.store.runs import FINAL
from shared.times import utcnow

#: What each exit code means; the README lists the same.
EXIT_CODES = {
    Refused: 1,
    Ambiguous: 2,
    Missing: 3,
    Denied: 4,
    Unreachable: 5,
}
RUN_NOT_SUCCEEDED = 6
STILL_RUNNING = 7
NOT_CONFIRMED = 8
INTERVALS = ("minute", "hour", "day", "week", "month", "year")

#: Messages are not wrapped (a script may read them); tables fit the width.
out = Console(soft_wrap=True)
err = Console(stderr=True)


class CommandFailed(click.ClickException):
    """An API error as a message on standard error and an exit code."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(str(error))
        self.exit_code = EXIT_CODES[type(error)]
        self.status = error.status


class _Jobs(click.Group):
    """Turns every API error of every subcommand into its exit code.

    With ``--json``, a failure (a usage error too) is also a JSON object on
    standard output, so a script that parses the output always gets JSON.
    """

    def invoke(self, ctx: click.Context) -> Any:
        # The subcommand's arguments, read before the group hands them on.
        as_json = "--json" in ctx.args
        try:
            return super().invoke(ctx)
        except ApiError as error:
            failure: click.ClickException = CommandFailed(error)
        except click.ClickException as error:
            failure = error
        if as_json:
            _print_error(failure)
        raise failure from None


def _remote(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add --url, --key and --json, and hand the command a client."""

    @click.option("--url", help="The service's address [env PINGPAY_URL].")
    @click.option("--key", help="API key to send [env PINGPAY_API_KEY].")
    @click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
    @wraps(command)
    def with_client(url: str | None, key: str | None, **options: Any) -> Any:
        api = ApiClient.from_settings(url, key, busy=err.status)
        return command(api, **options)

    return with_client


@click.group(cls=_Jobs)
def jobs() -> None:
    """Manage the jobs of a running service (ids may be shortened)."""


#: The tables say ``paused`` where the API says ``inactive``; the filter
#: takes either.
API_STATUS = {"paused": "inactive"}


@jobs.command(name="list")
@click.option(
    "--status",
    type=click.Choice(["active", "paused", "failed", "completed", "inactive"]),
    help="Only jobs in this status (inactive is the API's word for paused).",
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--cursor", help="Start after this position (printed when more follow).")
@_remote
def list_jobs(
    api: ApiClient, status: str | None, limit: int, cursor: str | None, as_json: bool
) -> None:
    """Jobs, oldest first, with their schedule, next fire time and last run."""
    page, next_cursor = api.jobs(API_STATUS.get(status, status), limit, cursor)
    if as_json:
        _print_json(page)
    elif page:
        out.print(render.jobs_table(page, utcnow()))
    else:
        err.print("No jobs.")
    if next_cursor:
        err.print(f"More jobs follow: --cursor {next_cursor}")


@jobs.command()
@click.argument("job")
@_remote
def show(api: ApiClient, job: str, as_json: bool) -> None:
    """One job: its definition, next fire time and latest runs."""
    found = api.job(api.job_id(job))
    if as_json:
        _print_json(found)
        return
    runs = api.runs(found["id"], limit=5)
    out.print(render.job_details(found, runs, utcnow()))


@jobs.command()
@click.argument("name")
@click.argument("target")
@click.option("--cron", help='A cron expression: "*/5 * * * *".')
@click.option("--every", help='An interval: "5 minutes", "hour", "2 weeks".')
@click.option("--at", "at", help="One time, ISO 8601: 2026-03-08T09:00:00.")
@click.option("--tz", help="IANA time zone the schedule is read in [UTC].")
@click.option("--method", help="HTTP method [POST].")
@click.option("--payload", help="JSON body sent with each attempt.")
@click.option("--header", "headers", multiple=True, help='"Name: value", repeatable.')
@click.option("--timeout", type=float, help="Seconds one attempt may take [30].")
@click.option("--max-attempts", type=int, help="Attempts in all, retries included [3].")
@click.option("--description")
@click.option(
    "--from-file",
    type=click.File(),
    help="A job body as JSON ('-' for standard input); options given win over it.",
)
@_remote
def create(api: ApiClient, as_json: bool, **options: Any) -> None:
    """Create a job that fires at TARGET on a schedule (--cron, --every or --at)."""
    job = api.create(job_body(**options))
    if as_json:
        _print_json(job)
        return
    out.print(f"Created job {job['id']}")
    out.print(render.job_details(job, [], utcnow()))


@jobs.command()
@click.argument("job")
@_remote
def pause(api: ApiClient, job: str, as_json: bool) -> None:
    """Stop a job firing; its runs waiting for their time are cancelled."""
    _print_job(api.pause(api.job_id(job)), as_json, "Paused")


@jobs.command()
@click.argument("job")
@_remote
def resume(api: ApiClient, job: str, as_json: bool) -> None:
    """Fire a paused job again, from its next fire time after now."""
    _print_job(api.resume(api.job_id(job)), as_json, "Resumed")


@jobs.command()
@click.argument("job")
@click.option("--wait", is_flag=True, help="Wait for the run to finish.")
@click.option(
    "--timeout", default=300.0, show_default=True, help="Longest wait, in seconds."
)
@_remote
def trigger(
    api: ApiClient, job: str, wait: bool, timeout: float, as_json: bool
) -> None:
    """Run a job now, outside its schedule (the schedule stays as it is).

    With --wait, exits 0 once the run succeeded, 6 when it finished otherwise,
    7 when it is still going after --timeout seconds.
    """
    run = api.trigger(api.job_id(job))
    if wait:
        run = _wait_for(api, run, timeout)
    if as_json:
        _print_json(run)
    else:
        out.print(f"Run {run['id']} of job {run['job_id']}: {run['status']}")
    if wait and run["status"] not in FINAL:
        raise SystemExit(STILL_RUNNING)
    if wait and run["status"] != "succeeded":
        raise SystemExit(RUN_NOT_SUCCEEDED)


@jobs.command()
@click.argument("job")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_remote
def delete(api: ApiClient, job: str, yes: bool, as_json: bool) -> None:
    """Delete a job and its history (asks first, unless --yes).

    Exits 8, deleting nothing, when the answer is no.
    """
    job_id = api.job_id(job)
    if not yes and not _confirmed(f"Delete job {job_id} and all its runs?"):
        err.print("Not deleted.")
        raise SystemExit(NOT_CONFIRMED)
    api.delete(job_id)
    if as_json:
        _print_json({"deleted": job_id})
    else:
        out.print(f"Deleted job {job_id}")


@jobs.command()
@click.argument("job")
@click.argument("run", required=False)
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000))
@click.option("--status", help="Only runs in this status (failed, succeeded, …).")
@_remote
def runs(
    api: ApiClient,
    job: str,
    run: str | None,
    limit: int,
    status: str | None,
    as_json: bool,
) -> None:
    """A job's runs, newest first; with RUN, that run and each of its attempts."""
    found = api.job(api.job_id(job))
    if run:
        detail = api.run(api.run_id(found["id"], run))
        if as_json:
            _print_json(detail)
        else:
            out.print(render.run_details(detail, found))
        return
    page = api.runs(found["id"], limit, status)
    if as_json:
        _print_json(page)
    elif page:
        out.print(render.runs_table(page, found))
    else:
        err.print("No runs.")


@click.command()
@click.argument("expression")
@click.option("--tz", default="UTC", show_default=True, help="IANA time zone.")
@click.option("--count", default=5, show_default=True, type=click.IntRange(1, 100))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def preview(expression: str, tz: str, count: int, as_json: bool) -> None:
    """The next fire times of a cron EXPRESSION, and what it means in words."""
    fields = {"schedule_type": "cron", "cron_expression": expression, "timezone": tz}
    try:
        fire_times = preview_fire_times(fields, None, count, utcnow())
    except (InvalidFields, ScheduleError) as error:
        failure = click.ClickException(str(error))
        if as_json:
            _print_error(failure)
        raise failure from None
    description = describe_cron(expression)
    if as_json:
        times = [when.isoformat().replace("+00:00", "Z") for when in fire_times]
        _print_json({"description": description, "fire_times": times})
        return
    out.print(f"{description} ({tz})")
    out.print(render.fire_times_table(fire_times, tz))


def job_body(
    name: str,
    target: str,
    cron: str | None,
    every: str | None,
    at: str | None,
    from_file: Any,
    **fields: Any,
) -> Json:
    """The JSON body of a new job from ``jobs create``'s arguments and options."""
    body: Json = json.load(from_file) if from_file else {}
    body |= {"name": name, "target": target}
    body |= _schedule(cron, every, at, must=not from_file)
    body |= {
        name: value for name, value in _optional_fields(fields) if value is not None
    }
    return body


def _schedule(cron: str | None, every: str | None, at: str | None, must: bool) -> Json:
    if sum(option is not None for option in (cron, every, at)) > 1:
        raise click.UsageError("give one of --cron, --every and --at")
    if cron:
        return {"schedule_type": "cron", "cron_expression": cron}
    if every:
        interval, value = _interval(every)
        return {
            "schedule_type": "recurring",
            "interval": interval,
            "interval_value": value,
        }
    if at:
        return {"schedule_type": "specific_time", "specific_time": at}
    if must:
        raise click.UsageError("say when it fires: --cron, --every or --at")
    return {}


def _interval(text: str) -> tuple[str, int]:
    """``"5 minutes"`` as ``("minute", 5)``; ``"hour"`` as ``("hour", 1)``."""
    words = text.split()
    count = words[0] if len(words) == 2 else "1"
    unit = words[-1].lower().removesuffix("s") if words else ""
    if len(words) not in (1, 2) or not count.isdigit() or unit not in INTERVALS:
        raise click.BadParameter(
            f'{text!r} is not "N unit" with a unit among {", ".join(INTERVALS)}',
            param_hint="--every",
        )
    return unit, int(count)


def _optional_fields(options: Json) -> list[tuple[str, Any]]:
    """The API's field for each option given (an option not given is None)."""
    attempts = options["max_attempts"]
    return [
        ("timezone", options["tz"]),
        ("method", options["method"]),
        ("payload", _json_option(options["payload"], "--payload")),
        ("headers", _headers(options["headers"])),
        ("timeout_seconds", options["timeout"]),
        ("retry", {"max_attempts": attempts} if attempts is not None else None),
        ("description", options["description"]),
    ]


def _json_option(text: str | None, hint: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as error:
        raise click.BadParameter(f"is not JSON: {error}", param_hint=hint) from None


def _headers(pairs: tuple[str, ...]) -> dict[str, str] | None:
    if not pairs:
        return None
    headers = {}
    for pair in pairs:
        name, colon, value = pair.partition(":")
        if not colon or not name.strip():
            raise click.BadParameter(
                f'{pair!r} is not "Name: value"', param_hint="--header"
            )
        headers[name.strip()] = value.strip()
    return headers


def _wait_for(api: ApiClient, run: Json, timeout: float) -> Json:
    """Poll the run until it is final or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    progress = err.status(f"run {render.short(run['id'])}: {run['status']}")
    # One progress line for the whole wait, not one per request.
    with progress, api.quiet():
        while run["status"] not in FINAL and time.monotonic() < deadline:
            time.sleep(0.5)
            run = api.run(run["id"])
            progress.update(
                f"run {render.short(run['id'])}: {run['status']}, "
                f"attempt {run['attempt_count']}"
            )
    return run


def _confirmed(question: str) -> bool:
    """The answer to a yes/no question; a usage error when none can come.

    Without a terminal (a script, a pipe that ends) the prompt reads the end
    of its input: that is a missing --yes, not a refusal by the service.
    """
    try:
        return click.confirm(question, err=True)
    except click.Abort:
        raise click.UsageError(
            "no answer to the confirmation: pass --yes to delete without asking"
        ) from None


def _print_job(job: Json, as_json: bool, verb: str) -> None:
    if as_json:
        _print_json(job)
        return
    if job["status"] == "inactive":
        when = "no next fire time while paused"
    else:
        when = f"next fire time {render.next_fire_text(job, utcnow())}"
    out.print(f"{verb} job {job['id']} ({job['name']}): {when}")


def _print_error(failure: click.ClickException) -> None:
    """A failure as JSON: its message, the service's HTTP status (if it
    answered) and the exit code that follows."""
    status = getattr(failure, "status", None)
    error = {"error": failure.message, "status": status}
    _print_json(error | {"exit_code": failure.exit_code})


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=_jsonable))


def _jsonable(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
