"""The retry policy, with fixed instants and no network."""

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared.delivery import AttemptResult
from shared.retry import (
    Decision,
    RetryPolicy,
    backoff_delay,
    decide,
    parse_retry_after,
)

T0 = datetime(2026, 3, 8, 13, 0, 0, tzinfo=UTC)
STEADY = RetryPolicy(max_attempts=4, backoff_seconds=2, jitter=0)


def answer(
    status: int | None,
    *,
    retry_after: str | None = None,
    location: str | None = None,
    error: str | None = None,
    timed_out: bool = False,
) -> AttemptResult:
    return AttemptResult(
        status_code=status,
        duration=0.1,
        excerpt="",
        truncated=False,
        error=error,
        timed_out=timed_out,
        retry_after=retry_after,
        location=location,
    )


def http_date(instant: datetime) -> str:
    return format_datetime(instant, usegmt=True)


def seconds_after_t0(decision: Decision) -> float:
    assert decision.retry_at is not None
    return (decision.retry_at - T0).total_seconds()


def test_always_503_is_retried_at_2_6_14_seconds_then_fails():
    attempts_at = []
    now = T0
    for attempt in range(1, 5):
        attempts_at.append(now)
        decision = decide(answer(503), attempt, STEADY, now)
        if decision.outcome != "retry":
            break
        now = decision.retry_at

    offsets = [(at - T0).total_seconds() for at in attempts_at]
    assert offsets == [0, 2, 6, 14]
    assert decision.outcome == "failed"
    assert decision.retry_at is None
    assert "HTTP 503" in decision.reason
    assert "4 attempts" in decision.reason


def test_backoff_doubles_and_stops_at_the_cap():
    policy = RetryPolicy(backoff_seconds=10, max_backoff_seconds=60, jitter=0)

    delays = [backoff_delay(n, policy) for n in range(1, 7)]

    assert delays == [10, 20, 40, 60, 60, 60]
    assert backoff_delay(10_000, policy) == 60


def test_jitter_varies_the_wait_within_its_bounds():
    policy = RetryPolicy(backoff_seconds=10, jitter=0.2)
    rng = random.Random(7)

    delays = [backoff_delay(1, policy, rng) for _ in range(500)]

    assert all(8 <= delay <= 12 for delay in delays)
    assert len(set(delays)) > 400
    assert 9.5 < sum(delays) / len(delays) < 10.5


def test_jitter_is_reproducible_with_a_seeded_rng():
    policy = RetryPolicy(backoff_seconds=10)

    first = [backoff_delay(2, policy, random.Random(1)) for _ in range(3)]
    again = [backoff_delay(2, policy, random.Random(1)) for _ in range(3)]

    assert first == again


def test_attempt_numbers_start_at_one():
    with pytest.raises(ValueError, match="start at 1"):
        backoff_delay(0, STEADY)


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("5", 5),
        (" 120 ", 120),
        ("0", 0),
        ("-3", 0),
        ("2.5", 2.5),
        (http_date(T0 + timedelta(seconds=5)), 5),
        (http_date(T0 - timedelta(hours=1)), 0),
        ("Sun, 08 Mar 2026 13:01:00 GMT", 60),
    ],
)
def test_retry_after_in_seconds_or_as_an_http_date(value, seconds):
    assert parse_retry_after(value, T0) == seconds


@pytest.mark.parametrize("value", [None, "", "soon", "5 minutes", "Sun, 99 Foo"])
def test_retry_after_that_says_nothing_is_none(value):
    assert parse_retry_after(value, T0) is None


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_succeeds(status):
    assert decide(answer(status), 1, STEADY, T0) == Decision("succeeded", None, None)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses_wait_the_backoff(status):
    decision = decide(answer(status), 1, STEADY, T0)

    assert decision.outcome == "retry"
    assert seconds_after_t0(decision) == 2
    assert decision.reason == f"HTTP {status}"


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 422])
def test_other_4xx_fails_at_once(status):
    decision = decide(answer(status, retry_after="5"), 1, STEADY, T0)

    assert decision == Decision("failed", None, f"HTTP {status}")


