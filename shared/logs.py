"""Logging set-up: readable lines in a terminal, JSON lines for collectors.

A line about a run says everything in its text, and also carries the run's
job id, run id, attempt, fire time and outcome (and, for an attempt, its
duration and status code) as fields of their own (:func:`run_fields`), which
the JSON format writes as keys a log collector can filter on. No line
carries a request header's value or a payload.
"""

import logging
import sys
import threading
import time
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from shared.times import iso_z

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

#: Record attributes JSON lines leave out. Uvicorn adds ``color_message``,
#: its message again with terminal colour codes, which a collector only
#: shows as escape sequences.
LEFT_OUT = [*RESERVED_ATTRS, "color_message"]


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send every logger's records to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    handler.addFilter(QueueErrorsOncePerMinute())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Huey logs every task it receives and finishes; ours says more, once.
    logging.getLogger("huey").setLevel(max(root.level, logging.WARNING))
    # urllib3's debug lines quote each target's URL, whose path or query can
    # hold a credential (a webhook token); ours name the job instead.
    logging.getLogger("urllib3").setLevel(max(root.level, logging.WARNING))


class QueueErrorsOncePerMinute(logging.Filter):
    """Let through one of each repeated queue error per minute.

    While Redis is down, every delivery thread fails to read the queue and
    Huey logs that with a traceback, several times a second per thread; an
    operator needs the first line of it and a reminder each minute.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("huey") or record.levelno < logging.ERROR:
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -self.interval) < self.interval:
                return False
            self._last[key] = now
        return True


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of ``fmt``: ``text`` or ``json``."""
    if fmt == "json":
        return JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"levelname": "level", "name": "logger"},
            reserved_attrs=LEFT_OUT,
        )
    return logging.Formatter(TEXT_FORMAT)


def run_fields(run: dict[str, Any], outcome: str, **more: Any) -> dict[str, Any]:
    """The fields of a line about ``run``, to pass as a log call's ``extra``."""
    return {
        "job_id": run["job_id"],
        "run_id": run["id"],
        "attempt": run["attempts"],
        "fire_time": iso_z(run["scheduled_for"]),
        "outcome": outcome,
        **more,
    }
