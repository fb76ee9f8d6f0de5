"""The book search statement of `GET /books`: one page and a bounded count, one round trip.

Every filter is answered by an index (see models.Book, migrations 0004 and 0005): `q` by the
GIN index of the stored search document, title/author by trigram GIN indexes (pg_trgm), isbn
by its unique index, price and in_stock by composite and partial id indexes. The count stops
at the bound (a LIMITed subquery), so a broad search never counts every match. Pages go by
offset or by keyset (`after`: the last book of the previous page), ordered by id (a broad
text search looks in a window of ids first: _text_search_by_id), or by rank then id for
sort=relevance."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bookstore_common.rawpool import Database, RawStatement
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    Numeric,
    Select,
    String,
    Subquery,
    and_,
    bindparam,
    case,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.util import greenlet_spawn

from bookstore_catalog import fulltext
from bookstore_catalog.cursors import ID_MAX, Position, Sort
from bookstore_catalog.isbn import clean_isbn
from bookstore_catalog.models import Book
from bookstore_catalog.repository import BOOK_COLUMNS
from bookstore_catalog.schemas import BookFilters

# A q that could be part of an ISBN (4+ digits, maybe a final X) also matches ISBNs.
_ISBN_PART = re.compile(r"^[0-9]{4,13}X?$")
_PRICE = Numeric(10, 2)
_fts5_tables: dict[str, bool] = {}  # SQLite database URL -> whether books_fts exists
# How many ids after a page's start a broad text search looks in first (_text_search_by_id):
# a bounded read (~1 ms), where the commonest word of a million books has ~140 matches.
WINDOW_IDS = 8_192


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """What one `GET /books` asks for."""

    filters: BookFilters
    sort: Sort = "id"
    limit: int = 20
    offset: int = 0
    after: Position | None = None
    count_limit: int = 1_000


@dataclass(frozen=True, slots=True)
class SearchResult:
    """A page (up to limit + 1 rows: one more means a next page) and the bounded count."""

    rows: Sequence[Mapping[str, Any]]
    matches: int  # exact when <= the count limit, else count_limit + 1


# The LIKE escape character. Not a backslash: before 2.1, SQLAlchemy doubles it in ESCAPE
# for a dialect that has not met a server (our compiled-once statements), and PostgreSQL
# refuses a two-character escape ("invalid escape string").
LIKE_ESCAPE = "!"


def _contains(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, with LIKE wildcards escaped."""
    escaped = "".join(f"{LIKE_ESCAPE}{c}" if c in "%_!" else c for c in value)
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
        return or_(
            match, Book.isbn.like(bindparam("isbn_part", _contains(isbn)), escape=LIKE_ESCAPE)
        )
    return match


def filter_clauses(filters: BookFilters, dialect: str, fts5: bool) -> list[ColumnElement[bool]]:
    """Translate search criteria into WHERE clauses."""
    clauses: list[ColumnElement[bool]] = []
    if filters.q:
        clauses.append(_text_match(filters.q, dialect, fts5))
    # Named parameters: the statement of a shape is compiled once (see _raw_statement).
    if filters.title:
        title = bindparam("title", _contains(filters.title), type_=String)
        clauses.append(Book.title.ilike(title, escape=LIKE_ESCAPE))
    if filters.author:
        author = bindparam("author", _contains(filters.author), type_=String)
        clauses.append(Book.author.ilike(author, escape=LIKE_ESCAPE))
    if filters.isbn:
        clauses.append(Book.isbn == bindparam("isbn", clean_isbn(filters.isbn), type_=String))
    if filters.min_price is not None:
        clauses.append(
            Book.price >= bindparam("min_price", filters.min_price, type_=Numeric(10, 2))
        )
    if filters.max_price is not None:
        clauses.append(
            Book.price <= bindparam("max_price", filters.max_price, type_=Numeric(10, 2))
        )
    if filters.in_stock is True:
        clauses.append(Book.quantity > literal_column("0"))
    elif filters.in_stock is False:
        clauses.append(Book.quantity == literal_column("0"))
    return clauses


