"""The job store: SQLAlchemy Core over SQLite (embedded) or PostgreSQL."""

from sqlalchemy import Engine, text

from shared.store.engine import create_store_engine
from shared.store.jobs import JobStore
from shared.store.runs import RunStore


class Store:
    """Jobs, runs and attempts in one database."""

    def __init__(self, engine: Engine, max_in_flight: int = 0) -> None:
        self.engine = engine
        self.jobs = JobStore(engine)
        self.runs = RunStore(engine, max_in_flight)

    @classmethod
    def from_url(cls, url: str, pool_size: int = 10, max_in_flight: int = 0) -> "Store":
        """A store at ``url``; ``max_in_flight`` as :class:`RunStore` says."""
        return cls(create_store_engine(url, pool_size), max_in_flight)

    def ping(self) -> None:
        """Raise when the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    def close(self) -> None:
        self.runs.close()
        self.engine.dispose()
