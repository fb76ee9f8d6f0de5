"""Migration 0005: the stored search document, filled for existing books and kept by a trigger.

Upgrades start from 0004 with books in place (as a serving catalog would be), including ids
far apart (the backfill goes by id ranges) and, for the interrupted run, the leftovers of a
first attempt: the column already there, and an INVALID index under the new index's name.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from bookstore_catalog.__main__ import VERSION_TABLE, migrate
from bookstore_catalog.config import CatalogSettings

from tests.services.conftest import at_revision

# The previous release's full-text condition (0004's expression): its pods keep searching
# with it during a rolling upgrade.
LEGACY_MATCH = (
    "(setweight(to_tsvector('english'::regconfig, title), 'A') "
    "|| setweight(to_tsvector('english'::regconfig, author), 'B') "
    "|| setweight(to_tsvector('english'::regconfig, description), 'C')) "
    "@@ websearch_to_tsquery('english', %s)"
)
# The title and author words alone: ix_books_search_head's expression (models.BOOK_HEAD).
HEAD_MATCH = (
    "(to_tsvector('english'::regconfig, title) || to_tsvector('english'::regconfig, author)) "
    "@@ websearch_to_tsquery('english', %s)"
)
BOOKS_AT_0004 = (
    "INSERT INTO books (id, title, author, isbn, price, quantity, description) VALUES "
    "(1, 'Running Dragons', 'Ann Writer', '9780000000001', 9.99, 1, 'A tale'), "
    "(2, 'Quiet Rivers', 'Tolkien Fan', '9780000000002', 9.99, 1, 'Of dragons'), "
    "(45000, 'Far Away', 'Ann Other', '9780000000003', 9.99, 0, 'Nothing here')"
)


def _ids(url: str, where: str, value: str) -> list[int]:
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            f"SELECT id FROM books WHERE {where} ORDER BY id",  # type: ignore[arg-type]
            (value,),
        ).fetchall()
    return [row[0] for row in rows]


def _stored_match(url: str, query: str) -> list[int]:
    return _ids(url, "search_document @@ websearch_to_tsquery('english', %s)", query)


def _index_state(url: str, name: str) -> tuple[bool, str] | None:
    """Whether the index is valid, and its definition; None when there is none."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s",
            (name,),
        ).fetchone()
    return None if row is None else (bool(row[0]), str(row[1]))


def test_upgrade_from_0004_fills_the_document_of_every_existing_book(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_document")
    settings = CatalogSettings(database_url=url)
    at_revision(settings, "bookstore_catalog", VERSION_TABLE, "0004", BOOKS_AT_0004)
    migrate(settings)
    with psycopg.connect(url) as connection:
        missing = connection.execute(
            "SELECT count(*) FROM books WHERE search_document IS NULL"
        ).fetchone()
        version = connection.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchone()
    assert missing == (0,)
    assert version == ("0005",)
    assert _stored_match(url, "dragon") == [1, 2]  # stemmed: "Dragons" in title, description
    assert _stored_match(url, "ann") == [1, 45000]
    assert _stored_match(url, "dragon") == _ids(url, LEGACY_MATCH, "dragon")
    state = _index_state(url, "ix_books_search_document")
    assert state is not None
    assert state[0] is True
    assert "gin (search_document)" in state[1]
    assert _index_state(url, "ix_books_search") is not None  # the previous release's, kept
    head = _index_state(url, "ix_books_search_head")
    assert head is not None
    assert head[0] is True
    assert "(to_tsvector('english'::regconfig, (title)::text) || to_tsvector(" in head[1]
    assert _ids(url, HEAD_MATCH, "dragon") == [1]  # "Dragons" in a title; 2 has it in its text
    assert _ids(url, HEAD_MATCH, "tolkiens") == [2]  # an author


def test_the_trigger_keeps_the_document_of_written_books_and_ignores_hand_written_ones(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("catalog_trigger")
    migrate(CatalogSettings(database_url=url))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO books (id, title, author, isbn, price, quantity) "
            "VALUES (7, 'The Hobbit', 'J. R. R. Tolkien', '9780000000007', 9.99, 1)"
        )
        assert _stored_match(url, "tolkiens") == [7]
        connection.execute("UPDATE books SET title = 'Silmarillion' WHERE id = 7")
        assert _stored_match(url, "hobbit") == []
        assert _stored_match(url, "silmarillion") == [7]
        connection.execute(
            "UPDATE books SET search_document = to_tsvector('english', 'forged') WHERE id = 7"
        )
        assert _stored_match(url, "forged") == []
        assert _stored_match(url, "silmarillion") == [7]
        connection.execute("UPDATE books SET quantity = 5 WHERE id = 7")  # text unchanged
        assert _stored_match(url, "tolkien") == [7]


def test_an_interrupted_upgrade_runs_again_to_the_end(
    make_database: Callable[[str], str],
) -> None:
    """A first run stopped after adding the column and while building the index: the column is
    there (no trigger yet, nothing filled) and the index is INVALID."""
    url = make_database("catalog_document_retry")
    settings = CatalogSettings(database_url=url)
    at_revision(
        settings,
        "bookstore_catalog",
        VERSION_TABLE,
        "0004",
        BOOKS_AT_0004,
        "INSERT INTO books (id, title, author, isbn, price, quantity) "
        "VALUES (45001, 'Quiet Rivers', 'Second Copy', '9780000000004', 5.00, 1)",
        "ALTER TABLE books ADD COLUMN search_document tsvector",
    )
    # A duplicate title makes this build fail, leaving an INVALID index behind.
    with (
        psycopg.connect(url, autocommit=True) as connection,
        pytest.raises(psycopg.errors.UniqueViolation),
    ):
        connection.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY ix_books_search_document ON books (title)"
        )
    assert _index_state(url, "ix_books_search_document") == (
        False,
        "CREATE UNIQUE INDEX ix_books_search_document ON public.books USING btree (title)",
    )
    migrate(settings)
    state = _index_state(url, "ix_books_search_document")
    assert state is not None
    assert state[0] is True
    assert "gin (search_document)" in state[1]
    assert _stored_match(url, "river") == [2, 45001]
