"""Jobs, runs and fire times as tables that fit a terminal (rich).

Long columns (names, schedules, errors) wrap or shorten to the terminal's
width; ids are shown by their first eight characters, which the commands
accept in place of the whole id.
"""

import math
from datetime import datetime, timedelta
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from shared.describe import describe_schedule, duration, local_time, relative
from shared.planning import schedule_of
from shared.times import iso_z

Json = dict[str, Any]

STYLES = {
    "active": "green",
    "succeeded": "green",
    "inactive": "yellow",
    "failed": "red",
    "completed": "blue",
    "retrying": "cyan",
    "running": "cyan",
    "queued": "cyan",
    "pending": "cyan",
}


_ONE_LINE = {"ID", "RUN", "#", "STATUS", "TRIES", "CODE", "OUTCOME", "DURATION"}


def short(identifier: str) -> str:
    return identifier[:8]


def status(value: str | None) -> Text:
    """A job or run status in its colour; ``inactive`` reads as paused."""
    if value is None:
        return Text("-", style="dim")
    shown = "paused" if value == "inactive" else value
    return Text(shown, style=STYLES.get(value, ""))


def jobs_table(jobs: list[Json], now: datetime) -> Table:
    table = _table("ID", "NAME", "STATUS", "SCHEDULE", "NEXT FIRE", "LAST RUN")
    for job in jobs:
        table.add_row(
            short(job["id"]),
            job["name"],
            status(job["status"]),
            describe_schedule(_timed(job)),
            _next_fire(job, now),
            _last_run(job, now),
        )
    return table


def job_details(job: Json, runs: list[Json], now: datetime) -> RenderableType:
    """A job's definition, its next fire time, and its latest runs."""
    fields = Table.grid(padding=(0, 2))
    fields.add_column(style="bold")
    fields.add_column(overflow="fold")
    for name, value in _definition(job, now):
        fields.add_row(name, value)
    if not runs:
        return Group(fields, Text("\nNo runs yet.", style="dim"))
    return Group(fields, Text("\nLatest runs", style="bold"), runs_table(runs, job))


def runs_table(runs: list[Json], job: Json) -> Table:
    """Runs, newest first, with fire times on the job's wall clock."""
    table = _table("RUN", "FIRE TIME", "TRIGGER", "STATUS", "TRIES", "CODE", "ERROR")
    for run in runs:
        table.add_row(
            short(run["id"]),
            local_time(_time(run["scheduled_for"]), job["timezone"]),
            run["trigger"],
            status(run["status"]),
            str(run["attempt_count"]),
            str(run["last_status_code"] or ""),
            run["last_error"] or "",
        )
    return table


def run_details(run: Json, job: Json) -> RenderableType:
    """One run and each of its attempts."""
    head = Text.assemble(
        ("Run ", "bold"),
        run["id"],
        "  ",
        status(run["status"]),
        f"  fired for {local_time(_time(run['scheduled_for']), job['timezone'])}",
    )
    table = _table("#", "STARTED", "DURATION", "CODE", "OUTCOME", "ERROR")
    answers = []
    for attempt in run["attempts"]:
        table.add_row(
            str(attempt["number"]),
            local_time(_time(attempt["started_at"]), job["timezone"]),
            f"{attempt['duration_ms']:.0f} ms",
            str(attempt["status_code"] or ""),
            status(attempt["outcome"]),
            attempt["error"] or "",
        )
        if attempt["response_excerpt"]:
            answer = _excerpt(attempt["response_excerpt"])
            answers.append(Text(f"#{attempt['number']} answered: {answer}", "dim"))
    return Group(head, table, *answers)


def fire_times_table(fire_times: list[datetime], timezone: str) -> Table:
    table = _table("#", f"FIRE TIME ({timezone})", "UTC")
    for number, when in enumerate(fire_times, 1):
        table.add_row(str(number), local_time(when, timezone), iso_z(when))
    return table


def _table(*columns: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in columns:
        # Short codes keep to one line; text wraps, never thinner than a word.
        if column in _ONE_LINE:
            table.add_column(column, no_wrap=True)
        else:
            table.add_column(column, overflow="fold", min_width=8)
    return table


def _definition(job: Json, now: datetime) -> list[tuple[str, RenderableType]]:
    retry = job["retry"]
    rows: list[tuple[str, RenderableType]] = [
        ("Id", job["id"]),
        ("Name", job["name"]),
        ("Status", status(job["status"])),
        ("Target", f"{job['method']} {job['target']}"),
        ("Schedule", describe_schedule(_timed(job))),
        ("Next fire", _next_fire(job, now, exact=True)),
        ("Last run", _last_run(job, now)),
        (
            "Retries",
            f"{retry['max_attempts']} attempts in all, waiting "
            f"{duration(retry['backoff_seconds'])} doubling, "
            f"at most {duration(retry['max_backoff_seconds'])}",
        ),
        ("Timeout", duration(job["timeout_seconds"])),
    ]
    if job["cron_expression"]:
        rows.insert(5, ("Cron", job["cron_expression"]))
    if job["headers"]:
        # Header values may be credentials: name the headers only.
        rows.append(("Headers", ", ".join(job["headers"])))
    if job["description"]:
        rows.insert(2, ("Description", job["description"]))
    return rows


def next_fire(job: Json, now: datetime) -> datetime | None:
    """When an active job fires next.

    ``next_run_at`` is the first fire time not yet planned, later than a run
    the tick already planned within its look-ahead, so cron and one-time
    schedules are computed here. Interval schedules count from an anchor the
    API does not show: every fire time of a ``minute`` or ``hour`` interval
    lies a whole number of steps before ``next_run_at``; a calendar interval
    keeps ``next_run_at`` (its step is longer than any look-ahead).
    """
    if job["status"] != "active":
        return None
    if job["schedule_type"] != "recurring":
        return schedule_of(_timed(job)).next_after(now)
    if not job["next_run_at"]:
        return None
    unplanned = _time(job["next_run_at"])
    if job["interval"] not in ("minute", "hour") or job["start_at"]:
        return unplanned
    step = timedelta(**{f"{job['interval']}s": job["interval_value"]})
    return unplanned - max(0, math.ceil((unplanned - now) / step) - 1) * step


def next_fire_text(job: Json, now: datetime) -> str:
    """When the job fires next on its clock, and how soon: as ``show`` says it."""
    return _next_fire(job, now, exact=True)


def _next_fire(job: Json, now: datetime, exact: bool = False) -> str:
    """How soon the job fires next; with ``exact``, also when on its clock."""
    when = next_fire(job, now)
    if when is None:
        return "-"
    if not exact:
        return relative(when, now)
    return f"{local_time(when, job['timezone'])}, {relative(when, now)}"


def _last_run(job: Json, now: datetime) -> Text:
    if not job["last_run_at"]:
        return Text("never", style="dim")
    text = status(job["last_run_status"] or "in progress")
    text.append(f", {relative(_time(job['last_run_at']), now)}", style="dim")
    return text


def _excerpt(text: str | None, limit: int = 200) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _timed(job: Json) -> Json:
    """A job from the API with its schedule's times read back as datetimes."""
    times = ("specific_time", "start_at", "end_at")
    return job | {name: _time(job[name]) for name in times if job.get(name)}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)
