"""Orders migrations: from empty, from two processes at once, and on embedded SQLite."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from bookstore_orders.__main__ import VERSION_TABLE, migrate
from bookstore_orders.config import OrdersSettings
from bookstore_orders.models import Base
from sqlalchemy import create_engine

from tests.services.conftest import at_revision

ORDERS_TABLES = {"orders", "order_items", "idempotency_keys", VERSION_TABLE}
HEAD = "0005"
ORDERS_COMMAND = str(Path(sys.executable).with_name("bookstore-orders"))


def tables_and_version(url: str) -> tuple[set[str], str]:
    """The public tables of a database and the orders' Alembic revision."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = {row[0] for row in rows}
        version = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    assert version is not None
    return tables, str(version[0])


def test_upgrade_from_empty_creates_only_orders_tables_with_own_version_table(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("orders_migrate")
    migrate(OrdersSettings(database_url=url))
    migrate(OrdersSettings(database_url=url))  # a second run is a no-op
    assert tables_and_version(url) == (ORDERS_TABLES, HEAD)


def test_two_processes_running_migrate_at_once_both_succeed(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("orders_race")
    env = os.environ | {"DATABASE_URL": url, "LOG_LEVEL": "warning"}
    processes = [
        subprocess.Popen(
            [ORDERS_COMMAND, "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=60)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert tables_and_version(url) == (ORDERS_TABLES, HEAD)


def test_without_database_url_migrate_uses_an_embedded_sqlite_file(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env |= {"SQLITE_PATH": str(tmp_path / "orders.db"), "LOG_LEVEL": "warning"}
    result = subprocess.run(
        [ORDERS_COMMAND, "migrate"], env=env, capture_output=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with sqlite3.connect(tmp_path / "orders.db") as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert {row[0] for row in rows} == ORDERS_TABLES


def test_upgrade_from_0003_keeps_orders_and_drops_the_release_queue(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("orders_upgrade")
    settings = OrdersSettings(database_url=url)
    at_revision(
        settings,
        "bookstore_orders",
        VERSION_TABLE,
        "0003",
        "INSERT INTO orders (status, customer_name, customer_email, total_price, "
        "created_at, updated_at) VALUES ('confirmed', 'Ada', 'ada@example.com', 9.99, "
        "now(), now())",
    )
    migrate(settings)
    assert tables_and_version(url) == (ORDERS_TABLES, HEAD)
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT status, line_count, reservation_token FROM orders"
        ).fetchone()
    assert row == ("confirmed", 0, "")


def test_upgrade_from_0004_keeps_failed_orders_and_adds_requested_items_empty(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("orders_upgrade_0005")
    settings = OrdersSettings(database_url=url)
    at_revision(
        settings,
        "bookstore_orders",
        VERSION_TABLE,
        "0004",
        "INSERT INTO orders (status, customer_name, customer_email, total_price, "
        "created_at, updated_at) VALUES ('failed', 'Ada', 'ada@example.com', 0, now(), now())",
    )
    migrate(settings)
    assert tables_and_version(url) == (ORDERS_TABLES, HEAD)
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT status, requested_items FROM orders").fetchone()
    assert row == ("failed", None)


def test_migrations_match_the_models(orders_database_url: str) -> None:
    engine = create_engine(orders_database_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "version_table": VERSION_TABLE}
            )
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []
