"""Logging set-up: readable lines in a terminal, JSON lines for collectors."""

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Send every logger's records to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Huey logs every task it receives and finishes; ours says more, once.
    logging.getLogger("huey").setLevel(max(root.level, logging.WARNING))
    # urllib3's debug lines quote each target's URL, whose path or query can
    # hold a credential (a webhook token); ours name the job instead.
    logging.getLogger("urllib3").setLevel(max(root.level, logging.WARNING))
