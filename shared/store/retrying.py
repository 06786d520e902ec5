"""Retrying the store's writes while the database does not answer.

A worker that has made an HTTP attempt must record it, or the attempt is
made again later (delivery is at least once, so that is safe, but wasteful).
So a write that fails because the database is down, restarting or out of
connections is tried again with growing waits, for up to a set time.
"""

import logging
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy.exc
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

log = logging.getLogger("pingpay.store")

T = TypeVar("T")


def is_connection_error(error: BaseException) -> bool:
    """True for errors that another try may not meet: lost or refused connections."""
    if isinstance(error, sqlalchemy.exc.DBAPIError):
        return error.connection_invalidated or isinstance(
            error, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError
        )
    return isinstance(error, sqlalchemy.exc.TimeoutError)


def persistently(seconds: float, write: Callable[[], T]) -> T:
    """``write()``, tried again for up to ``seconds`` on connection errors."""
    retrying = Retrying(
        retry=retry_if_exception(is_connection_error),
        stop=stop_after_delay(seconds),
        wait=wait_exponential(multiplier=0.2, max=5),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    return retrying(write)
