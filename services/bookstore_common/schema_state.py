"""Where a service's database schema stands against this code's Alembic head.

The migration policy (expand-then-contract: every migration is readable by the previous
version's code) makes a schema AHEAD of the code safe to serve, while a schema BEHIND it is
not: the code would query columns that do not exist yet.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Iterable
from dataclasses import dataclass

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.pool import NullPool

from bookstore_common.settings import ServiceSettings

# Seconds the best-effort read of the revision (for a failed migration's report) may take.
REVISION_READ_TIMEOUT_SECONDS = 5


class SchemaState(enum.Enum):
    """The schema against the code's head."""

    MISSING = "missing"  # no version table, or an empty one: never migrated
    BEHIND = "behind"  # a revision older than head: `migrate` brings it up
    CURRENT = "current"  # at head
    AHEAD = "ahead"  # a revision this code does not know: a newer version migrated it

    @property
    def servable(self) -> bool:
        """Whether this code may serve on the schema (expand-then-contract)."""
        return self in (SchemaState.CURRENT, SchemaState.AHEAD)


class SchemaAheadError(Exception):
    """The database is at a revision this code does not know: migrating would be a downgrade."""

    def __init__(self, revision: str, head: str) -> None:
        super().__init__(
            f"the database schema is at revision {revision}, which this version does not know "
            f"(its head is {head}): refusing to migrate below an applied schema; run a version "
            f"that knows {revision}"
        )
        self.revision = revision
        self.head = head


@functools.cache
def _script(package: str) -> ScriptDirectory:
    """The parsed `<package>/migrations` scripts (parsed once per process)."""
    config = Config()
    config.set_main_option("script_location", f"{package}:migrations")
    return ScriptDirectory.from_config(config)


@dataclass(frozen=True)
class ServiceSchema:
    """A service's migrations: its name, the package holding them, its version table."""

    service: str
    package: str
    version_table: str

    @property
    def command(self) -> str:
        """The command that migrates this service's schema."""
        return f"bookstore-{self.service} migrate"

    @property
    def head(self) -> str:
        """This code's head revision (the migrations are one linear history)."""
        head = _script(self.package).get_current_head()
        if head is None:
            raise RuntimeError(f"{self.package} has no migrations")
        return head

    def knows(self, revision: str) -> bool:
        """Whether `revision` is one of this code's migrations."""
        return revision in _known_revisions(self.package)

    def state_of(self, revisions: Iterable[str]) -> SchemaState:
        """The state of a database whose version table holds `revisions`."""
        present = set(revisions)
        if not present:
            return SchemaState.MISSING
        if any(not self.knows(revision) for revision in present):
            return SchemaState.AHEAD
        return SchemaState.CURRENT if self.head in present else SchemaState.BEHIND

    def unknown_revision(self, revisions: Iterable[str]) -> str | None:
        """The first revision this code does not know, if any."""
        return next((revision for revision in revisions if not self.knows(revision)), None)

    def not_ready_detail(self, revisions: Iterable[str]) -> str:
        """Why a service cannot serve on this schema, and the fix (for /health/ready)."""
        present = sorted(revisions)
        if not present:
            at = (
                f"The database has no {self.service} schema yet"
                f" ({self.version_table} is absent or empty)"
            )
        else:
            at = f"The database schema is at revision {', '.join(present)}"
        return f"{at}; this version needs {self.head}. Run `{self.command}`."

    async def read_revisions(self, connection: AsyncConnection) -> tuple[str, ...]:
        """The revisions in the version table (empty when the table does not exist)."""
        if connection.dialect.name == "sqlite":
            exists = text("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = :t")
        else:
            exists = text(
                "SELECT count(*) FROM pg_catalog.pg_tables"
                " WHERE tablename = :t AND schemaname = ANY (current_schemas(false))"
            )
        if not (await connection.execute(exists, {"t": self.version_table})).scalar_one():
            return ()
        table = connection.dialect.identifier_preparer.quote(self.version_table)
        rows = await connection.execute(text(f"SELECT version_num FROM {table}"))  # noqa: S608
        return tuple(str(row[0]) for row in rows)

    def read_revisions_sync(self, settings: ServiceSettings) -> tuple[str, ...]:
        """The revisions in the version table, on a short-lived sync connection."""
        url, connect_args = settings.sync_engine_args()
        if not settings.uses_sqlite:
            connect_args = connect_args | {"connect_timeout": REVISION_READ_TIMEOUT_SECONDS}
        engine = create_engine(url, connect_args=connect_args, poolclass=NullPool)
        try:
            with engine.connect() as connection:
                context = MigrationContext.configure(
                    connection, opts={"version_table": self.version_table}
                )
                return tuple(context.get_current_heads())
        finally:
            engine.dispose()


@functools.cache
def _known_revisions(package: str) -> frozenset[str]:
    """Every revision id of the package's migrations."""
    return frozenset(script.revision for script in _script(package).walk_revisions())
