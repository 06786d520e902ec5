"""Request and response bodies of the REST API (see API.md).

Request models forbid unknown fields, so a typo is a 422 rather than a job
that silently does something else. Checks that need several fields at once
live in ``shared.definitions``.
"""

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    field_serializer,
    field_validator,
    model_validator,
)
from requests.exceptions import RequestException
from urllib3.exceptions import LocationParseError

from shared.masking import masked
from shared.targets import check_host_name, check_one_reading, host_of
from shared.times import iso_z

UtcTime = Annotated[datetime, PlainSerializer(iso_z, return_type=str)]
ScheduleType = Literal["cron", "specific_time", "recurring"]
Interval = Literal["minute", "hour", "day", "week", "month", "year"]
Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# A header value as HTTP allows it: visible characters, spaces and tabs, and
# Latin-1 beyond ASCII (which is what goes on the wire); no leading blank.
_HEADER_VALUE = re.compile(r"([\x21-\x7e\x80-\xff][\t\x20-\x7e\x80-\xff]*)?")
#: Headers the service sets itself or that belong to the connection.
_RESERVED_HEADERS = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "idempotency-key",
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        if isinstance(value, str):
            check_storable_text(value)
        if isinstance(value, datetime):
            check_year(value)
        return value


class RetrySettings(Strict):
    """How a failed attempt is retried; the wait doubles from ``backoff_seconds``."""

    max_attempts: StrictInt = Field(3, ge=1, le=20, description="Attempts in all.")
    backoff_seconds: float = Field(10, ge=0, le=86400)
    max_backoff_seconds: float = Field(3600, ge=0, le=7 * 86400)

    @model_validator(mode="after")
    def _cap_above_start(self) -> "RetrySettings":
        if self.max_backoff_seconds < self.backoff_seconds:
            raise ValueError("max_backoff_seconds must be at least backoff_seconds")
        return self


class ScheduleFields(Strict):
    """When a job fires."""

    schedule_type: ScheduleType
    cron_expression: str | None = Field(None, max_length=200)
    specific_time: datetime | None = None
    interval: Interval | None = None
    interval_value: StrictInt | None = Field(None, ge=1, le=1_000_000)
    timezone: str = Field("UTC", min_length=1, max_length=64)
    start_at: datetime | None = None
    end_at: datetime | None = None


class JobFields(ScheduleFields):
    """A job as clients send it on create and replace."""

    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    type: Literal["http"] = "http"
    target: str = Field(max_length=2048)
    payload: Any = None
    method: Method = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    timeout_seconds: float = Field(30, gt=0, le=900)
    retry: RetrySettings = Field(default_factory=RetrySettings)
    max_concurrency: StrictInt | None = Field(None, ge=1, le=1000)
    overlap_policy: Literal["allow", "skip"] = "allow"
    misfire_policy: Literal["run_once", "skip", "run_all"] = "run_once"

    @field_validator("target")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else check_target(value)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("headers")
    @classmethod
    def _header_fields(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        for name, text in (value or {}).items():
            check_header(name, text)
        return value


class JobChanges(Strict):
    """Some fields of a job (PATCH); the result must be a valid job."""

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = None
    target: str | None = Field(None, max_length=2048)
    payload: Any = None
    method: Method | None = None
    headers: dict[str, str] | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=900)
    retry: RetrySettings | None = None
    max_concurrency: StrictInt | None = Field(None, ge=1, le=1000)
    overlap_policy: Literal["allow", "skip"] | None = None
    misfire_policy: Literal["run_once", "skip", "run_all"] | None = None
    schedule_type: ScheduleType | None = None
    cron_expression: str | None = Field(None, max_length=200)
    specific_time: datetime | None = None
    interval: Interval | None = None
    interval_value: StrictInt | None = Field(None, ge=1, le=1_000_000)
    timezone: str | None = Field(None, min_length=1, max_length=64)
    start_at: datetime | None = None
    end_at: datetime | None = None

    _http_url = field_validator("target")(JobFields._http_url.__func__)
    _upper = field_validator("method", mode="before")(JobFields._upper.__func__)
    _header_fields = field_validator("headers")(JobFields._header_fields.__func__)


