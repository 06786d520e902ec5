"""The retry policy of a run: what one attempt's result means for the next.

Everything here is pure. The current instant comes in as ``now`` and the
randomness of the jitter as an optional ``random.Random``, so the schedule of
attempts can be tested with fixed instants and no sleeping.

The rules, from the API contract:

* a 2xx answer succeeds the run;
* a network error, a timeout, 408, 429 and 5xx are retried;
* an attempt the target rule refused (``AttemptResult.refused``) fails the
  run at once: the address will not become allowed by waiting; so does one
  whose request could not be made (``AttemptResult.unsendable``: a URL or
  header that cannot be encoded), which no later attempt would make either;
* any other status fails the run at once. That includes 3xx, because
  redirects are not followed: following one would turn the POST into a GET
  without the payload and report the target's 200 as a success;
* the wait after attempt n is ``backoff_seconds * 2 ** (n - 1)``, capped at
  ``max_backoff_seconds``, then varied by up to ``±jitter`` so that many jobs
  failing together do not retry in lockstep;
* a ``Retry-After`` from the target makes the wait at least that long; one
  beyond ``max_backoff_seconds`` fails the run, because retrying sooner than
  the target asked is exactly what it asked us not to do.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from shared.times import as_utc

if TYPE_CHECKING:
    from shared.delivery import AttemptResult

SUCCEEDED = "succeeded"
RETRY = "retry"
FAILED = "failed"

_RETRYABLE_STATUSES = frozenset({408, 429})

# Lenient on purpose: the RFC allows only digits, but a target that sends
# "5.0" or "-1" clearly means a number of seconds, not an unparseable header.
_DELTA_SECONDS = re.compile(r"[+-]?\d+(\.\d+)?")

# Beyond 2**62 doublings every realistic cap has long been reached; stopping
# there keeps the float arithmetic finite for absurd attempt numbers.
_MAX_DOUBLINGS = 62

_random = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a run is retried."""

    max_attempts: int = 3
    """Attempts in all, including the first."""
    backoff_seconds: float = 10
    max_backoff_seconds: float = 3600
    jitter: float = 0.2
    """The wait is varied by up to this fraction either way; 0 turns it off."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, not {self.max_attempts}")
        if self.backoff_seconds < 0 or self.max_backoff_seconds < 0:
            raise ValueError("backoff_seconds and max_backoff_seconds must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter}")


@dataclass(frozen=True)
class Decision:
    """What to do with a run after one of its attempts."""

    outcome: str
    """``"succeeded"``, ``"retry"`` or ``"failed"``."""
    retry_at: datetime | None
    """When the next attempt is due; set only when ``outcome == "retry"``."""
    reason: str | None
    """Why the attempt did not succeed, in words for the run's history."""


def backoff_delay(
    attempt: int, policy: RetryPolicy, rng: random.Random | None = None
) -> float:
    """Seconds to wait after attempt number ``attempt`` (1-based) failed."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, not {attempt}")

    doublings = min(attempt - 1, _MAX_DOUBLINGS)
    delay = min(policy.backoff_seconds * 2.0**doublings, policy.max_backoff_seconds)
    if policy.jitter == 0:
        return delay

    spread = (rng or _random).uniform(-policy.jitter, policy.jitter)
    return delay * (1 + spread)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks for, or None if it says nothing.

    The header is either a number of seconds or an HTTP date. A negative
    number or a date in the past means "now" (0); anything unreadable is None,
    so that the ordinary backoff applies.
    """
    if value is None:
        return None

    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return max(0.0, float(text))

    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None

    seconds = (as_utc(when) - as_utc(now)).total_seconds()
    return max(0.0, seconds)


def decide(
    result: AttemptResult,
    attempt: int,
    policy: RetryPolicy,
    now: datetime,
    rng: random.Random | None = None,
) -> Decision:
    """The fate of a run after ``result``, its attempt number ``attempt``.

    ``now`` is the instant the attempt ended; a retry is scheduled from it.
    """
    if _succeeded(result):
        return Decision(SUCCEEDED, None, None)

    reason = failure_reason(result)
    if not _retryable(result):
        return Decision(FAILED, None, reason)

    if attempt >= policy.max_attempts:
        return Decision(FAILED, None, f"{reason}; gave up after {attempt} attempts")

    wait = backoff_delay(attempt, policy, rng)
    asked = parse_retry_after(result.retry_after, now)
    if asked is not None and asked > policy.max_backoff_seconds:
        return Decision(FAILED, None, _asked_too_long(asked, policy))

    if asked is not None:
        wait = max(wait, asked)
    return Decision(RETRY, now + timedelta(seconds=wait), reason)


def failure_reason(result: AttemptResult) -> str:
    """A short account of an attempt that did not succeed."""
    if result.timed_out or result.status_code is None:
        return result.error or "no response"

    status = f"HTTP {result.status_code}"
    if _is_redirect(result.status_code):
        where = result.location or "nowhere (no Location header)"
        return f"{status}, redirect to {where} not followed"
    return status


def _succeeded(result: AttemptResult) -> bool:
    # A 2xx whose body then trickled past the deadline is still a timeout:
    # the exchange did not end in time, and the contract retries timeouts.
    code = result.status_code
    return code is not None and 200 <= code <= 299 and not result.timed_out


def _retryable(result: AttemptResult) -> bool:
    if result.refused or result.unsendable:
        return False

    code = result.status_code
    if result.timed_out or code is None:
        return True
    return code in _RETRYABLE_STATUSES or 500 <= code <= 599


def _is_redirect(code: int) -> bool:
    return 300 <= code <= 399


def _asked_too_long(asked: float, policy: RetryPolicy) -> str:
    return (
        f"target asked to wait {_seconds(asked)} s, "
        f"more than the {_seconds(policy.max_backoff_seconds)} s cap"
    )


def _seconds(value: float) -> str:
    """Seconds as people write them: ``300``, ``2.5``."""
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:.1f}"
