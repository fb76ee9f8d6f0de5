"""`bookstore-orders` serves the API; `bookstore-orders migrate` migrates and exits."""

from __future__ import annotations

import sys

from bookstore_common.cli import run_cli
from bookstore_common.migrations import run_migrations

from bookstore_orders.config import SCHEMA, OrdersSettings

VERSION_TABLE = SCHEMA.version_table


def migrate(settings: OrdersSettings) -> None:
    """Upgrade the orders schema to head (once, even from many processes at a time)."""
    run_migrations(settings, package=SCHEMA.package, version_table=VERSION_TABLE)


def main() -> int:
    """Console script entry point."""
    return run_cli(
        "orders",
        settings_factory=OrdersSettings,
        app_factory="bookstore_orders.app:create_app_from_env",
        migrate=migrate,
        schema=SCHEMA,
    )


if __name__ == "__main__":
    sys.exit(main())
