"""Which runs a tick writes: fire times in the window and the misfire policy."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.planning import plan_runs

GRACE = timedelta(seconds=60)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 5, 4, hour, minute, second, tzinfo=UTC)


def hourly(next_run_at: datetime, policy: str = "run_once") -> dict:
    return {
        "schedule_type": "cron",
        "cron_expression": "0 * * * *",
        "timezone": "UTC",
        "next_run_at": next_run_at,
        "misfire_policy": policy,
    }


def statuses(plan) -> list[tuple[datetime, str, str]]:
    return [(r.scheduled_for, r.status, r.trigger) for r in plan.runs]


def test_on_time_fire_times_in_the_window_are_pending():
    plan = plan_runs(hourly(at(2)), at(1, 59), at(3, 0), GRACE, 100)
    assert statuses(plan) == [
        (at(2), "pending", "schedule"),
        (at(3), "pending", "schedule"),
    ]
    assert plan.next_run_at == at(4)
    assert not plan.completed


def test_downtime_with_run_once_sends_one_catch_up_and_records_the_rest():
    # Down from 01:10 to 05:20: 02:00, 03:00 and 04:00 are missed, 05:00 is
    # sent once as a catch-up, and the next regular run is 06:00.
    plan = plan_runs(hourly(at(2)), at(5, 20), at(5, 21), GRACE, 100)
    assert statuses(plan) == [
        (at(2), "missed", "schedule"),
        (at(3), "missed", "schedule"),
        (at(4), "missed", "schedule"),
        (at(5), "pending", "catch_up"),
    ]
    assert plan.next_run_at == at(6)


def test_downtime_with_skip_sends_nothing():
    plan = plan_runs(hourly(at(2), "skip"), at(5, 20), at(5, 21), GRACE, 100)
    assert [s for _, s, _ in statuses(plan)] == ["missed"] * 4


@pytest.mark.parametrize(("bound", "sent"), [(100, 4), (2, 2)])
def test_downtime_with_run_all_sends_each_up_to_the_bound(bound, sent):
    plan = plan_runs(hourly(at(2), "run_all"), at(5, 20), at(5, 21), GRACE, bound)
    pending = [t for t, s, _ in statuses(plan) if s == "pending"]
    assert len(pending) == sent
    assert pending[-1] == at(5)


def test_a_fire_time_within_the_grace_is_not_missed():
    plan = plan_runs(hourly(at(2)), at(2, 0, 30), at(2, 1), GRACE, 100)
    assert statuses(plan) == [(at(2), "pending", "schedule")]


def test_a_long_gap_planned_in_steps_still_sends_one_catch_up():
    job = {
        "schedule_type": "recurring",
        "interval": "minute",
        "interval_value": 1,
        "timezone": "UTC",
        "anchor_at": at(0),
        "next_run_at": at(0, 1),
        "misfire_policy": "run_once",
    }
    now = at(0) + timedelta(days=2, seconds=30)
    written = []
    while job["next_run_at"] <= now:
        plan = plan_runs(job, now, now, GRACE, 100)
        written += plan.runs
        job["next_run_at"] = plan.next_run_at
    assert len(written) == 2 * 24 * 60
    sent = [(r.scheduled_for, r.trigger) for r in written if r.status == "pending"]
    # 00:00, within the grace, goes out; 23:59 and every earlier fire time
    # are recorded as missed rather than sent just before it.
    assert sent == [(now - timedelta(seconds=30), "schedule")]


def test_a_one_time_job_completes_its_schedule():
    job = {
        "schedule_type": "specific_time",
        "specific_time": at(3),
        "timezone": "UTC",
        "next_run_at": at(3),
        "misfire_policy": "skip",
    }
    on_time = plan_runs(job, at(2, 59, 30), at(3, 0, 30), GRACE, 100)
    assert statuses(on_time) == [(at(3), "pending", "schedule")]
    assert on_time.next_run_at is None
    assert not on_time.completed
    too_late = plan_runs(job, at(5), at(5, 1), GRACE, 100)
    assert statuses(too_late) == [(at(3), "missed", "schedule")]
    assert too_late.completed


def test_run_once_sends_no_catch_up_before_a_fire_time_that_goes_out_now():
    # Down from 01:40 to 04:00:30: 02:00 and 03:00 are missed, and 04:00,
    # only 30 s late, goes out now; sending 03:00 too would make two runs
    # back to back.
    plan = plan_runs(hourly(at(2)), at(4, 0, 30), at(4, 2), GRACE, 100)
    assert statuses(plan) == [
        (at(2), "missed", "schedule"),
        (at(3), "missed", "schedule"),
        (at(4), "pending", "schedule"),
    ]
