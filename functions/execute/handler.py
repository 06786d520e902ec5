"""Execute function: runs queued deliveries within the invocation's time."""

from dataclasses import asdict
from typing import Any

from shared.drain import drain
from shared.logs import configure_logging
from shared.runtime import build_runtime
from shared.settings import get_settings

settings = get_settings()
configure_logging(settings.log_level, settings.log_format)
# Built once per container and reused by every invocation.
runtime = build_runtime(settings, dispatch="eta")

#: The budget of a call that brings no context with the time it has left.
DEFAULT_BUDGET_SECONDS = 60.0


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Execute due runs until the invocation's time is nearly spent."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    budget = remaining_ms() / 1000 if remaining_ms else DEFAULT_BUDGET_SECONDS
    return asdict(drain(runtime, budget))
