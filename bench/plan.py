"""Fire times of the workloads, computed the same way for both systems."""

from datetime import UTC, datetime

from bench.stats import Key

#: Every steady job fires once a minute.
PERIOD = 60.0


def spread_starts(count: int, first: float, spread: float = PERIOD) -> list[float]:
    """``count`` first fire times spread evenly over ``spread`` seconds.

    Whole milliseconds, so a fire time read back from a header matches the
    one computed here exactly.
    """
    return [round(first + index * spread / count, 3) for index in range(count)]


def window_keys(
    job_ids: list[str], starts: list[float], begin: float, end: float
) -> set[Key]:
    """The (job, fire time) pairs of every-minute jobs within [begin, end)."""
    keys = set()
    for job_id, start in zip(job_ids, starts, strict=True):
        fire = start
        while fire < end:
            if fire >= begin:
                keys.add((job_id, round(fire, 3)))
            fire = round(fire + PERIOD, 3)
    return keys


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def iso(epoch: float) -> str:
    return utc(epoch).isoformat().replace("+00:00", "Z")
