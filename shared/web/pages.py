"""Cursor pagination: lists answer a page and a ``Link`` to the next one."""

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from fastapi import Request, Response

from shared.definitions import is_id
from shared.errors import InvalidFields
from shared.times import as_utc, iso_z

Row = TypeVar("Row")


def encode_cursor(when: datetime, identifier: str) -> str:
    raw = json.dumps([iso_z(when), identifier]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The position a cursor names, or a 422 naming the ``cursor`` parameter."""
    if not cursor:
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        when, identifier = json.loads(base64.urlsafe_b64decode(padded))
        position = as_utc(datetime.fromisoformat(when)), str(identifier)
        if not is_id(position[1]):
            raise ValueError("the cursor names no id")
        return position
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidFields(
            [("cursor", "is not a cursor this API gave", cursor)], location="query"
        ) from error


def link_next(request: Request, response: Response, cursor: str | None) -> None:
    """Set ``Link: <...>; rel="next"`` and ``X-Next-Cursor`` when more follow."""
    if cursor is None:
        return
    url = request.url.include_query_params(cursor=cursor)
    response.headers["Link"] = f'<{url}>; rel="next"'
    response.headers["X-Next-Cursor"] = cursor


def split_page(
    rows: list[Row], limit: int, position: Callable[[Row], tuple[datetime, str]]
) -> tuple[list[Row], str | None]:
    """A page from ``limit + 1`` rows read, and the cursor of the page after it.

    ``position`` gives a row's place in the order (a time and an id); the
    next page starts after the last row shown.
    """
    if len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(*position(page[-1]))
