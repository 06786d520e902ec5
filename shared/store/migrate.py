"""Schema migrations with Alembic, run by ``db upgrade`` or the migrate function."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from shared.store.engine import create_store_engine

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(engine: Engine | None) -> Config:
    """An Alembic configuration for our migrations folder, no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database's schema up to ``revision``."""
    config = alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def upgrade_database(url: str) -> str | None:
    """Bring the database at ``url`` to the latest revision; answers it."""
    engine = create_store_engine(url)
    try:
        upgrade(engine)
        return current(engine)
    finally:
        engine.dispose()


def current(engine: Engine) -> str | None:
    """The revision the database is at, or None when it has no schema yet."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head() -> str:
    """The latest revision this code knows."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()
