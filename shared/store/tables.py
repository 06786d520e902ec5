"""The schema: jobs, their runs (one per fire time) and each run's attempts.

Migrations under ``shared/migrations`` create these tables; this module is the
SQLAlchemy Core description the queries are written against.
"""

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator):
    """An aware UTC datetime on the way out, whatever the database keeps.

    SQLite has no time zones and hands back naive values; PostgreSQL keeps
    ``timestamptz``. Both come back as aware UTC so no code compares a naive
    time with an aware one.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("type", String(20), nullable=False),
    Column("target", Text, nullable=False),
    Column("method", String(10), nullable=False),
    Column("headers", JSON, nullable=False),
    Column("payload", JSON),
    Column("timeout_seconds", Float, nullable=False),
    Column("schedule_type", String(20), nullable=False),
    Column("cron_expression", String(200)),
    Column("specific_time", UTCDateTime),
    Column("interval", String(10)),
    Column("interval_value", Integer),
    Column("timezone", String(64), nullable=False),
    Column("start_at", UTCDateTime),
    Column("end_at", UTCDateTime),
    Column("anchor_at", UTCDateTime),
    Column("retry", JSON, nullable=False),
    Column("max_concurrency", Integer),
    Column("overlap_policy", String(10), nullable=False),
    Column("misfire_policy", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("next_run_at", UTCDateTime),
    Column("last_run_at", UTCDateTime),
    Column("last_run_status", String(10)),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("status_reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Index("ix_jobs_due", "status", "next_run_at"),
    Index("ix_jobs_created", "created_at", "id"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column(
        "job_id",
        String(36),
        ForeignKey("jobs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("scheduled_for", UTCDateTime, nullable=False),
    Column("trigger", String(10), nullable=False),
    Column("status", String(10), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime),
    Column("lease_expires_at", UTCDateTime),
    Column("queued_at", UTCDateTime),
    Column("started_at", UTCDateTime),
    Column("finished_at", UTCDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("job_id", "scheduled_for", name="uq_runs_job_fire_time"),
    Index("ix_runs_status_due", "status", "scheduled_for"),
    Index("ix_runs_finished", "finished_at"),
)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "run_id",
        String(36),
        ForeignKey("runs.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("number", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("status_code", Integer),
    Column("outcome", String(10), nullable=False),
    Column("error", Text),
    Column("response_excerpt", Text),
    Column("response_truncated", Boolean, nullable=False, default=False),
    Index("ix_attempts_run", "run_id", "number"),
)

delivery_slots = Table(
    "delivery_slots",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("run_id", String(36)),
    Column("lease_expires_at", UTCDateTime),
)
"""One row per attempt the whole service may run at once; see ``slots.py``."""
