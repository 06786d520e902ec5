"""Turning arrivals and latencies into the figures the report shows."""

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime

#: (job id, fire time as the epoch seconds) identifies one expected delivery.
Key = tuple[str, float]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The value below which ``fraction`` of ``values`` fall (nearest rank)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(seconds: Sequence[float]) -> dict[str, float | int | None]:
    """Count, p50, p99 and max of durations in seconds."""
    return {
        "count": len(seconds),
        "p50": percentile(seconds, 0.50),
        "p99": percentile(seconds, 0.99),
        "max": max(seconds) if seconds else None,
    }


def fire_time(header: str) -> float:
    """The epoch seconds of an ``X-PingPay-Scheduled-For`` value."""
    return datetime.fromisoformat(header).timestamp()


def deliveries(
    arrivals: Iterable[list], expected: set[Key]
) -> dict[str, float | int | list[float] | None]:
    """How the expected deliveries arrived: lateness, losses and duplicates.

    Arrivals for keys outside ``expected`` (fire times before or after the
    measured window) are left out. A key that arrived twice counts as one
    delivery plus one duplicate; lateness is measured on its first arrival.
    """
    first: dict[Key, float] = {}
    seen: Counter[Key] = Counter()
    for arrived, job_id, scheduled, _run_id in arrivals:
        key = (job_id, round(fire_time(scheduled), 3))
        if key not in expected:
            continue
        seen[key] += 1
        first[key] = min(arrived, first.get(key, arrived))
    lateness = [arrived - key[1] for key, arrived in first.items()]
    return {
        "expected": len(expected),
        "delivered": len(first),
        "lost": len(expected) - len(first),
        "duplicates": sum(seen.values()) - len(seen),
        "lateness": latency_summary(lateness),
        "first_arrival": min(first.values(), default=None),
        "last_arrival": max(first.values(), default=None),
    }


def median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None
