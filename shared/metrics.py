"""Prometheus metrics: the work each process did, and the service's state.

Each process counts its own work in prometheus-client's default registry:
attempts and runs where a worker executes them, ticks wherever a tick runs,
dispatches wherever a dispatcher queues runs. Every process is scraped on
its own (the API at ``/metrics``, each worker on ``METRICS_PORT``) and
Prometheus adds them up, which stays right across machines and restarts.

What describes the whole service (queue depth, runs waiting or in flight,
jobs by status) is read from the queue and the database at scrape time by
:class:`ServiceCollector`, which only the API exposes, so no figure is
counted twice however many processes run.
"""

import logging
import weakref
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from shared.delivery import AttemptResult
    from shared.dispatcher import Dispatcher
    from shared.retry import Decision
    from shared.runtime import Runtime
    from shared.store.runs import Run
    from shared.tick import TickSummary

log = logging.getLogger("pingpay.metrics")

# A ``_created`` series beside every counter doubles the output for a figure
# Prometheus does not need.
disable_created_metrics()

#: Run statuses that are not final: waiting for the queue, a worker or a retry.
LIVE_STATUSES = ("pending", "queued", "running", "retrying")
JOB_STATUSES = ("active", "inactive", "failed", "completed")
#: The attempt outcomes each status class can lead to.
_ATTEMPT_SERIES = (
    ("succeeded", "2xx"),
    *(("retry", status_class) for status_class in ("4xx", "5xx", "none")),
    *(("failed", status_class) for status_class in ("3xx", "4xx", "5xx", "none")),
)

