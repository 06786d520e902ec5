"""Instants in UTC: the one clock read and the one wire format of the service."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current instant as an aware UTC datetime."""
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def iso_z(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix, as every API response carries."""
    if value is None:
        return None
    text = as_utc(value).isoformat()
    return text.replace("+00:00", "Z")
