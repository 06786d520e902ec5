"""Claiming a run for an attempt: still wanted, within the job's limits."""

import uuid
from datetime import timedelta

from sqlalchemy import delete, insert, update

from shared.definitions import new_job
from shared.store.claims import ClaimRequest, Finish
from shared.store.runs import AttemptRecord, RunStore
from shared.store.tables import delivery_slots, runs
from shared.times import utcnow
from tests.test_tick import EVERY_MINUTE

LEASE = lambda job: 60  # noqa: E731 - seconds


def add_job(runtime, **changes) -> dict:
    job = new_job(EVERY_MINUTE | changes, utcnow()) | changes
    runtime.store.jobs.insert(job)
    return job


def add_run(runtime, job, seconds_ago: int, trigger: str = "schedule") -> str:
    run_id = str(uuid.uuid4())
    now = utcnow()
    with runtime.store.engine.begin() as conn:
        conn.execute(
            insert(runs).values(
                id=run_id,
                job_id=job["id"],
                scheduled_for=now - timedelta(seconds=seconds_ago),
                trigger=trigger,
                status="queued",
                attempts=0,
                created_at=now,
            )
        )
    return run_id


def finish(runtime, claim) -> None:
    record = AttemptRecord(1, utcnow(), 5.0, 200, "succeeded", None, "", False)
    runtime.store.runs.finish_attempt(claim.run, record, "succeeded", None, utcnow())


def test_a_run_is_claimed_once(runtime):
    job = add_job(runtime)
    run_id = add_run(runtime, job, 1)

    first = runtime.store.runs.claim(run_id, utcnow(), LEASE)
    second = runtime.store.runs.claim(run_id, utcnow(), LEASE)

    assert first.decision == "run"
    assert first.run["attempts"] == 1
    assert second.decision == "gone"


def test_max_concurrency_makes_the_next_run_wait_its_turn(runtime):
    job = add_job(runtime, max_concurrency=1)
    first, second = add_run(runtime, job, 2), add_run(runtime, job, 1)

    running = runtime.store.runs.claim(first, utcnow(), LEASE)
    waiting = runtime.store.runs.claim(second, utcnow(), LEASE)
    finish(runtime, running)
    after = runtime.store.runs.claim(second, utcnow(), LEASE)

    assert (running.decision, waiting.decision, after.decision) == (
        "run",
        "wait",
        "run",
    )
    assert runtime.store.runs.get(second)["status"] == "running"


def test_overlap_skip_records_a_skipped_run(runtime):
    job = add_job(runtime, overlap_policy="skip")
    first, second = add_run(runtime, job, 2), add_run(runtime, job, 1)

    runtime.store.runs.claim(first, utcnow(), LEASE)
    skipped = runtime.store.runs.claim(second, utcnow(), LEASE)

    assert skipped.decision == "skipped"
    assert runtime.store.runs.get(second)["status"] == "skipped"


def test_overlap_allow_lets_runs_overlap(runtime):
    job = add_job(runtime)
    first, second = add_run(runtime, job, 2), add_run(runtime, job, 1)

    decisions = [
        runtime.store.runs.claim(r, utcnow(), LEASE).decision for r in (first, second)
    ]

    assert decisions == ["run", "run"]


def test_a_paused_job_cancels_its_scheduled_runs_but_not_manual_ones(runtime):
    job = add_job(runtime, status="inactive")
    scheduled = add_run(runtime, job, 2)
    manual = add_run(runtime, job, 1, trigger="manual")

    assert runtime.store.runs.claim(scheduled, utcnow(), LEASE).decision == "cancelled"
    assert runtime.store.runs.claim(manual, utcnow(), LEASE).decision == "run"


def test_an_expired_lease_does_not_count_as_in_flight(runtime):
    job = add_job(runtime, max_concurrency=1)
    first, second = add_run(runtime, job, 2), add_run(runtime, job, 1)

    runtime.store.runs.claim(first, utcnow(), lambda job: 0.01)
    later = utcnow() + timedelta(seconds=1)

    assert runtime.store.runs.claim(second, later, LEASE).decision == "run"


def test_a_scheduled_run_started_too_late_follows_the_misfire_policy(runtime):
    job = add_job(runtime)
    stale, newest = add_run(runtime, job, 600), add_run(runtime, job, 1)
    with runtime.store.engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.job_id == job["id"])
            .values(created_at=utcnow() - timedelta(minutes=15))
        )

    first = runtime.store.runs.claim(stale, utcnow(), LEASE)
    second = runtime.store.runs.claim(newest, utcnow(), LEASE)

    assert first.decision == "missed"
    assert runtime.store.runs.get(stale)["status"] == "missed"
    assert second.decision == "run"


def test_skip_drops_a_late_run_and_run_all_sends_it(runtime):
    skipper = add_job(runtime, misfire_policy="skip")
    sender = add_job(runtime, misfire_policy="run_all")
    late = [add_run(runtime, job, 600) for job in (skipper, sender)]
    with runtime.store.engine.begin() as conn:
        conn.execute(update(runs).values(created_at=utcnow() - timedelta(minutes=15)))

    decisions = [runtime.store.runs.claim(r, utcnow(), LEASE).decision for r in late]

    assert decisions == ["missed", "run"]


def test_a_manual_run_of_a_paused_job_gets_no_retry(runtime):
    job = add_job(runtime, status="inactive")
    manual = add_run(runtime, job, 1, trigger="manual")
    with runtime.store.engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id == manual)
            .values(status="retrying", attempts=1)
        )

    assert runtime.store.runs.claim(manual, utcnow(), LEASE).decision == "cancelled"


