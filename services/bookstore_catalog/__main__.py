"""`bookstore-catalog [serve|migrate]`."""

from __future__ import annotations

import sys

from bookstore_common.cli import run_cli
from bookstore_common.migrations import run_migrations

from bookstore_catalog.config import SCHEMA, CatalogSettings
from bookstore_catalog.sample_data import load_sample_books

VERSION_TABLE = SCHEMA.version_table


def migrate(settings: CatalogSettings) -> None:
    """Bring the schema to head; with SAMPLE_DATA, then seed an empty catalog (once)."""
    run_migrations(
        settings,
        package=SCHEMA.package,
        version_table=VERSION_TABLE,
        after_upgrade=load_sample_books if settings.sample_data else None,
    )


def main() -> int:
    """Console-script entry point."""
    return run_cli(
        "catalog",
        settings_factory=CatalogSettings,
        app_factory="bookstore_catalog.app:create_app_from_env",
        migrate=migrate,
        schema=SCHEMA,
    )


if __name__ == "__main__":
    sys.exit(main())
