"""Tick function: invoked every minute by the platform's scheduler."""

from dataclasses import asdict
from typing import Any

from shared.logs import configure_logging
from shared.runtime import build_runtime
from shared.settings import get_settings
from shared.tick import tick

settings = get_settings()
configure_logging(settings.log_level, settings.log_format)
# Built once per container and reused by every invocation. Runs go to the
# queue with their fire time as ETA, for the execute function to take.
runtime = build_runtime(settings, dispatch="eta")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """One tick; answers the runs it created, queued and recovered."""
    return asdict(tick(runtime))