RUNS_FINISHED = Counter(
    "pingpay_runs_finished",
    "Runs a worker finished, by outcome: succeeded, failed, skipped "
    "(overlap policy) or cancelled (job stopped before the run started).",
    ["outcome"],
)
ATTEMPTS = Counter(
    "pingpay_attempts",
    "HTTP attempts by outcome (succeeded, retry, failed) and status class "
    "of the answer (none: no answer, a network error or a timeout).",
    ["outcome", "status_class"],
)
DELIVERY_SECONDS = Histogram(
    "pingpay_delivery_duration_seconds",
    "Duration of one attempt's HTTP exchange, until the answer was read.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
LATENESS_SECONDS = Histogram(
    "pingpay_run_lateness_seconds",
    "From a run's fire time to the start of its first attempt.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300),
)
TICK_SECONDS = Histogram(
    "pingpay_tick_duration_seconds",
    "Duration of a tick; scope 'all' is the regular tick, 'changed' plans "
    "a job the API just created or changed.",
    ["scope"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TICK_RUNS = Histogram(
    "pingpay_tick_runs_created",
    "Runs one tick created.",
    ["scope"],
    buckets=(0, 1, 5, 10, 50, 100, 500, 1000, 5000),
)
RECOVERED = Counter(
    "pingpay_runs_recovered",
    "Runs a dead worker or the queue lost, queued again by a tick's sweep.",
)
DISPATCHED = Counter(
    "pingpay_dispatched_runs",
    "Runs a dispatcher handed to the queue (queued), or could not because "
    "the queue refused them (refused: they stay pending for the sweep).",
    ["result"],
)

#: Dispatchers of this process, for the runs they hold; weak so that a
#: dispatcher dropped (in tests, many come and go) stops being counted.
_dispatchers: "weakref.WeakSet[Dispatcher]" = weakref.WeakSet()


def _create_series() -> None:
    """Every label combination at zero, so a rate works from the first scrape."""
    for outcome in ("succeeded", "failed", "skipped", "cancelled", "missed"):
        RUNS_FINISHED.labels(outcome)
    for outcome, status_class in _ATTEMPT_SERIES:
        ATTEMPTS.labels(outcome, status_class)
    for scope in ("all", "changed"):
        TICK_SECONDS.labels(scope)
        TICK_RUNS.labels(scope)
    for result in ("queued", "refused"):
        DISPATCHED.labels(result)


_create_series()


# What the execution, the tick and the dispatchers report.


def attempt_finished(
    run: "Run", started: datetime, result: "AttemptResult", decision: "Decision"
) -> None:
    """Count an attempt, its duration, its run's lateness and final outcome."""
    ATTEMPTS.labels(decision.outcome, status_class(result.status_code)).inc()
    DELIVERY_SECONDS.observe(result.duration)
    if run["attempts"] == 1:
        # Clocks of two machines may disagree by a little; never below zero.
        late = (started - run["scheduled_for"]).total_seconds()
        LATENESS_SECONDS.observe(max(0.0, late))
    if decision.outcome != "retry":
        RUNS_FINISHED.labels(decision.outcome).inc()


def run_finished(outcome: str) -> None:
    """Count a run a worker finished without an attempt (skipped, cancelled)."""
    RUNS_FINISHED.labels(outcome).inc()


def tick_finished(summary: "TickSummary", regular: bool) -> None:
    """Count a tick: its duration, the runs it created and those it recovered."""
    scope = "all" if regular else "changed"
    TICK_SECONDS.labels(scope).observe(summary.seconds)
    TICK_RUNS.labels(scope).observe(summary.runs_created)
    RECOVERED.inc(summary.runs_recovered)


def runs_dispatched(count: int, queued: bool = True) -> None:
    """Count runs handed to the queue, or refused by it."""
    DISPATCHED.labels("queued" if queued else "refused").inc(count)


def watch_dispatcher(dispatcher: "Dispatcher") -> None:
    """Report how many runs ``dispatcher`` holds until their fire time."""
    _dispatchers.add(dispatcher)


def status_class(status_code: int | None) -> str:
    """``2xx`` … ``5xx`` for an answer's status, ``none`` without an answer."""
    if status_code is None or not 200 <= status_code < 600:
        return "none"
    return f"{status_code // 100}xx"


class _HeldRuns:
    """Runs held in this process's dispatchers, counted at scrape time.

    A pause or a delete may happen in another process, so a held run is
    only found cancelled or gone when its fire time comes and the worker
    that takes it looks; until then it counts here.
    """

    def collect(self) -> Iterator[Metric]:
        held = sum(dispatcher.held() for dispatcher in list(_dispatchers))
        yield GaugeMetricFamily(
            "pingpay_dispatcher_held_runs",
            "Runs this process's dispatcher holds in memory until their fire "
            "time, including any cancelled or deleted since.",
            value=held,
        )


REGISTRY.register(_HeldRuns())


# The service's state, read at scrape time.


class ServiceCollector:
    """Queue depth, runs by live status and jobs by status, read when scraped.

    A dependency that does not answer leaves its figures out and sets
    ``pingpay_dependency_up`` to 0, so a scrape never fails because of it.
    """

    def __init__(self, runtime: "Runtime") -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "pingpay_dependency_up",
            "1 when the dependency answered this scrape, else 0.",
            labels=["dependency"],
        )
        for dependency, read in (("queue", self._queue), ("database", self._store)):
            try:
                families = list(read())
            except Exception as error:
                log.warning("metrics: %s unavailable: %s", dependency, error)
                up.add_metric([dependency], 0)
                continue
            up.add_metric([dependency], 1)
            yield from families
        yield up

    def _queue(self) -> Iterator[Metric]:
        queue = self.runtime.queue
        yield GaugeMetricFamily(
            "pingpay_queue_depth",
            "Runs in the queue waiting for a free worker.",
            value=queue.depth(),
        )
        yield GaugeMetricFamily(
            "pingpay_queue_scheduled",
            "Runs the queue holds for a later time (function platforms).",
            value=queue.scheduled(),
        )

    def _store(self) -> Iterator[Metric]:
        store = self.runtime.store
        yield _by_status(
            "pingpay_runs",
            "Runs not yet finished, by status.",
            store.runs.counts(LIVE_STATUSES),
            LIVE_STATUSES,
        )
        yield _by_status(
            "pingpay_jobs", "Jobs by status.", store.jobs.counts(), JOB_STATUSES
        )


def _by_status(
    name: str, documentation: str, counts: dict[str, int], statuses: tuple[str, ...]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=["status"])
    for status in statuses:
        family.add_metric([status], counts.get(status, 0))
    return family


# Exposition.


def exposition(runtime: "Runtime") -> bytes:
    """This process's figures and the service's state, in the text format."""
    service = CollectorRegistry(auto_describe=False)
    service.register(ServiceCollector(runtime))
    return generate_latest(REGISTRY) + generate_latest(service)


def serve(host: str, port: int) -> None:
    """Serve this process's figures on ``host:port`` from a background thread.

    A port already taken (a second worker on the same machine) leaves the
    worker running without an endpoint, saying so, rather than stopping it.
    """
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        log.warning(
            "metrics not served on %s:%d (%s): set METRICS_PORT to a free port",
            host,
            port,
            error.strerror or error,
        )
        return
    log.info("metrics of this worker on http://%s:%d/metrics", host, port)
