"""Executing a run: one HTTP attempt per call, its outcome recorded.

A Huey task calls :func:`execute_run` with a run id. The run is claimed under
a lease (so a run queued twice is attempted once), the request goes out with
headers that let the target drop duplicates, the attempt is stored, and the
run either finishes or waits for its next attempt, which the dispatcher
queues at its time.
"""

import json
import logging
import random
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared import metrics, signing
from shared.delivery import AttemptResult, OutgoingRequest
from shared.logs import run_fields
from shared.retry import Decision, RetryPolicy, decide
from shared.store import claims
from shared.store.jobs import Job
from shared.store.retrying import persistently
from shared.store.runs import AttemptRecord, Claim, DueRun, Run
from shared.times import iso_z, utcnow

if TYPE_CHECKING:
    from shared.runtime import Runtime

log = logging.getLogger("pingpay.execution")

#: How long a run waits before asking again when its job is at its limit.
CONCURRENCY_WAIT = timedelta(seconds=1)

#: How long a delivery thread keeps asking for a run while the whole service
#: is at its limit, before it puts the run back for ``CONCURRENCY_WAIT``.
BUSY_WAIT_SECONDS = 1.0

#: The range of the random pause between two such asks, in seconds.
BUSY_PAUSE = (0.02, 0.1)

#: Methods whose requests carry no body.
BODILESS = frozenset({"GET", "HEAD"})


def execute_run(runtime: "Runtime", run_id: str) -> None:
    """Make the next attempt of a run, if it is still wanted."""
    claim = _claim_when_free(runtime, run_id)
    if claim.decision == "early":
        runtime.dispatcher.hold([DueRun(run_id, claims.starts_at(claim.run))])
        log.debug("run %s came before its time; held until then", run_id)
    elif claim.decision in ("wait", "busy"):
        runtime.dispatcher.hold([DueRun(run_id, utcnow() + CONCURRENCY_WAIT)])
        log.debug(
            "job %s run %s waits: %s is at its concurrency limit",
            claim.job["id"],
            run_id,
            "its job" if claim.decision == "wait" else "the service",
            extra=run_fields(claim.run, claim.decision),
        )
    elif claim.decision in ("skipped", "cancelled", "missed"):
        metrics.run_finished(claim.decision)
        log.info(
            "job %s run %s %s before its first attempt",
            claim.job["id"],
            run_id,
            claim.decision,
            extra=run_fields(claim.run, claim.decision),
        )
    elif claim.decision == "run":
        _attempt(runtime, claim.job, claim.run)


def _claim_when_free(runtime: "Runtime", run_id: str) -> Claim:
    """Claim a run; while the whole service is at its limit, ask again shortly.

    Waiting here, in the delivery thread, keeps the runs asking for a free
    slot to the number of delivery threads however many runs are due, and
    starts a waiting run within a tenth of a second of a slot coming free.
    """
    claim = _claim(runtime, run_id)
    give_up_at = time.monotonic() + BUSY_WAIT_SECONDS
    while claim.decision == "busy" and time.monotonic() < give_up_at:
        time.sleep(random.uniform(*BUSY_PAUSE))
        claim = _claim(runtime, run_id)
    return claim


def _claim(runtime: "Runtime", run_id: str) -> Claim:
    margin = runtime.settings.lease_margin_seconds
    # The clock is read inside the retried call: a claim that waited for the
    # database must not start with a lease that has already run out.
    return persistently(
        runtime.settings.db_retry_seconds,
        lambda: runtime.store.runs.claim(
            run_id,
            utcnow(),
            lease=lambda job: job["timeout_seconds"] + margin,
            grace=timedelta(seconds=runtime.settings.misfire_grace_seconds),
        ),
    )


