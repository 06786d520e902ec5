"""Execute function: runs queued deliveries within the invocation's time."""

from dataclasses import asdict
from typing import Any

from shared.drain import drain
from shared.logs import configure_logging
from shared.runtime import build_runtime
from shared.settings import get_settings

settings = get_settings()
configure_logging(settings.log_level, settings.log_format)
runtime = build_runtime(settings, dispatch="eta")

#: Kept free at the end of an invocation: the longest attempt plus a margin.
RESERVE_SECONDS = 35.0
#: Used when the platform gives no remaining time (a local call).
DEFAULT_BUDGET_SECONDS = 60.0


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Execute due runs until the queue is empty or time runs low."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    budget = remaining_ms() / 1000 if remaining_ms else DEFAULT_BUDGET_SECONDS
    reserve = float(event.get("reserve_seconds", RESERVE_SECONDS))
    return asdict(drain(runtime, budget, reserve))
