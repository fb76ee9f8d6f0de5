"""Run a service's Alembic migrations programmatically, once, under an advisory lock.

Each service keeps its migrations in `<package>/migrations/` (env.py + versions/) and its
own version table, so both services can share one database. No alembic.ini is needed.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, MetaData, create_engine, func, select
from sqlalchemy.pool import NullPool

from bookstore_common.schema_state import SchemaAheadError, ServiceSchema
from bookstore_common.settings import ServiceSettings

log = logging.getLogger(__name__)

AfterUpgrade = Callable[[Connection], None]


def advisory_lock_key(version_table: str) -> int:
    """A stable 32-bit key for `pg_advisory_lock`, derived from the version table name."""
    return zlib.crc32(version_table.encode())


def alembic_config(package: str, connection: Connection, version_table: str) -> Config:
    """An in-memory Alembic config for `<package>/migrations` bound to `connection`."""
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    config.attributes["connection"] = connection
    config.attributes["version_table"] = version_table
    return config


def run_migrations(
    settings: ServiceSettings,
    *,
    package: str,
    version_table: str,
    revision: str = "head",
    after_upgrade: AfterUpgrade | None = None,
) -> None:
    """Upgrade the service's schema to `revision`, then run `after_upgrade` (e.g. seed data).

    On PostgreSQL both steps run while holding a session advisory lock, so replicas that
    start together wait for one another and the work happens once. Uses the sync driver.
    Raises SchemaAheadError, having changed nothing, when the database is at a revision this
    code does not know (a newer version migrated it: running this one would be a downgrade).
    """
    schema = ServiceSchema(package.removeprefix("bookstore_"), package, version_table)
    url, connect_args = settings.sync_engine_args()
    if settings.uses_sqlite:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args=connect_args, poolclass=NullPool)
    is_postgres = engine.dialect.name == "postgresql"
    key = advisory_lock_key(version_table)
    try:
        with engine.connect() as connection:
            if is_postgres:
                connection.execute(select(func.pg_advisory_lock(key)))
                connection.commit()
            try:
                refuse_unknown_revision(connection, schema)
                log.info(
                    "migrating",
                    extra={"database": settings.safe_database_description(), "to": revision},
                )
                command.upgrade(alembic_config(package, connection, version_table), revision)
                connection.commit()
                if after_upgrade is not None:
                    with connection.begin():
                        after_upgrade(connection)
            finally:
                if is_postgres:
                    connection.rollback()
                    connection.execute(select(func.pg_advisory_unlock(key)))
                    connection.commit()
    finally:
        engine.dispose()


def refuse_unknown_revision(connection: Connection, schema: ServiceSchema) -> None:
    """Raise SchemaAheadError when the version table holds a revision this code lacks."""
    context = MigrationContext.configure(connection, opts={"version_table": schema.version_table})
    current = context.get_current_heads()
    connection.commit()  # end the read's transaction; the upgrade runs in its own
    unknown = schema.unknown_revision(current)
    if unknown is not None:
        raise SchemaAheadError(unknown, schema.head)


def run_env(context: EnvironmentContext, target_metadata: MetaData) -> None:
    """The body of every service's migrations/env.py: migrate on the given connection."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through bookstore_common.migrations.run_migrations")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=context.config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