def _attempt(runtime: "Runtime", job: Job, run: Run) -> None:
    settings = runtime.settings
    started = utcnow()
    request = build_request(job, run, settings.signing_secrets, int(time.time()))
    result = runtime.sender.send(request)
    decision = decide(result, run["attempts"], retry_policy(job), utcnow())
    outcome = "retrying" if decision.outcome == "retry" else decision.outcome
    record = _attempt_record(run, started, result, decision)
    persistently(
        settings.db_retry_seconds,
        lambda: runtime.store.runs.finish_attempt(
            run,
            record,
            outcome,
            decision.retry_at,
            utcnow(),
            settings.fail_after_consecutive_failures,
        ),
    )
    if decision.retry_at is not None:
        runtime.dispatcher.hold([DueRun(run["id"], decision.retry_at)])
    metrics.attempt_finished(run, started, result, decision)
    _log_outcome(job, run, started, result, decision)


def build_request(
    job: Job, run: Run, secrets: list[str], timestamp: int
) -> OutgoingRequest:
    """The HTTP request for one attempt of ``run``.

    The run id stays the same across attempts, so targets can use it (also
    sent as ``Idempotency-Key``) to drop a request they already acted on.
    With signing secrets, the request carries a signature of its body made
    at ``timestamp``.
    """
    headers = dict(job["headers"] or {})
    body = None
    if job["payload"] is not None and job["method"] not in BODILESS:
        body = json.dumps(job["payload"], separators=(",", ":")).encode()
        headers.setdefault("Content-Type", "application/json")
    headers.update(
        {
            "User-Agent": "PingPay-Scheduler/0.1",
            "X-PingPay-Job-Id": job["id"],
            "X-PingPay-Run-Id": run["id"],
            "Idempotency-Key": run["id"],
            "X-PingPay-Attempt": str(run["attempts"]),
            "X-PingPay-Scheduled-For": iso_z(run["scheduled_for"]),
        }
    )
    if secrets:
        headers[signing.HEADER] = signing.sign(secrets, timestamp, body or b"")
    return OutgoingRequest(
        method=job["method"],
        url=job["target"],
        headers=headers,
        body=body,
        timeout=job["timeout_seconds"],
    )


def retry_policy(job: Job) -> RetryPolicy:
    retry: dict[str, Any] = job["retry"]
    return RetryPolicy(
        max_attempts=retry["max_attempts"],
        backoff_seconds=retry["backoff_seconds"],
        max_backoff_seconds=retry["max_backoff_seconds"],
        jitter=retry.get("jitter", 0.2),
    )


def _attempt_record(
    run: Run, started: datetime, result: AttemptResult, decision: Decision
) -> AttemptRecord:
    return AttemptRecord(
        number=run["attempts"],
        started_at=started,
        duration_ms=round(result.duration * 1000, 3),
        status_code=result.status_code,
        outcome=decision.outcome,
        error=result.error
        or (decision.reason if decision.outcome != "succeeded" else None),
        response_excerpt=result.excerpt,
        response_truncated=result.truncated,
    )


def _log_outcome(
    job: Job, run: Run, started: datetime, result: AttemptResult, decision: Decision
) -> None:
    late_ms = (started - run["scheduled_for"]).total_seconds() * 1000
    level = {"succeeded": logging.INFO, "retry": logging.WARNING}.get(
        decision.outcome, logging.ERROR
    )
    fields = run_fields(
        run,
        decision.outcome,
        duration_ms=round(result.duration * 1000, 3),
        status_code=result.status_code,
        late_ms=round(late_ms, 3),
        reason=decision.reason,
    )
    log.log(
        level,
        "job %s run %s attempt %d %s: %s in %.0f ms, %.0f ms after fire time %s%s",
        job["id"],
        run["id"],
        run["attempts"],
        decision.outcome,
        result.status_code if result.status_code is not None else "no response",
        result.duration * 1000,
        late_ms,
        iso_z(run["scheduled_for"]),
        f" ({decision.reason})" if decision.reason else "",
        extra=fields,
    )
