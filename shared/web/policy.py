"""What the operator allows: request sizes, job limits and where targets point.

Each limit is a setting. A request body beyond ``MAX_REQUEST_BYTES`` is a 413
before it is read; a job beyond a field limit, or whose target is an address
the target rule refuses, is a 422 naming the field and the limit. The request
models (``web.schemas``) check the shape of a job; this module checks what
depends on the settings, so that one service can be stricter than another.
"""

import json
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import InvalidFields
from shared.settings import Settings
from shared.targets import TargetRefused, TargetRule

Problems = list[tuple[str, str, object]]

# JSON nested deeper than this is refused: the API answers a job through
# pydantic, whose serializer stops near 255 levels, and no webhook needs 100.
MAX_PAYLOAD_DEPTH = 100


class BodyLimit:
    """Answers 413 to a request body larger than ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before anything
    is read; a chunked body is counted as it arrives and refused once over.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.detail = (
            f"the request body is larger than {limit} bytes (MAX_REQUEST_BYTES)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            response = JSONResponse({"detail": self.detail}, status_code=413)
            await response(scope, receive, send)
            return

        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                # Raised while the route reads its body: answered as a 413.
                raise HTTPException(413, self.detail)
            return message

        return counted


def check_job(fields: dict[str, Any], settings: Settings) -> None:
    """Raise InvalidFields for every field of a job beyond what ``settings`` allow."""
    problems = (
        _length_problems(fields, settings)
        + _header_problems(fields.get("headers") or {}, settings)
        + _payload_problems(fields.get("payload"), settings)
        + _target_problems(fields["target"], settings)
    )
    if problems:
        raise InvalidFields(problems)


def page_size(limit: int | None, default: int, settings: Settings) -> int:
    """The number of items a list answers: ``limit``, at most MAX_PAGE_SIZE."""
    if limit is None:
        return min(default, settings.max_page_size)
    if limit > settings.max_page_size:
        raise InvalidFields(
            [("limit", f"at most {settings.max_page_size} (MAX_PAGE_SIZE)", limit)],
            location="query",
        )
    return limit


def _length_problems(fields: dict[str, Any], settings: Settings) -> Problems:
    limits = {
        "name": (settings.max_name_length, "MAX_NAME_LENGTH"),
        "description": (settings.max_description_length, "MAX_DESCRIPTION_LENGTH"),
    }
    problems = []
    for name, (limit, setting) in limits.items():
        text = fields.get(name) or ""
        if len(text) > limit:
            message = f"longer than {limit} characters ({setting})"
            problems.append((name, message, f"{len(text)} characters"))
    return problems


def _header_problems(headers: dict[str, str], settings: Settings) -> Problems:
    # The values are left out of the answer: they may be credentials.
    if len(headers) > settings.max_job_headers:
        limit = settings.max_job_headers
        message = f"more than {limit} headers (MAX_JOB_HEADERS)"
        return [("headers", message, f"{len(headers)} headers")]

    limit = settings.max_header_bytes
    return [
        (
            "headers",
            f"header {name!r} is larger than {limit} bytes (MAX_HEADER_BYTES)",
            name,
        )
        for name, value in headers.items()
        if len(name) + len(value.encode()) > limit
    ]


def _payload_problems(payload: Any, settings: Settings) -> Problems:
    if _depth(payload) > MAX_PAYLOAD_DEPTH:
        return [("payload", f"nested deeper than {MAX_PAYLOAD_DEPTH} levels", None)]

    # NaN and Infinity parse as JSON numbers here but are not JSON to a
    # database or a target, so they are refused like any invalid value.
    try:
        size = len(json.dumps(payload, separators=(",", ":"), allow_nan=False))
    except ValueError:
        return [("payload", "must not contain NaN or Infinity", None)]
    if not _valid_unicode(payload):
        return [("payload", "must be valid Unicode (a lone surrogate)", None)]

    limit = settings.max_payload_bytes
    if size > limit:
        message = f"larger than {limit} bytes as JSON (MAX_PAYLOAD_BYTES)"
        return [("payload", message, f"{size} bytes")]
    return []


def _valid_unicode(payload: Any) -> bool:
    """False when a string or key holds half a surrogate pair.

    JSON's escapes let one through (``"\\ud800"``), and the job would be
    stored, but no answer holding it could be encoded: listing jobs would
    fail for everyone.
    """
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value``; no recursion, any depth."""
    deepest = 0
    pending = [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            children = item.values() if isinstance(item, dict) else item
            pending.extend((child, level + 1) for child in children)
    return deepest


def _target_problems(target: str, settings: Settings) -> Problems:
    try:
        TargetRule.from_settings(settings).check_url(target)
    except TargetRefused as refusal:
        message = f"{refusal}: targets inside the service's network are not allowed"
        return [("target", message, target)]
    return []
