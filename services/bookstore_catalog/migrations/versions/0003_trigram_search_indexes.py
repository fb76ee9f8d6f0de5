"""Trigram (pg_trgm) GIN indexes so `ILIKE '%text%'` book searches need no full scan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

# The columns `GET /books` searches with ILIKE (q, title, author; q also matches isbn).
SEARCHED_COLUMNS = ("title", "author", "isbn")

# pg_trgm is a trusted extension (a database owner may create it on PostgreSQL 13+), but
# an external database's user may lack the right, or the server may not ship it: then the
# search keeps working without the indexes, and a NOTICE says why.
_CREATE_EXTENSION = """
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN insufficient_privilege OR feature_not_supported OR undefined_file THEN
    RAISE NOTICE 'pg_trgm cannot be created (%): book search runs without trigram indexes',
        SQLERRM;
END
$$
"""
_EXTENSION_SCHEMA = sa.text(
    "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
    "WHERE e.extname = 'pg_trgm'"
)


def _index_name(column: str) -> str:
    return f"ix_books_{column}_trgm"


def upgrade() -> None:
    """Create pg_trgm when allowed, then a GIN trigram index per searched column."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite (dev mode): a full scan of a small file is fine
    op.execute(_CREATE_EXTENSION)
    schema = bind.execute(_EXTENSION_SCHEMA).scalar()
    if schema is None:
        log.warning("pg_trgm is not installed: book search runs without trigram indexes")
        return
    opclass = f'"{schema}".gin_trgm_ops'  # the extension may live outside search_path
    for column in SEARCHED_COLUMNS:
        op.create_index(
            _index_name(column),
            "books",
            [column],
            postgresql_using="gin",
            postgresql_ops={column: opclass},
        )


def downgrade() -> None:
    """Drop the trigram indexes (the extension stays: others may use it)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in SEARCHED_COLUMNS:
        op.drop_index(_index_name(column), table_name="books", if_exists=True)
