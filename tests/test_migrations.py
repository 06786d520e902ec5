"""The migrations build exactly the schema the code is written against."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from shared.store import migrate
from shared.store.tables import metadata


def test_migrations_match_the_tables(backend):
    engine = create_engine(backend.settings().database_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        differences = compare_metadata(context, metadata)
        revision = context.get_current_revision()
    engine.dispose()

    assert differences == []
    assert revision == migrate.head()
