"""Migrate function: creates or migrates the schema, invoked once per deploy.

The database of a function platform usually sits in a private network that
only the functions reach, so the schema is migrated from a function too.
"""

from typing import Any

from shared.logs import configure_logging
from shared.settings import get_settings
from shared.store.migrate import upgrade_database

settings = get_settings()
configure_logging(settings.log_level, settings.log_format)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Upgrade the schema to the latest revision; answers that revision."""
    return {"revision": upgrade_database(settings.database_url)}
