"""Schedules and times in plain words, for the dashboard and the command line.

Cron expressions are put into words by cron-descriptor, in 24-hour time
(no AM/PM to misread); intervals and one-time schedules by this module. The
job's zone is named whenever it is not UTC, since every time in a schedule
is read in it.
"""

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cron_descriptor import ExpressionDescriptor, FormatException, Options

from shared.schedules import CRON_MACROS, zone
from shared.times import as_utc

_OPTIONS = Options()
_OPTIONS.use_24hour_time_format = True


def describe_schedule(job: Mapping[str, Any]) -> str:
    """What a job's (or a request's) schedule fields say, in one sentence."""
    kind = job["schedule_type"]
    timezone = job.get("timezone") or "UTC"
    if kind == "cron":
        words = describe_cron(job["cron_expression"])
    elif kind == "recurring":
        words = _every(job["interval"], job["interval_value"])
    else:
        words = f"Once, at {local_time(job['specific_time'], timezone)}"
        return words
    return words if timezone == "UTC" else f"{words} ({timezone})"


def describe_cron(expression: str) -> str:
    """A cron expression in words; the expression itself if it cannot be read."""
    expanded = CRON_MACROS.get(expression.strip().lower(), expression)
    try:
        return ExpressionDescriptor(expanded, _OPTIONS).get_description()
    except FormatException:
        return expression


def local_time(instant: datetime, timezone: str) -> str:
    """``instant`` on the wall clock of ``timezone``, with the zone's abbreviation."""
    return as_utc(instant).astimezone(zone(timezone)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _every(interval: str, count: int) -> str:
    if count == 1:
        return f"Every {interval}"
    return f"Every {count} {interval}s"


def relative(when: datetime | None, now: datetime) -> str:
    """``in 42 s`` or ``3 min ago``: how far ``when`` is from ``now``."""
    if when is None:
        return ""
    seconds = (when - now).total_seconds()
    span = _span(abs(seconds))
    if span is None:
        return "just now"
    return f"in {span}" if seconds > 0 else f"{span} ago"


def _span(seconds: float) -> str | None:
    if seconds < 1:
        return None
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:.0f} s"


def duration(seconds: float) -> str:
    """``30 s``, ``5 min``, ``1 h``: a duration setting, in its largest unit."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size:.0f} {unit}"
    return f"{seconds:g} s"