def _rank(query: str, dialect: str, fts5: bool) -> ColumnElement[float]:
    """The relevance of a book for q (higher is better)."""
    if dialect == "postgresql":
        return fulltext.postgres_rank(query)
    return fulltext.sqlite_rank(query, fts5)


def _after(
    request: SearchRequest, book_id: ColumnElement[int], rank: ColumnElement[float] | None
) -> list[ColumnElement[bool]]:
    """The keyset condition: books after the cursor's position in the sort order."""
    after = request.after
    if after is None:
        return []
    after_id = bindparam("after_id", after.id, type_=Integer)
    if rank is not None and after.rank is not None:
        after_rank = bindparam("after_rank", after.rank, type_=Float)
        return [or_(rank < after_rank, and_(rank == after_rank, book_id > after_id))]
    return [book_id > after_id]


def _counted(matches: Select[Any], count_limit: int) -> Subquery:
    """One row, `matches`: how many rows `matches` has, counting no further than the limit."""
    limited = matches.limit(bindparam("count_rows", count_limit + 1, type_=Integer))
    bounded = limited.subquery("bounded")
    return select(func.count().label("matches")).select_from(bounded).subquery("counted")


def _text_search_by_id(
    request: SearchRequest, where: list[ColumnElement[bool]]
) -> tuple[Subquery, Subquery]:
    """q, title or author in id order: read only as many matches as the answer needs.

    The first count_limit + 1 matches the GIN indexes give (in no order) are read once
    (MATERIALIZED `bounded`): they are the count, and when there are no more than the count
    limit they are every match, and the page is their top. Past it (a broad text: the
    commonest word of a million books matches ~17,600), reading every match to find the 21
    lowest ids would cost ~25 ms; instead the page comes from the matches among the
    WINDOW_IDS ids after the page's start (a primary-key range: at most that many books
    read, or the GIN bitmap ANDed with the range; broad matches are dense, so the window
    usually holds a page: ~11 ms in all for that word), and only when the window holds too
    few are the matches beyond it read too. The branches not needed never run (their
    conditions are one-time filters on the counts).
    """
    limit_param = bindparam("count_rows", request.count_limit + 1, type_=Integer)
    bounded = select(Book.id).where(*where).limit(limit_param)
    bounded_cte = bounded.cte("bounded").prefix_with("MATERIALIZED")
    broad = select(func.count()).select_from(bounded_cte).scalar_subquery() >= limit_param
    start = bindparam("window_start", _window_start(request), type_=Integer)
    end = bindparam("window_end", _window_end(request), type_=Integer)
    windowed = (
        select(Book.id)
        .where(broad, *where, Book.id > start, Book.id <= end)
        .cte("windowed")
        .prefix_with("MATERIALIZED")
    )
    needed = bindparam("window_needed", _window_needed(request), type_=BigInteger)
    window_short = select(func.count()).select_from(windowed).scalar_subquery() < needed
    # Every match, from the GIN index (MATERIALIZED: never a walk of the primary key past
    # the window), only when the window fell short.
    rest = (
        select(Book.id).where(broad, window_short, *where).cte("rest").prefix_with("MATERIALIZED")
    )
    candidates = union_all(
        select(bounded_cte.c.id).where(~broad, *_after(request, bounded_cte.c.id, None)),
        select(windowed.c.id),
        select(rest.c.id).where(rest.c.id > end),
    ).subquery("candidates")
    top = (
        select(candidates.c.id)
        .order_by(candidates.c.id)
        .limit(bindparam("page_rows", request.limit + 1, type_=Integer))
        .offset(bindparam("skip", request.offset, type_=Integer))
        .subquery("top")
    )
    page = select(*BOOK_COLUMNS).join_from(top, Book, Book.id == top.c.id)
    counted = select(func.count().label("matches")).select_from(bounded_cte).subquery("counted")
    return page.subquery("page"), counted


