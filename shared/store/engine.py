"""Connections to the job store: SQLite embedded, PostgreSQL in servers mode."""

import logging

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

log = logging.getLogger("pingpay.store")


def create_store_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine for ``url`` with the settings each database needs."""
    if make_url(url).get_backend_name() == "sqlite":
        return _sqlite_engine(url)
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        # Error messages leave bound values out: they can hold the text of a
        # target's answer, which is the target's business.
        hide_parameters=True,
        pool_recycle=1800,
        connect_args={
            "connect_timeout": 5,
            # A server that vanished from the network (no reset, no answer)
            # is noticed in seconds instead of the system's two hours.
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 3,
            "tcp_user_timeout": 20_000,
        },
    )


def _sqlite_engine(url: str) -> Engine:
    """SQLite in WAL mode with every transaction taken as a writer.

    ``BEGIN IMMEDIATE`` makes concurrent transactions queue for the write
    lock at their start instead of failing halfway through, which is what
    gives the tick and the workers the same serialisation that row locks
    give them on PostgreSQL.
    """
    path = make_url(url).database
    if path and path != ":memory:":
        from pathlib import Path

        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
