"""The table of figures, from one run's results or the median of several.

Each row is one figure for both systems where both have it, with the ratio
of ours to APScheduler's, the goal and whether it is met. ``summarise``
takes the median of each figure over several result files, and judges the
goals on those medians.
"""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.stats import median

Goal = tuple[str, float]


@dataclass
class Row:
    workload: str
    figure: str
    unit: str
    ours: float | None
    theirs: float | None = None
    goal: Goal | None = None

    @property
    def ratio(self) -> float | None:
        if self.ours is None or not self.theirs:
            return None
        return self.ours / self.theirs

    @property
    def met(self) -> bool | None:
        if self.goal is None or self.ours is None:
            return None
        kind, bound = self.goal
        checks: dict[str, Callable[[], bool | None]] = {
            "at_most": lambda: self.ours <= bound,
            "ratio_at_most": lambda: (
                None if self.ratio is None else self.ratio <= bound
            ),
            "ratio_at_least": lambda: (
                None if self.ratio is None else self.ratio >= bound
            ),
        }
        return checks[kind]()


GOAL_TEXT = {
    "at_most": "≤ {bound}",
    "ratio_at_most": "≤ {bound}× APScheduler",
    "ratio_at_least": "≥ {bound}× APScheduler",
}


def rows(results: dict[str, Any]) -> list[Row]:
    """Every row the results of one run give."""
    found: list[Row] = []
    for name, figures in results["workloads"].items():
        kind = name.split("_")[0]
        found += list(_ROWS[kind](name, figures))
    return found


def _burst(name: str, figures: dict) -> Iterator[Row]:
    ours, theirs = figures["pingpay"], figures["apscheduler"]
    yield Row(
        name,
        "creation rate",
        "jobs/s",
        ours["create_rate"],
        theirs["create_rate"],
        ("ratio_at_least", 2),
    )
    yield Row(
        name,
        "drain",
        "s",
        ours["drain_seconds"],
        theirs["drain_seconds"],
        ("ratio_at_most", 0.5),
    )
    for point in ("p50", "p99", "max"):
        yield Row(
            name,
            f"lateness {point}",
            "s",
            ours["lateness"][point],
            theirs["lateness"][point],
        )
    yield Row(name, "lost", "", ours["lost"], theirs["lost"], ("at_most", 0))
    yield Row(
        name, "duplicates", "", ours["duplicates"], theirs["duplicates"], ("at_most", 0)
    )
    lookup_goal = ("at_most", 0.1) if name == "burst_10000" else None
    yield Row(
        name,
        "get during drain p99",
        "s",
        ours["lookups"]["get"]["p99"],
        theirs["lookups"]["get"]["p99"],
        lookup_goal,
    )
    yield Row(
        name,
        "list during drain p99",
        "s",
        ours["lookups"]["list"]["p99"],
        None,
        lookup_goal,
    )
    yield from _burst_cpu(name, ours, theirs)


def _burst_cpu(name: str, ours: dict, theirs: dict) -> Iterator[Row]:
    """CPU while creating and while draining, where the results split them."""
    if "drain" not in ours["resources"]:
        return
    for phase, doing in (("create", "creating"), ("drain", "draining")):
        mine, aps = ours["resources"][phase], theirs["resources"][phase]
        yield Row(
            name,
            f"CPU while {doing}, service processes",
            "cores",
            mine["api"]["cpu_mean"] + mine["workers"]["cpu_mean"],
            aps["apscheduler"]["cpu_mean"],
        )
        yield Row(
            name,
            f"CPU while {doing}, PostgreSQL backends",
            "cores",
            mine["postgres"]["cpu_mean"],
            aps["postgres"]["cpu_mean"],
        )