def _window_start(request: SearchRequest) -> int:
    """The id the page starts after: the cursor's, else before the first book."""
    return request.after.id if request.after is not None else 0


def _window_end(request: SearchRequest) -> int:
    """The last id of the first window (never past the largest id a book can have)."""
    return min(_window_start(request) + WINDOW_IDS, ID_MAX)


def _window_needed(request: SearchRequest) -> int:
    """How many matches the window must hold to fill the page: the skipped ones too."""
    return request.offset + request.limit + 1


def _text_search(
    request: SearchRequest, where: list[ColumnElement[bool]], dialect: str, fts5: bool
) -> tuple[Subquery, Subquery]:
    """q, title or author: the GIN indexes find every match once, the page is their top.

    A text filter may match a handful of books or most of them, and the planner cannot
    tell well (trigram estimates are rough): walking the primary key in id order and
    testing each book could read the whole catalog to fill a page. So the matches are
    collected from the index (MATERIALIZED: once, for the page and the count), and only
    the page's books are then read by id. The cost follows the matches, never the catalog.
    """
    ranked = request.sort == "relevance"
    rank = _rank(request.filters.q or "", dialect, fts5).label("rank") if ranked else None
    found = select(Book.id, *([rank] if rank is not None else [])).where(*where)
    matches = found.cte("matches").prefix_with("MATERIALIZED")
    match_rank = matches.c.rank if ranked else None
    order = [matches.c.rank.desc(), matches.c.id] if ranked else [matches.c.id]
    top = (
        select(*matches.c)
        .where(*_after(request, matches.c.id, match_rank))
        .order_by(*order)
        .limit(bindparam("page_rows", request.limit + 1, type_=Integer))
        .offset(bindparam("skip", request.offset, type_=Integer))
        .subquery("top")
    )
    extra = [top.c.rank] if ranked else []
    page = select(*BOOK_COLUMNS, *extra).join_from(top, Book, Book.id == top.c.id)
    return page.subquery("page"), _counted(select(matches.c.id), request.count_limit)


def _ranked_text_search(
    request: SearchRequest, where: list[ColumnElement[bool]]
) -> tuple[Subquery, Subquery]:
    """sort=relevance on PostgreSQL: a one-word q ranks its title and author matches first.

    Ranking needs each match's document, so ranking every match of a common word reads a
    book per match (~17,600 for the commonest word of a million books, ~28 ms). For a q of
    one word (fulltext.postgres_one_word) every book with it in its title or author ranks
    above every book with it only in its description, so when the `head` matches (found
    by ix_books_search_head, ranked) after the page's start fill the page, they are the
    page: exact, without reading the other matches. Otherwise (a q of several words, or
    too few head matches) every match is ranked, as _text_search does. The count is the
    head matches' when they reach the count limit, else that of the first count_limit + 1
    matches (one-time filters pick the branches that run).
    """
    q = request.filters.q or ""
    rank = fulltext.postgres_rank(q).label("rank")
    count_rows = bindparam("count_rows", request.count_limit + 1, type_=Integer)
    # A head match has the word in its document too: the other filters suffice beside it.
    others = filter_clauses(request.filters.model_copy(update={"q": None}), "postgresql", False)
    head = (
        select(Book.id, rank)
        .where(fulltext.postgres_one_word(q), fulltext.postgres_head_match(q), *others)
        .cte("head")
        .prefix_with("MATERIALIZED")
    )
    needed = bindparam("window_needed", _window_needed(request), type_=BigInteger)
    after = _after(request, head.c.id, head.c.rank)
    past_start = func.count().filter(and_(*after)) if after else func.count()
    tally = (
        select(and_(past_start >= needed, func.count() >= count_rows).label("enough"))
        .select_from(head)
        .cte("tally")
        .prefix_with("MATERIALIZED")
    )
    enough = select(tally.c.enough).scalar_subquery()
    everything = (
        select(Book.id, rank).where(~enough, *where).cte("matches").prefix_with("MATERIALIZED")
    )
    candidates = union_all(
        select(head.c.id, head.c.rank).where(enough), select(everything.c.id, everything.c.rank)
    ).subquery("candidates")
    top = (
        select(candidates.c.id, candidates.c.rank)
        .where(*_after(request, candidates.c.id, candidates.c.rank))
        .order_by(candidates.c.rank.desc(), candidates.c.id)
        .limit(bindparam("page_rows", request.limit + 1, type_=Integer))
        .offset(bindparam("skip", request.offset, type_=Integer))
        .subquery("top")
    )
    page = select(*BOOK_COLUMNS, top.c.rank).join_from(top, Book, Book.id == top.c.id)
    some = select(everything.c.id).limit(count_rows).subquery("bounded")
    from_all = select(func.count()).select_from(some).scalar_subquery()
    counted = select(case((enough, count_rows), else_=from_all).label("matches")).subquery(
        "counted"
    )
    return page.subquery("page"), counted