class PreviewRequest(ScheduleFields):
    """A schedule to preview, without saving anything."""

    after: datetime | None = Field(None, description="Fire times after this.")
    count: StrictInt = Field(5, ge=1, le=100)


class PreviewResponse(BaseModel):
    fire_times: list[UtcTime]


class Job(BaseModel):
    """A job as the API answers it."""

    id: str
    name: str
    description: str | None
    type: str
    target: str
    payload: Any
    method: str
    headers: dict[str, str]
    timeout_seconds: float
    schedule_type: ScheduleType
    cron_expression: str | None
    specific_time: UtcTime | None
    interval: str | None
    interval_value: int | None
    timezone: str
    start_at: UtcTime | None
    end_at: UtcTime | None
    retry: RetrySettings
    max_concurrency: int | None
    overlap_policy: str
    misfire_policy: str
    status: Literal["active", "inactive", "failed", "completed"]
    status_reason: str | None = Field(
        None, description="Why the job stopped, when it stopped on its own."
    )
    consecutive_failures: int = Field(0, description="Runs failed in a row.")
    next_run_at: UtcTime | None
    last_run_at: UtcTime | None
    last_run_status: str | None
    created_at: UtcTime
    updated_at: UtcTime

    @field_serializer("headers")
    def _masked(self, headers: dict[str, str]) -> dict[str, str]:
        return masked(headers)


class Attempt(BaseModel):
    """One HTTP try of a run."""

    number: int
    started_at: UtcTime
    duration_ms: float
    status_code: int | None
    outcome: str
    error: str | None
    response_excerpt: str | None
    response_truncated: bool


class Run(BaseModel):
    """One fire time of a job."""

    id: str
    job_id: str
    scheduled_for: UtcTime
    trigger: str
    status: str
    attempt_count: int
    lateness_ms: float | None = Field(
        description="From the fire time to the start of the first attempt."
    )
    queued_at: UtcTime | None
    started_at: UtcTime | None
    finished_at: UtcTime | None
    next_attempt_at: UtcTime | None
    last_status_code: int | None
    last_error: str | None


class RunDetail(Run):
    attempts: list[Attempt]


class ErrorMessage(BaseModel):
    """An error answer other than a 422: what went wrong, in words."""

    detail: str


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    database: str
    queue: str
    mode: Literal["embedded", "servers"]


def check_target(value: str) -> str:
    """An absolute http(s) URL with a host, or a ValueError saying why not.

    The URL is read as the sender will read it, and refused when another
    parser would read another host or port in it; whether its address is
    allowed depends on the settings (``web.policy``).
    """
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("must not contain whitespace or control characters")
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    try:
        host = host_of(value)
    except (RequestException, LocationParseError, ValueError):
        raise ValueError("is not a valid URL") from None
    if not host:
        raise ValueError("must name a host")
    check_host_name(host)
    check_one_reading(value)
    return value


def check_header(name: str, value: str) -> None:
    """Refuse header names and values that would break or forge a request."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name {name!r} is not a valid HTTP token")
    lowered = name.lower()
    if lowered in _RESERVED_HEADERS or lowered.startswith("x-pingpay-"):
        raise ValueError(
            f"header {name!r} is set by the scheduler or belongs to the connection"
        )
    if not _HEADER_VALUE.fullmatch(value):
        raise ValueError(
            f"header {name!r} has a control character, a leading blank or a "
            "character beyond Latin-1 in its value"
        )


#: Times past this year are refused: converting them between zones, or
#: stepping a schedule past them, would leave the years a datetime can hold.
LAST_YEAR = 9998


def check_year(value: datetime) -> None:
    if not 1 < value.year <= LAST_YEAR:
        raise ValueError(f"must be between the years 2 and {LAST_YEAR}")


def check_storable_text(value: str) -> None:
    """Refuse text a database cannot store: NUL, or half of a surrogate pair."""
    # PostgreSQL text columns cannot hold NUL; no field has a use for it.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (a lone surrogate)") from None
