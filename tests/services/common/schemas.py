"""Helpers of the schema-upgrade tests: both services' migrations, their commands, and
reading or forging what a database's version table holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from alembic.config import Config
from alembic.script import ScriptDirectory
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import SCHEMA as CATALOG_SCHEMA
from bookstore_catalog.config import CatalogSettings
from bookstore_common.schema_state import ServiceSchema
from bookstore_common.settings import ServiceSettings
from bookstore_orders.app import create_app as create_orders_app
from bookstore_orders.config import SCHEMA as ORDERS_SCHEMA
from bookstore_orders.config import OrdersSettings
from fastapi import FastAPI
from psycopg import sql

# A revision no migration of this code has: what a newer version leaves in the version table.
NEWER_REVISION = "9999_from_a_newer_version"


@dataclass(frozen=True)
class Service:
    """One service under test: its schema, settings class and app factory."""

    schema: ServiceSchema
    settings_class: type[ServiceSettings]
    create_app: Any  # (settings) -> FastAPI, typed per service

    @property
    def name(self) -> str:
        """catalog or orders."""
        return self.schema.service

    @property
    def previous(self) -> str:
        """The revision just before head: what the previous version of the code migrated to."""
        config = Config()
        config.set_main_option("script_location", f"{self.schema.package}:migrations")
        down = ScriptDirectory.from_config(config).get_revision(self.schema.head).down_revision
        assert isinstance(down, str), f"{self.name} head {self.schema.head} has no single parent"
        return down

    def settings(self, url: str, **values: Any) -> ServiceSettings:
        """Settings on database `url` with a known API key and a small pool."""
        return self.settings_class(database_url=url, api_key="k", database_pool_size=2, **values)

    def app(self, url: str) -> FastAPI:
        """The service's app on `url` (no lifespan: /health needs none)."""
        app: FastAPI = self.create_app(self.settings(url))
        return app

    def command(self, *args: str) -> list[str]:
        """`bookstore-<name> args...` from this virtualenv."""
        return [str(Path(sys.executable).with_name(f"bookstore-{self.name}")), *args]


SERVICES = {
    "catalog": Service(CATALOG_SCHEMA, CatalogSettings, create_catalog_app),
    "orders": Service(ORDERS_SCHEMA, OrdersSettings, create_orders_app),
}


def revisions(url: str, schema: ServiceSchema) -> list[str]:
    """What the version table holds ([] when it does not exist)."""
    with psycopg.connect(url, autocommit=True) as connection:
        exists = connection.execute("SELECT to_regclass(%s)", (schema.version_table,)).fetchone()
        if exists is None or exists[0] is None:
            return []
        table = sql.Identifier(schema.version_table)
        rows = connection.execute(sql.SQL("SELECT version_num FROM {}").format(table))
        return sorted(str(row[0]) for row in rows)


def set_revision(url: str, schema: ServiceSchema, revision: str) -> None:
    """Forge the version table, as if another version of the code had migrated it."""
    with psycopg.connect(url, autocommit=True) as connection:
        table = sql.Identifier(schema.version_table)
        connection.execute(sql.SQL("UPDATE {} SET version_num = %s").format(table), (revision,))


def schema_snapshot(url: str) -> list[tuple[str, ...]]:
    """Every table, column (with type and nullability) and index of the database."""
    with psycopg.connect(url, autocommit=True) as connection:
        columns = connection.execute(
            "SELECT table_name, column_name, data_type, is_nullable"
            " FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
        indexes = connection.execute(
            "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        ).fetchall()
    return sorted(tuple(str(value) for value in row) for row in [*columns, *indexes])


def run_command(
    service: Service, *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run `bookstore-<service> args...` with `env` added to ours; it must finish."""
    return subprocess.run(
        service.command(*args),
        env=os.environ | env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def json_lines(output: str) -> list[dict[str, Any]]:
    """The JSON log lines of a command's output."""
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]
