"""What the store keeps: failure streaks, lost attempts and pruned history."""

from datetime import timedelta

from sqlalchemy import func, select, update

from shared.store.runs import AttemptRecord
from shared.store.tables import attempts, runs
from shared.tick import tick
from shared.times import utcnow
from tests.helpers import wait_for
from tests.test_claims import LEASE, add_job, add_run


def fail(runtime, run_id: str, fail_after: int) -> dict:
    claim = runtime.store.runs.claim(run_id, utcnow(), LEASE)
    record = AttemptRecord(1, utcnow(), 3.0, 500, "failed", "HTTP 500", "", False)
    return runtime.store.runs.finish_attempt(
        claim.run, record, "failed", None, utcnow(), fail_after
    )


def test_a_recurring_job_failing_too_often_in_a_row_stops(runtime, client):
    job = add_job(runtime)
    waiting = add_run(runtime, job, 0)
    first, second = add_run(runtime, job, 30), add_run(runtime, job, 20)

    after_one = fail(runtime, first, fail_after=2)
    after_two = fail(runtime, second, fail_after=2)

    assert (after_one["status"], after_one["consecutive_failures"]) == ("active", 1)
    assert after_two["status"] == "failed"
    assert after_two["status_reason"] == "2 runs failed in a row; the last: HTTP 500"
    assert runtime.store.runs.get(waiting)["status"] == "cancelled"

    resumed = client.post(f"/jobs/{job['id']}/resume").json()
    assert resumed["status"] == "active"
    assert resumed["consecutive_failures"] == 0
    assert resumed["status_reason"] is None


def test_failures_never_stop_a_job_when_the_setting_is_off(runtime):
    job = add_job(runtime)
    for seconds_ago in (50, 40, 30, 20):
        after = fail(runtime, add_run(runtime, job, seconds_ago), fail_after=0)
    assert after["status"] == "active"
    assert after["consecutive_failures"] == 4


def test_a_run_whose_worker_vanished_is_requeued_with_a_lost_attempt(runtime):
    job = add_job(runtime)
    run_id = add_run(runtime, job, 5)
    runtime.store.runs.claim(run_id, utcnow(), lambda job: 0.01)

    summary = tick(runtime, now=utcnow() + timedelta(seconds=1))

    run = wait_for(
        lambda: (r := runtime.store.runs.get(run_id))["status"] == "queued" and r
    )
    assert summary.runs_recovered == 1
    assert [a["outcome"] for a in run["attempt_list"]] == ["lost"]


def test_pruning_deletes_old_finished_runs_in_batches(runtime):
    job = add_job(runtime)
    old = [add_run(runtime, job, 1000 + n) for n in range(25)]
    recent = add_run(runtime, job, 10)
    for run_id in [*old, recent]:
        fail(runtime, run_id, fail_after=0)
    with runtime.store.engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id.in_(old))
            .values(finished_at=utcnow() - timedelta(days=40))
        )

    deleted = runtime.store.runs.prune(utcnow() - timedelta(days=30), batch=10)

    with runtime.store.engine.connect() as conn:
        left = list(conn.scalars(select(runs.c.id)))
        attempts_left = conn.scalar(select(func.count()).select_from(attempts))
    assert deleted == 25
    assert left == [recent]
    assert attempts_left == 1