def _steady(name: str, figures: dict) -> Iterator[Row]:
    ours, theirs = figures["pingpay"], figures["apscheduler"]
    scale = name.startswith("scale")
    yield Row(
        name, "lateness p50", "s", ours["lateness"]["p50"], theirs["lateness"]["p50"]
    )
    p99_goal = ("at_most", 1.0) if scale else ("ratio_at_most", 1.0)
    yield Row(
        name,
        "lateness p99",
        "s",
        ours["lateness"]["p99"],
        theirs["lateness"]["p99"],
        p99_goal,
    )
    yield Row(
        name,
        "not delivered by window end + 30 s",
        "",
        ours["lost"],
        theirs["lost"],
        ("at_most", 0),
    )
    yield Row(
        name,
        "recorded as missed",
        "",
        ours["missed_runs"],
        theirs["missed_events"],
        ("at_most", 0),
    )
    yield Row(
        name,
        "deliveries/s",
        "/s",
        ours["deliveries_per_second"],
        theirs["deliveries_per_second"],
    )
    ours_cpu = (
        ours["resources"]["api"]["cpu_mean"] + ours["resources"]["workers"]["cpu_mean"]
    )
    yield Row(
        name,
        "CPU, service processes",
        "cores",
        ours_cpu,
        theirs["resources"]["apscheduler"]["cpu_mean"],
    )
    ours_rss = (
        ours["resources"]["api"]["rss_peak_mib"]
        + ours["resources"]["workers"]["rss_peak_mib"]
    )
    yield Row(
        name,
        "memory, service processes",
        "MiB",
        ours_rss,
        theirs["resources"]["apscheduler"]["rss_peak_mib"],
    )
    yield Row(
        name,
        "CPU, PostgreSQL backends",
        "cores",
        ours["resources"]["postgres"]["cpu_mean"],
        theirs["resources"]["postgres"]["cpu_mean"],
    )
    if scale:
        yield from _limits(name, ours["resources"])


def _limits(name: str, resources: dict) -> Iterator[Row]:
    """Where our CPU went at scale: each group of processes, and the machine."""
    for group in ("workers", "api", "postgres", "redis", "sink", "machine"):
        mean = resources.get(group, {}).get("cpu_mean")
        yield Row(name, f"CPU {group} (mean)", "cores", mean)


def _tick(name: str, figures: dict) -> Iterator[Row]:
    full = figures["full"]
    yield Row(
        name,
        f"{figures['due']:,} due of {figures['total']:,}",
        "s",
        full["seconds_median"],
        goal=("at_most", 5),
    )
    yield Row(name, "statements", "", full["statements"])
    yield Row(name, "Python memory peak", "MiB", full["python_peak_mib"])
    tenth = figures["tenth_due"]
    yield Row(
        name,
        f"{tenth['due']:,} due of {figures['total']:,}",
        "s",
        tenth["seconds_median"],
    )
    only = figures["only_due"]
    yield Row(
        name, f"{only['due']:,} due of {only['due']:,}", "s", only["seconds_median"]
    )


def _api(name: str, figures: dict) -> Iterator[Row]:
    for endpoint in ("get", "list", "create"):
        measured = figures[endpoint]
        goal = ("at_most", 0.05) if endpoint != "create" else None
        yield Row(name, f"{endpoint} p99", "s", measured["p99"], goal=goal)
        yield Row(name, f"{endpoint} rate", "req/s", measured["rate"])


_ROWS = {
    "burst": _burst,
    "steady": _steady,
    "scale": _steady,
    "tick": _tick,
    "api": _api,
}


def summarise(paths: list[Path]) -> list[Row]:
    """The median of each figure over several runs' result files."""
    runs = [rows(json.loads(path.read_text())) for path in paths]
    merged: dict[tuple[str, str], list[Row]] = {}
    for run in runs:
        for row in run:
            merged.setdefault((row.workload, row.figure), []).append(row)
    return [
        Row(
            first.workload,
            first.figure,
            first.unit,
            median(row.ours for row in same),
            median(row.theirs for row in same),
            first.goal,
        )
        for (first, same) in ((group[0], group) for group in merged.values())
    ]


def table(found: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = [
        "| workload | figure | PingPay | APScheduler | ratio | goal | met |",
        "| --- | --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in found:
        goal = _goal(row)
        met = {True: "yes", False: "**no**", None: ""}[row.met]
        lines.append(
            f"| {row.workload} | {row.figure} | {_value(row.ours, row.unit)} | "
            f"{_value(row.theirs, row.unit)} | {_ratio(row.ratio)} | {goal} | {met} |"
        )
    return "\n".join(lines)


def _goal(row: Row) -> str:
    if row.goal is None:
        return ""
    kind, bound = row.goal
    shown = _value(bound, row.unit) if kind == "at_most" else f"{bound:g}"
    return GOAL_TEXT[kind].format(bound=shown)


def _value(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit in ("", "/s", "jobs/s", "req/s", "MiB"):
        text = f"{value:,.0f}"
        return f"{text} {unit}".strip() if unit not in ("", "/s") else text
    return f"{value:.2f} {unit}"


def _ratio(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}"
