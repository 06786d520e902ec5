"""The dashboard's chart of the last day's runs: hourly bars, by outcome.

Pure arithmetic from counts to bar geometry, so that the template only draws
rectangles (an inline SVG, no script).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

#: How a run's status shows in the chart; the order stacks bars bottom up.
SERIES = ("succeeded", "failed", "in flight", "not sent")
_SERIES_OF = {
    "succeeded": "succeeded",
    "failed": "failed",
    "pending": "in flight",
    "queued": "in flight",
    "running": "in flight",
    "retrying": "in flight",
    "skipped": "not sent",
    "cancelled": "not sent",
    "missed": "not sent",
}

HOURS = 24
#: SVG units; the picture is stretched to the page's width, text stays HTML.
BAR_PITCH = 10
BAR_WIDTH = 7
HEIGHT = 100


@dataclass
class Segment:
    series: str
    count: int
    y: float
    height: float


@dataclass
class Bar:
    hour: datetime
    x: int
    total: int = 0
    segments: list[Segment] = field(default_factory=list)


@dataclass
class Chart:
    bars: list[Bar]
    totals: dict[str, int]
    peak: int
    width: int = HOURS * BAR_PITCH
    height: int = HEIGHT
    bar_width: int = BAR_WIDTH

    @property
    def empty(self) -> bool:
        return self.peak == 0


def day_start(now: datetime) -> datetime:
    """The first hour the chart shows: 23 hours before the current one."""
    return now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)


def day_chart(rows: list[tuple[datetime, str, int]], now: datetime) -> Chart:
    """Bars for the 24 hours up to ``now`` from ``(hour, status, count)`` rows."""
    first = day_start(now)
    hours = [first + timedelta(hours=i) for i in range(HOURS)]
    counts = {hour: dict.fromkeys(SERIES, 0) for hour in hours}
    for hour, status, count in rows:
        if hour in counts:
            counts[hour][_SERIES_OF.get(status, "not sent")] += count
    peak = max((sum(c.values()) for c in counts.values()), default=0)
    bars = [_bar(hour, i, counts[hour], peak) for i, hour in enumerate(hours)]
    totals = {name: sum(c[name] for c in counts.values()) for name in SERIES}
    return Chart(bars, totals, peak)


def _bar(hour: datetime, index: int, by_series: dict[str, int], peak: int) -> Bar:
    bar = Bar(hour, index * BAR_PITCH + (BAR_PITCH - BAR_WIDTH) // 2)
    top = float(HEIGHT)
    for name in SERIES:
        count = by_series[name]
        if not count:
            continue
        height = HEIGHT * count / peak
        top -= height
        bar.segments.append(Segment(name, count, round(top, 2), round(height, 2)))
        bar.total += count
    return bar