def test_a_run_handed_over_before_its_fire_time_is_held_back(runtime):
    job = add_job(runtime)
    ahead = add_run(runtime, job, -30)

    claim = runtime.store.runs.claim(ahead, utcnow(), LEASE)

    assert claim.decision == "early"
    assert runtime.store.runs.get(ahead)["attempts"] == 0


def test_a_second_copy_of_a_run_waiting_for_its_retry_is_held_back(runtime):
    # A run queued twice: the first copy's attempt failed fast and put the
    # retry off; the second copy must not make that retry early.
    job = add_job(runtime)
    run_id = add_run(runtime, job, 1)
    first = runtime.store.runs.claim(run_id, utcnow(), LEASE)
    record = AttemptRecord(1, utcnow(), 5.0, 503, "retry", None, "", False)
    retry_at = utcnow() + timedelta(seconds=30)
    runtime.store.runs.finish_attempt(first.run, record, "retrying", retry_at, utcnow())

    second = runtime.store.runs.claim(run_id, utcnow(), LEASE)
    on_time = runtime.store.runs.claim(run_id, retry_at, LEASE)

    assert second.decision == "early"
    assert on_time.decision == "run"
    assert on_time.run["attempts"] == 2


def test_the_sweep_leaves_runs_queued_ahead_of_their_fire_time(runtime):
    job = add_job(runtime)
    ahead = add_run(runtime, job, -60)
    with runtime.store.engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id == ahead)
            .values(queued_at=utcnow() - timedelta(minutes=30))
        )
    now = utcnow()

    lost = runtime.store.runs.recover_stale(now, now, now, now)

    assert lost == []


def capped_store(runtime, max_in_flight: int) -> RunStore:
    """A run store with a service-wide limit, its slots all free."""
    with runtime.store.engine.begin() as conn:
        conn.execute(delete(delivery_slots))
    return RunStore(runtime.store.engine, max_in_flight)


def test_the_service_wide_limit_makes_a_run_wait_for_a_free_slot(runtime):
    capped = capped_store(runtime, 1)
    first = add_run(runtime, add_job(runtime), 1)
    second = add_run(runtime, add_job(runtime), 1)

    running = capped.claim(first, utcnow(), LEASE)
    busy = capped.claim(second, utcnow(), LEASE)
    finish(runtime, running)
    after = capped.claim(second, utcnow(), LEASE)

    assert (running.decision, busy.decision, after.decision) == ("run", "busy", "run")
    assert runtime.store.runs.get(second)["status"] == "running"


def test_a_slot_whose_worker_vanished_is_free_once_its_lease_expires(runtime):
    capped = capped_store(runtime, 1)
    first = add_run(runtime, add_job(runtime), 1)
    second = add_run(runtime, add_job(runtime), 1)

    capped.claim(first, utcnow(), lambda job: 0.01)
    later = utcnow() + timedelta(seconds=1)

    assert capped.claim(second, later, LEASE).decision == "run"


def test_without_a_service_wide_limit_no_slot_is_needed(runtime):
    unlimited = RunStore(runtime.store.engine, max_in_flight=0)
    claims = [
        unlimited.claim(add_run(runtime, add_job(runtime), 1), utcnow(), LEASE)
        for _ in range(3)
    ]

    assert [c.decision for c in claims] == ["run"] * 3


def claim_together(store: RunStore, run_ids: list[str]) -> list[str]:
    """Decisions for runs claimed in one transaction, as busy threads do."""
    requests = [
        ClaimRequest(r, utcnow(), LEASE, timedelta(seconds=60)) for r in run_ids
    ]
    return [claim.decision for claim in store.claim_many(requests)]


def test_runs_claimed_together_keep_their_job_within_its_limit(runtime):
    job = add_job(runtime, max_concurrency=1)
    first, second = add_run(runtime, job, 2), add_run(runtime, job, 1)

    assert claim_together(runtime.store.runs, [first, second]) == ["run", "wait"]
    assert runtime.store.runs.get(second)["status"] == "queued"


def test_runs_claimed_together_skip_an_overlap(runtime):
    job = add_job(runtime, overlap_policy="skip")
    first, second = add_run(runtime, job, 2), add_run(runtime, job, 1)

    assert claim_together(runtime.store.runs, [first, second]) == ["run", "skipped"]
    assert runtime.store.runs.get(second)["status"] == "skipped"


def test_a_run_asked_for_twice_in_one_batch_is_claimed_once(runtime):
    run_id = add_run(runtime, add_job(runtime), 1)

    assert claim_together(runtime.store.runs, [run_id, run_id]) == ["run", "gone"]
    assert runtime.store.runs.get(run_id)["attempts"] == 1


def test_runs_claimed_together_share_the_free_slots(runtime):
    capped = capped_store(runtime, 2)
    wanted = [add_run(runtime, add_job(runtime), 1) for _ in range(3)]

    assert claim_together(capped, wanted) == ["run", "run", "busy"]
    assert runtime.store.runs.get(wanted[2])["status"] == "queued"
    capped.close()


def test_runs_of_one_job_finished_together_count_in_order(runtime):
    job = add_job(runtime)
    started = runtime.store.runs.claim_many(
        [
            ClaimRequest(add_run(runtime, job, s), utcnow(), LEASE, timedelta(0))
            for s in (2, 1)
        ]
    )
    failed = AttemptRecord(1, utcnow(), 5.0, 500, "failed", "HTTP 500", "", False)

    jobs = runtime.store.runs.finish_many(
        [Finish(c.run, failed, "failed", None, utcnow(), 2) for c in started]
    )

    assert [j["consecutive_failures"] for j in jobs] == [2, 2]
    stored = runtime.store.jobs.get(job["id"])
    assert stored["status"] == "failed"
    assert stored["consecutive_failures"] == 2
