"""The book search statement of `GET /books`: one page and a bounded count, one round trip.

Every filter is answered by an index (see models.Book and migration 0004): `q` by the
full-text GIN index, title/author by trigram GIN indexes (pg_trgm), isbn by its unique
index, price by ix_books_price, in_stock by partial id indexes. The count stops at the
bound (a LIMITed subquery), so a broad search never counts every match. Pages go by
offset or by keyset (`after`: the last book of the previous page), ordered by id, or by
rank then id for sort=relevance.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    RowMapping,
    Select,
    and_,
    func,
    literal,
    or_,
    select,
    text,
    true,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookstore_catalog import fulltext
from bookstore_catalog.cursors import Position, Sort
from bookstore_catalog.isbn import clean_isbn
from bookstore_catalog.models import Book
from bookstore_catalog.repository import BOOK_COLUMNS
from bookstore_catalog.schemas import BookFilters

# A q that could be part of an ISBN (4+ digits, maybe a final X) also matches ISBNs.
_ISBN_PART = re.compile(r"^[0-9]{4,13}X?$")
_fts5_tables: dict[str, bool] = {}  # SQLite database URL -> whether books_fts exists


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """What one `GET /books` asks for."""

    filters: BookFilters
    sort: Sort = "id"
    limit: int = 20
    offset: int = 0
    after: Position | None = None
    count_limit: int = 10_000


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A page (up to limit + 1 rows: one more means a next page) and the bounded count."""

    rows: Sequence[RowMapping]
    matches: int  # exact when <= the count limit, else count_limit + 1


def _contains(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, with LIKE wildcards escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text_match(query: str, dialect: str, fts5: bool) -> ColumnElement[bool]:
    """q: full text over title, author and description; or part of an ISBN."""
    match = (
        fulltext.postgres_match(query)
        if dialect == "postgresql"
        else fulltext.sqlite_match(query, fts5)
    )
    isbn = clean_isbn(query.strip())
    if _ISBN_PART.match(isbn):
        return or_(match, Book.isbn.like(_contains(isbn), escape="\\"))
    return match


def filter_clauses(filters: BookFilters, dialect: str, fts5: bool) -> list[ColumnElement[bool]]:
    """Translate search criteria into WHERE clauses."""
    clauses: list[ColumnElement[bool]] = []
    if filters.q:
        clauses.append(_text_match(filters.q, dialect, fts5))
    if filters.title:
        clauses.append(Book.title.ilike(_contains(filters.title), escape="\\"))
    if filters.author:
        clauses.append(Book.author.ilike(_contains(filters.author), escape="\\"))
    if filters.isbn:
        clauses.append(Book.isbn == clean_isbn(filters.isbn))
    if filters.min_price is not None:
        clauses.append(Book.price >= filters.min_price)
    if filters.max_price is not None:
        clauses.append(Book.price <= filters.max_price)
    if filters.in_stock is True:
        clauses.append(Book.quantity > 0)
    elif filters.in_stock is False:
        clauses.append(Book.quantity == 0)
    return clauses


def _id_order(filters: BookFilters) -> ColumnElement[Any]:
    """ORDER BY id; with a text filter, in a form no index walk can serve.

    A text filter (q, title, author) may match a handful of books or most of them, and
    the planner cannot tell well (trigram estimates are rough): walking the primary key in
    id order and testing each book could read the whole table to find 20 matches. `id + 0`
    leaves one plan: the GIN index finds every match, and the top of them by id is kept.
    That costs in proportion to the matches, never to the catalog.
    """
    if filters.q or filters.title or filters.author:
        return Book.id + 0
    return Book.id.expression


def _rank(query: str, dialect: str, fts5: bool) -> ColumnElement[float]:
    """The relevance of a book for q (higher is better)."""
    if dialect == "postgresql":
        return fulltext.postgres_rank(query)
    return fulltext.sqlite_rank(query, fts5)


def search_statement(request: SearchRequest, dialect: str, fts5: bool = False) -> Select[Any]:
    """The page (limit + 1 rows) beside the count of matches up to count_limit + 1.

    One statement: the count is a one-row subquery left-joined to the page, so an empty
    page still carries it (column `matches`; page columns NULL).
    """
    where = filter_clauses(request.filters, dialect, fts5)
    columns: list[Any] = list(BOOK_COLUMNS)
    keyset: list[ColumnElement[bool]] = []
    if request.sort == "relevance":
        assert request.filters.q, "sort=relevance needs q"
        rank = _rank(request.filters.q, dialect, fts5)
        columns.append(rank.label("rank"))
        order = [rank.desc(), Book.id]
        if request.after is not None and request.after.rank is not None:
            keyset.append(
                or_(
                    rank < request.after.rank,
                    and_(rank == request.after.rank, Book.id > request.after.id),
                )
            )
    else:
        order = [_id_order(request.filters)]
        if request.after is not None:
            keyset.append(Book.id > request.after.id)
    page = (
        select(*columns)
        .where(*where, *keyset)
        .order_by(*order)
        .limit(request.limit + 1)
        .offset(request.offset)
        .subquery("page")
    )
    # Counting stops after count_limit + 1 matches, however many there are.
    matching = (
        select(literal(1).label("one"))
        .select_from(Book)
        .where(*where)
        .limit(request.count_limit + 1)
        .subquery("matching")
    )
    counted = select(func.count().label("matches")).select_from(matching).subquery("counted")
    outer_order = [page.c.rank.desc(), page.c.id] if request.sort == "relevance" else [page.c.id]
    return (
        select(counted.c.matches, *page.c)
        .select_from(counted.outerjoin(page, true()))
        .order_by(*outer_order)
    )


async def _has_fts5_table(connection: AsyncConnection) -> bool:
    """Whether this SQLite database has books_fts (migration 0004 made it if it could)."""
    key = str(connection.engine.url)
    if key not in _fts5_tables:
        found = await connection.scalar(
            text("SELECT count(*) FROM sqlite_master WHERE name = 'books_fts'")
        )
        _fts5_tables[key] = bool(found)
    return _fts5_tables[key]


async def search_books(engine: AsyncEngine, request: SearchRequest) -> SearchResult:
    """Run the search: the page's rows and the bounded number of matches."""
    async with engine.connect() as connection:
        dialect = connection.dialect.name
        fts5 = dialect == "sqlite" and await _has_fts5_table(connection)
        result = await connection.execute(search_statement(request, dialect, fts5))
        rows = result.mappings().all()
    matches = int(rows[0]["matches"]) if rows else 0
    return SearchResult(rows=[row for row in rows if row["id"] is not None], matches=matches)
