"""A stored full-text document per book (PostgreSQL), kept by a trigger, with GIN indexes.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28

Why: ranking (sort=relevance) read the document of every match, and with 0004's expression
index that meant rebuilding each match's tsvector from its text (~10 µs a match, 230 ms for
the commonest word of a million books). A stored column is read instead. A second GIN
index, of the title and author words alone (an expression, no column), lets a one-word
sort=relevance rank only the matches that can make the page (search._ranked_text_search).

Expand-only, and safe on a large catalog that is serving:
- the column is nullable without a default (no table rewrite; ADD COLUMN holds its lock for
  an instant);
- a BEFORE INSERT/UPDATE trigger fills it for every row written from then on, by this
  release or the one before (which never names the column);
- existing rows are filled in batches of BACKFILL_BATCH ids, each its own short transaction
  (row locks on one batch at a time, never the table);
- the indexes are built CONCURRENTLY (writes go on), after the backfill so the backfill does
  not update them row by row; an INVALID index left by an interrupted run is dropped and
  rebuilt;
- VACUUM (ANALYZE) then removes the rows' old versions and restores index-only scans.
Every step is repeatable, so a migration interrupted anywhere (its version is stamped only
at the end) is simply run again. 0004's expression index `ix_books_search` stays: the
previous release's pods search with it during a rolling upgrade. It goes in a later
(contract) migration. SQLite (dev mode) keeps searching its FTS5 table: nothing to do.
"""

import logging
import time
from collections.abc import Sequence

from alembic import op
from sqlalchemy import Connection, text

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

BACKFILL_BATCH = 20_000
INDEX = "ix_books_search_document"
# The title and author words alone (the document's A and B weights): sort=relevance of a
# one-word q ranks these matches, which outrank every description-only match, without
# reading the others. An expression index: no column, no backfill.
HEAD_INDEX = "ix_books_search_head"
_INDEXES = {
    INDEX: "gin (search_document)",
    HEAD_INDEX: "gin ((to_tsvector('english'::regconfig, title) "
    "|| to_tsvector('english'::regconfig, author)))",
}

# The document: English stemming, title weighted over author over description (the weights
# ts_rank reads). Also 0004's index expression, so both find the same books.
_FUNCTION = """
CREATE OR REPLACE FUNCTION books_search_document() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_document :=
        setweight(to_tsvector('english'::regconfig, NEW.title), 'A')
        || setweight(to_tsvector('english'::regconfig, NEW.author), 'B')
        || setweight(to_tsvector('english'::regconfig, NEW.description), 'C');
    RETURN NEW;
END
$$
"""
# search_document is in the column list so a hand-written value is replaced too: the column
# always holds the document of the row's text. The backfill relies on it (it sets NULL).
_TRIGGER = (
    "CREATE TRIGGER books_search_document "
    "BEFORE INSERT OR UPDATE OF title, author, description, search_document ON books "
    "FOR EACH ROW EXECUTE FUNCTION books_search_document()"
)
_BACKFILL = text(
    "UPDATE books SET search_document = NULL "
    "WHERE id > :start AND id <= :stop AND search_document IS NULL"
)
_INVALID_INDEX = text(
    "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "WHERE c.relname = :name AND c.relnamespace = current_schema()::regnamespace "
    "AND NOT i.indisvalid"
)


def upgrade() -> None:
    """Add the column and its trigger, fill the existing rows, then index the column (and
    the title and author words)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE books ADD COLUMN IF NOT EXISTS search_document tsvector")
    op.execute(_FUNCTION)
    op.execute("DROP TRIGGER IF EXISTS books_search_document ON books")
    op.execute(_TRIGGER)
    # Commit the above, so every write from now on keeps its row's document, then work in
    # short transactions of our own.
    with op.get_context().autocommit_block():
        bind = op.get_bind()
        _backfill(bind)
        for name, how in _INDEXES.items():
            if bind.execute(_INVALID_INDEX, {"name": name}).first() is not None:
                op.execute(f"DROP INDEX CONCURRENTLY {name}")
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON books USING {how}")
        # The backfill left a dead version of every row, cleared the visibility map (no
        # index-only scans) and queued its index entries in the GIN pending lists (which
        # every search then reads linearly, and the planner costs): clean all that up, and
        # gather the column's statistics for the planner's estimates.
        op.execute("VACUUM (ANALYZE) books")


def _backfill(bind: Connection) -> None:
    """Fill search_document of the rows written before the trigger, a batch of ids at a time."""
    top = bind.execute(text("SELECT coalesce(max(id), 0) FROM books")).scalar_one()
    started, filled = time.monotonic(), 0
    for start in range(0, top, BACKFILL_BATCH):
        result = bind.execute(_BACKFILL, {"start": start, "stop": start + BACKFILL_BATCH})
        filled += result.rowcount
    if filled:
        log.info(
            "filled books.search_document",
            extra={"books": filled, "seconds": round(time.monotonic() - started, 1)},
        )


def downgrade() -> None:
    """Drop the column, its trigger and the indexes (0004's expression index still serves)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS books_search_document ON books")
    op.execute("DROP FUNCTION IF EXISTS books_search_document()")
    op.execute(f"DROP INDEX IF EXISTS {HEAD_INDEX}")
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute("ALTER TABLE books DROP COLUMN IF EXISTS search_document")