def _indexed_search(
    request: SearchRequest, where: list[ColumnElement[bool]]
) -> tuple[Subquery, Subquery]:
    """No text filter: a btree index walks in id order (price and stock checked in the index).

    Only the ids are walked (an index-only scan: the visibility map spares the heap), then
    the page's books are read by id: skipping `offset` books costs index entries, not rows
    (page 5,000 of a million books: ~6 ms instead of ~30 ms).
    """
    top = (
        select(Book.id)
        .where(*where, *_after(request, Book.id.expression, None))
        .order_by(Book.id)
        .limit(bindparam("page_rows", request.limit + 1, type_=Integer))
        .offset(bindparam("skip", request.offset, type_=Integer))
        .subquery("top")
    )
    page = select(*BOOK_COLUMNS).join_from(top, Book, Book.id == top.c.id)
    matches: Select[Any] = select(literal_column("1").label("one")).select_from(Book).where(*where)
    return page.subquery("page"), _counted(matches, request.count_limit)


def search_statement(request: SearchRequest, dialect: str, fts5: bool = False) -> Select[Any]:
    """The page (limit + 1 rows) beside the count of matches up to count_limit + 1.

    One statement: the count is a one-row subquery left-joined to the page, so an empty
    page still carries it (column `matches`; page columns NULL).
    """
    filters = request.filters
    assert request.sort != "relevance" or filters.q, "sort=relevance needs q"
    where = filter_clauses(filters, dialect, fts5)
    if (filters.q or filters.title or filters.author) and request.sort == "id":
        page, counted = _text_search_by_id(request, where)
    elif filters.q and dialect == "postgresql":
        page, counted = _ranked_text_search(request, where)
    elif filters.q or filters.title or filters.author:
        page, counted = _text_search(request, where, dialect, fts5)
    else:
        page, counted = _indexed_search(request, where)
    order = [page.c.rank.desc(), page.c.id] if request.sort == "relevance" else [page.c.id]
    return (
        select(counted.c.matches, *page.c)
        .select_from(counted.outerjoin(page, true()))
        .order_by(*order)
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


def _isbn_part(query: str) -> str | None:
    """The ISBN digits a q may be part of, or None."""
    isbn = clean_isbn(query.strip())
    return isbn if _ISBN_PART.match(isbn) else None


def _shape(request: SearchRequest) -> tuple[object, ...]:
    """What decides the statement's SQL (not its values): one compiled statement per shape."""
    f = request.filters
    q_isbn = bool(f.q) and _isbn_part(f.q or "") is not None
    present = (f.q, f.title, f.author, f.isbn, f.min_price, f.max_price)
    return (
        *(value is not None and value != "" for value in present),
        q_isbn,
        f.in_stock,
        request.sort,
        request.after is not None,
    )


def parameters(request: SearchRequest) -> dict[str, Any]:
    """The values of the statement's named parameters (see filter_clauses, _after)."""
    f = request.filters
    values: dict[str, Any] = {
        "page_rows": request.limit + 1,
        "skip": request.offset,
        "count_rows": request.count_limit + 1,
        "window_start": _window_start(request),
        "window_end": _window_end(request),
        "window_needed": _window_needed(request),
    }
    if f.q:
        values["q"] = f.q
        if (isbn := _isbn_part(f.q)) is not None:
            values["isbn_part"] = _contains(isbn)
    optional = {
        "title": _contains(f.title) if f.title else None,
        "author": _contains(f.author) if f.author else None,
        "isbn": clean_isbn(f.isbn) if f.isbn else None,
        "min_price": f.min_price,
        "max_price": f.max_price,
    }
    values |= {name: value for name, value in optional.items() if value is not None}
    if request.after is not None:
        values["after_id"] = request.after.id
        if request.sort == "relevance":
            values["after_rank"] = request.after.rank
    return values


_compiled: dict[tuple[object, ...], RawStatement] = {}
# The session of the connections that run searches, set when each connects
# (app.plan_each_search). Each search is planned for its own values: a cached generic plan,
# which PostgreSQL adopts after five runs of a prepared statement, would serve every word
# with one plan. And no parallel workers: a search competes with many others for the same
# cores, and workers only add their start-up to it (a one-word sort=relevance of the
# commonest word, 8,500 matches ranked: 25 ms alone, ~43 ms with the two workers
# PostgreSQL planned for it).
SEARCH_SESSION = "SET plan_cache_mode = force_custom_plan; SET max_parallel_workers_per_gather = 0"


def raw_statement(request: SearchRequest) -> RawStatement:
    """The PostgreSQL statement of the request's shape, compiled once for asyncpg."""
    shape = _shape(request)
    if shape not in _compiled:
        raw = RawStatement.compile(search_statement(request, "postgresql"))
        missing = set(raw.names) - set(parameters(request))
        assert not missing, f"search parameters without a value: {missing}"
        _compiled[shape] = raw
    return _compiled[shape]


async def search_books(database: Database, request: SearchRequest) -> SearchResult:
    """Run the search: the page's rows and the bounded number of matches.

    On PostgreSQL the statement is compiled once per shape and runs on a pooled asyncpg
    connection of the engine (its connections have the SEARCH_SESSION; see
    app.plan_each_search), checked out in arrival order: building and compiling a
    statement per request cost more CPU than PostgreSQL spends running it.
    """
    rows: Sequence[Mapping[str, Any]]
    if database.engine.dialect.name == "postgresql":
        rows = await _fetch(database, raw_statement(request), parameters(request))
    else:
        async with database.engine.connect() as connection:
            fts5 = await _has_fts5_table(connection)
            result = await connection.execute(search_statement(request, "sqlite", fts5))
            rows = result.mappings().all()
    matches = int(rows[0]["matches"]) if rows else 0
    return SearchResult(rows=[row for row in rows if row["id"] is not None], matches=matches)


async def _fetch(
    database: Database, raw: RawStatement, values: Mapping[str, Any]
) -> Sequence[Mapping[str, Any]]:
    """The statement's records (read by column name), on a connection of the engine's pool.

    The pool's connection itself, without SQLAlchemy's Connection around it (its
    isolation level set and reset, its events): one statement, no transaction, so nothing
    needs them, and they were ~10% of the service's CPU per search.
    """
    async with database.engine_connection() as pooled:
        try:
            driver = pooled.driver_connection
            assert driver is not None
            records: Sequence[Mapping[str, Any]] = await driver.fetch(
                raw.sql, *raw.arguments(values)
            )
        except BaseException:
            # Past SQLAlchemy, so tell its pool: a connection that failed (e.g. killed by a
            # database restart) or was interrupted must not serve the next request.
            await greenlet_spawn(pooled.invalidate)
            raise
    return records
