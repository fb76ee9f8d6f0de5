"""Full-text search (PostgreSQL GIN, SQLite FTS5) and the price and stock indexes.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22

Expand-only: new indexes (and, on SQLite, a full-text table kept by triggers); no column
changes, so a catalog that holds data upgrades in place. On PostgreSQL the full-text index
is an expression index, not a stored column: adding a generated column would rewrite the
whole table under an exclusive lock. The indexes are built inside the migration's
transaction (CREATE INDEX blocks writes to books, never reads, for the build: about 30 s at
1,000,000 books on 2 cores), so a failed upgrade leaves nothing half-built and a retry
starts clean; CONCURRENTLY would need its own transaction per index and leave INVALID
indexes behind a failure.
"""

import logging
import sqlite3
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

# Must stay the expression of bookstore_catalog.models.search_document (the queries repeat
# it; the planner uses the index only for the same expression).
_DOCUMENT = (
    "setweight(to_tsvector('english'::regconfig, title), 'A') || "
    "setweight(to_tsvector('english'::regconfig, author), 'B') || "
    "setweight(to_tsvector('english'::regconfig, description), 'C')"
)

# SQLite: an external-content FTS5 table over books (porter stemming), kept by triggers.
_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE books_fts USING fts5(title, author, description, "
    "content='books', content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')",
    "CREATE TRIGGER books_fts_insert AFTER INSERT ON books BEGIN "
    "INSERT INTO books_fts (rowid, title, author, description) "
    "VALUES (new.id, new.title, new.author, new.description); END",
    "CREATE TRIGGER books_fts_delete AFTER DELETE ON books BEGIN "
    "INSERT INTO books_fts (books_fts, rowid, title, author, description) "
    "VALUES ('delete', old.id, old.title, old.author, old.description); END",
    "CREATE TRIGGER books_fts_update AFTER UPDATE OF title, author, description ON books BEGIN "
    "INSERT INTO books_fts (books_fts, rowid, title, author, description) "
    "VALUES ('delete', old.id, old.title, old.author, old.description); "
    "INSERT INTO books_fts (rowid, title, author, description) "
    "VALUES (new.id, new.title, new.author, new.description); END",
    "INSERT INTO books_fts (books_fts) VALUES ('rebuild')",
)


_BTREE_INDEXES = (
    "ix_books_price_quantity",
    "ix_books_id_price_quantity",
    "ix_books_id_in_stock",
    "ix_books_id_out_of_stock",
)


def _sqlite_has_fts5() -> bool:
    """Whether this Python's SQLite library was built with FTS5."""
    with sqlite3.connect(":memory:") as probe:
        try:
            probe.execute("CREATE VIRTUAL TABLE probe USING fts5(x)")
        except sqlite3.OperationalError:
            return False
    return True


def upgrade() -> None:
    """Index price and stock (for id-ordered pages too) and the text for full-text search."""
    op.create_index("ix_books_price_quantity", "books", ["price", "quantity"])
    op.create_index("ix_books_id_price_quantity", "books", ["id", "price", "quantity"])
    for name, condition in (("in_stock", "quantity > 0"), ("out_of_stock", "quantity = 0")):
        op.create_index(
            f"ix_books_id_{name}",
            "books",
            ["id"],
            postgresql_where=sa.text(condition),
            sqlite_where=sa.text(condition),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE INDEX ix_books_search ON books USING gin (({_DOCUMENT}))")
        op.execute("ANALYZE books")  # statistics of the new expression, for the planner
    elif _sqlite_has_fts5():
        for statement in _SQLITE_FTS:
            op.execute(statement)
    else:
        log.warning("SQLite has no FTS5: q searches fall back to LIKE (dev mode only)")


def downgrade() -> None:
    """Drop the search structures (0003's trigram indexes stay)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_books_search")
    else:
        for name in ("books_fts_update", "books_fts_delete", "books_fts_insert"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS books_fts")
    for name in _BTREE_INDEXES:
        op.drop_index(name, table_name="books")