def test_redirect_fails_at_once_and_names_the_location():
    result = answer(302, location="/elsewhere", error="redirect to /elsewhere")

    decision = decide(result, 1, STEADY, T0)

    assert decision.outcome == "failed"
    assert "/elsewhere" in decision.reason
    assert "302" in decision.reason


def test_429_waits_as_long_as_retry_after_asks_then_succeeds():
    first = decide(answer(429, retry_after="5"), 1, STEADY, T0)
    second = decide(answer(200), 2, STEADY, first.retry_at)

    assert first.outcome == "retry"
    assert seconds_after_t0(first) == 5
    assert second.outcome == "succeeded"


def test_429_with_retry_after_as_an_http_date_waits_the_same():
    result = answer(429, retry_after=http_date(T0 + timedelta(seconds=5)))

    decision = decide(result, 1, STEADY, T0)

    assert decision.outcome == "retry"
    assert seconds_after_t0(decision) == 5


def test_backoff_longer_than_retry_after_wins():
    policy = RetryPolicy(backoff_seconds=30, jitter=0)

    decision = decide(answer(429, retry_after="5"), 1, policy, T0)

    assert seconds_after_t0(decision) == 30


def test_retry_after_applies_to_any_retryable_status():
    decision = decide(answer(503, retry_after="40"), 1, STEADY, T0)

    assert seconds_after_t0(decision) == 40


def test_retry_after_beyond_the_cap_fails_at_once():
    policy = RetryPolicy(max_attempts=5, max_backoff_seconds=300, jitter=0)

    decision = decide(answer(429, retry_after="86400"), 1, policy, T0)

    assert decision == Decision(
        "failed",
        None,
        "target asked to wait 86400 s, more than the 300 s cap",
    )


def test_timeouts_and_network_errors_are_retried():
    timed_out = answer(None, error="timed out after 3.0 s", timed_out=True)
    refused = answer(None, error="connection refused")

    for result in (timed_out, refused):
        decision = decide(result, 1, STEADY, T0)
        assert decision.outcome == "retry"
        assert decision.reason == result.error


def test_a_2xx_whose_body_timed_out_is_a_timeout():
    result = answer(200, error="timed out after 3.0 s", timed_out=True)

    decision = decide(result, 1, STEADY, T0)

    assert decision.outcome == "retry"
    assert decision.reason == "timed out after 3.0 s"


def test_the_last_attempt_fails_even_when_retryable():
    policy = RetryPolicy(max_attempts=1)

    decision = decide(answer(None, error="connection refused"), 1, policy, T0)

    assert decision.outcome == "failed"
    assert decision.reason.startswith("connection refused")


def test_jittered_retry_stays_within_bounds():
    policy = RetryPolicy(backoff_seconds=10, jitter=0.2)

    decision = decide(answer(503), 1, policy, T0, random.Random(3))

    assert 8 <= seconds_after_t0(decision) <= 12


@pytest.mark.parametrize(
    "fields",
    [{"max_attempts": 0}, {"backoff_seconds": -1}, {"jitter": 1.5}],
)
def test_a_policy_that_makes_no_sense_is_refused(fields):
    with pytest.raises(ValueError):
        RetryPolicy(**fields)


def test_a_refused_target_fails_at_once_saying_why():
    reason = "target refused: hooks.example.test resolves to a private address"
    refused = replace(answer(None, error=reason), refused=True)

    decision = decide(refused, 1, STEADY, T0)

    assert decision == Decision("failed", None, reason)


def test_a_request_that_cannot_be_made_fails_at_once():
    reason = "the request could not be encoded"
    unsendable = replace(answer(None, error=reason), unsendable=True)

    decision = decide(unsendable, 1, STEADY, T0)

    assert decision == Decision("failed", None, reason)
