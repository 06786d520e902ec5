"""Settings from environment variables and a ``.env`` file.

The original service's names are kept (``POSTGRES_URL``, ``REDIS_HOST``,
``REDIS_PORT``, ``PORT``). Without a PostgreSQL URL and a Redis address the
service runs embedded: SQLite files under ``DATA_DIR`` hold the jobs and the
queue.
"""

import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.targets import allowlist_entry

#: A hashed API key as configured: ``sha256:`` and the hex digest of the key.
HASHED_KEY = re.compile(r"sha256:[0-9a-f]{64}")

#: Plain keys shorter than this are refused: a guessable key is no key.
MIN_KEY_LENGTH = 16

#: The jobs table's name column holds this many characters.
NAME_COLUMN_LENGTH = 200


class Settings(BaseSettings):
    """Every setting the service reads, with its default."""

    # Errors name the setting but never echo its value: keys and URLs with
    # passwords would end up in the logs of whatever started the process.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    postgres_url: str | None = Field(
        None, description="PostgreSQL URL; without it jobs live in SQLite."
    )
    redis_url: str | None = Field(
        None, description="Redis URL; wins over REDIS_HOST and REDIS_PORT."
    )
    redis_host: str | None = Field(None, description="Redis host name.")
    redis_port: int = Field(6379, description="Redis port.")
    host: str = Field(
        "0.0.0.0", description="Address the API and a worker's metrics listen on."
    )
    port: int = Field(3000, description="Port the API listens on.")
    metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="Port a worker serves its Prometheus metrics on; 0 for none.",
    )
    data_dir: Path = Field(
        Path("data"), description="Where embedded mode keeps its SQLite files."
    )
    worker_concurrency: int = Field(
        8, ge=1, le=512, description="Deliveries one worker process runs at once."
    )
    max_deliveries_in_flight: int = Field(
        100,
        ge=0,
        le=100_000,
        description="Deliveries the whole service runs at once, across every "
        "worker and execute invocation; 0 for no limit beyond each process's "
        "WORKER_CONCURRENCY.",
    )
    queue_name: str = Field("pingpay", description="Name of the Huey queue.")
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    log_format: Literal["text", "json"] = Field(
        "text", description="text for terminals, json for log collectors."
    )
    tick_interval_seconds: float = Field(
        60, gt=0, description="How often a long-running worker ticks."
    )
    lookahead_seconds: float = Field(
        90,
        ge=0,
        description="How far ahead a tick turns fire times into runs; longer "
        "than the tick interval, so a slow tick never leaves a fire time late.",
    )
    tick_batch_size: int = Field(
        500, ge=1, description="Jobs claimed per transaction by a tick."
    )
    misfire_grace_seconds: float = Field(
        60,
        ge=0,
        description="A fire time later than this when first seen counts as missed.",
    )
    max_catch_up_runs: int = Field(
        100, ge=1, description="Most catch-up runs one job gets under run_all."
    )
    stale_after_seconds: float = Field(
        120,
        gt=0,
        description="A run whose retry is this long overdue, or that was queued "
        "five times this long ago, is re-queued (a pending run: 5 s past due).",
    )
    lease_margin_seconds: float = Field(
        30, ge=0, description="Added to a job's timeout to make a worker's lease."
    )
    execute_margin_seconds: float = Field(
        5,
        ge=1,
        description="Time an execute function keeps free at the end of its "
        "invocation, beyond the attempts it started: for recording their "
        "outcomes and for one blocking read of the queue (up to a second).",
    )
    max_excerpt_bytes: int = Field(
        32768, ge=0, description="Most response bytes kept per attempt."
    )
    signing_secret: SecretStr | None = Field(
        None, description="Signs every request (HMAC-SHA256) when set."
    )
    signing_secret_next: SecretStr | None = Field(
        None, description="A second secret that also signs, for rotation."
    )
    fail_after_consecutive_failures: int = Field(
        0,
        ge=0,
        description="A recurring job whose runs fail this many times in a row "
        "becomes failed; 0 never.",
    )
    run_retention_days: float = Field(
        30, ge=0, description="Finished runs older than this are pruned; 0 keeps all."
    )
    db_retry_seconds: float = Field(
        300,
        ge=0,
        description="How long a worker retries writing an attempt's outcome "
        "while the database does not answer.",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated API keys, each plain or sha256:<hex digest>.",
    )
    allow_no_auth: bool = Field(
        False, description="Let `api` serve without API keys: anyone may use it."
    )
    forwarded_allow_ips: str = Field(
        "127.0.0.1,::1",
        description="Comma-separated addresses of the proxies whose "
        "X-Forwarded-Proto and X-Forwarded-For the API believes; * for any.",
    )
    allow_private_targets: bool = Field(
        False, description="Let targets point at private and internal addresses."
    )
    target_allowlist: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated hosts or networks a target may point at "
        "although they are private.",
    )
    max_request_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body the API reads."
    )
    max_payload_bytes: int = Field(
        262_144, ge=0, description="Largest job payload, as JSON."
    )
    max_job_headers: int = Field(50, ge=0, description="Most headers one job sends.")
    max_header_bytes: int = Field(
        8192, ge=1, description="Largest job header, name and value together."
    )
    max_name_length: int = Field(
        NAME_COLUMN_LENGTH,
        ge=1,
        le=NAME_COLUMN_LENGTH,
        description="Longest job name, in characters.",
    )
    max_description_length: int = Field(
        2000, ge=0, description="Longest job description, in characters."
    )
    max_page_size: int = Field(
        1000, ge=1, description="Most items one page of a list may hold."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        return _comma_separated(value)

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for key in keys:
            _check_key(key.get_secret_value())
        return keys

    @field_validator("target_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: object) -> object:
        return _comma_separated(value)

    @field_validator("target_allowlist")
    @classmethod
    def _check_allowlist(cls, entries: list[str]) -> list[str]:
        return [str(allowlist_entry(entry)) for entry in entries]

    @model_validator(mode="after")
    def _normalise_urls(self) -> "Settings":
        if self.postgres_url:
            self.postgres_url = _sqlalchemy_postgres_url(self.postgres_url)
        if not self.redis_url and self.redis_host:
            self.redis_url = f"redis://{self.redis_host}:{self.redis_port}/0"
        return self

    @property
    def signing_secrets(self) -> list[str]:
        """The secrets every request is signed with, current first."""
        secrets = (self.signing_secret, self.signing_secret_next)
        return [secret.get_secret_value() for secret in secrets if secret]

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL of the job store."""
        if self.postgres_url:
            return self.postgres_url
        return f"sqlite:///{self.data_dir / 'jobs.db'}"

    @property
    def embedded(self) -> bool:
        """True when neither PostgreSQL nor Redis is configured."""
        return not self.postgres_url and not self.redis_url


def _comma_separated(value: object) -> object:
    """A comma-separated setting as a list, without blanks; lists pass as they are."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_key(key: str) -> None:
    """Refuse a malformed hashed key, or a plain key short enough to guess."""
    # Any spelling of the prefix: a hash written "SHA256:..." must not quietly
    # become a plain key that the hash itself unlocks.
    if key.lower().startswith("sha256:"):
        if not HASHED_KEY.fullmatch(key):
            raise ValueError("a hashed key is sha256: and 64 lowercase hex digits")
        return
    if len(key) < MIN_KEY_LENGTH:
        raise ValueError(
            f"a plain key must be at least {MIN_KEY_LENGTH} characters "
            "(`pingpay-scheduler api-key` makes one)"
        )


def _sqlalchemy_postgres_url(url: str) -> str:
    """Point a plain ``postgresql://`` URL at the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@lru_cache
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
