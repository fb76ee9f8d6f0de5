"""The planner's choices for every search shape, at 50,000 books: index-driven, never a scan.

Each statement is the one the service sends (search.raw_statement, with its parameters,
through asyncpg) and is planned as the service's connections plan it (custom plans, app.py). A
Seq Scan of books, or a walk of the primary key that filters the books it reads, fails:
that is the plan that made a search read the whole catalog (issue 10). A walk of an id range
bounded on both sides (a broad text search's window, search.WINDOW_IDS ids) reads at most
that many books whatever the catalog's size, so it passes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import asyncpg
import psycopg
import pytest
from bookstore_catalog.__main__ import migrate
from bookstore_catalog.config import CatalogSettings
from bookstore_catalog.cursors import Position
from bookstore_catalog.schemas import BookFilters
from bookstore_catalog.search import (
    SEARCH_SESSION,
    WINDOW_IDS,
    SearchRequest,
    parameters,
    raw_statement,
)

BOOKS = 50_000
WORDS = 2_000


def word_sql(rank: str) -> str:
    """SQL: a made-up word (letters only), distinct for each rank (odd multiplier mod 2^32)."""
    return (
        f"translate(to_hex((({rank})::bigint * 2654435761) % 4294967296 + 268435456), "
        "'0123456789', 'ghijklmnop')"
    )


def word(rank: int) -> str:
    """The word of a rank, as word_sql makes it."""
    hexed = format((rank * 2654435761) % 4294967296 + 268435456, "x")
    return hexed.translate(str.maketrans("0123456789", "ghijklmnop"))


SEED = f"""
    INSERT INTO books (title, author, isbn, price, quantity, description)
    SELECT {" || ' ' || ".join(word_sql(f"floor({WORDS} * power(random(), 1.5))") for _ in "abc")},
           'Ann ' || initcap({word_sql("100000 + floor(3000 * power(random(), 2))")}),
           lpad(g::text, 13, '0'),
           round((5 + random() * 45)::numeric, 2),
           CASE WHEN random() < 0.1 THEN 0 ELSE 1 + floor(random() * 100)::int END,
           'A story of ' || {word_sql(f"floor({WORDS} * power(random(), 1.5))")} || '.'
    FROM generate_series(1, {BOOKS}) AS g
"""


@pytest.fixture(scope="module")
def catalog_with_books(make_database: Callable[[str], str]) -> str:
    """The URL of a migrated catalog of 50,000 generated books, vacuumed and analyzed."""
    url = make_database("catalog_plans")
    migrate(CatalogSettings(database_url=url))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT setseed(0.5)")
        connection.execute(SEED)  # type: ignore[arg-type]
        connection.execute("VACUUM (ANALYZE) books")
    return url


COMMON, RARE = word(0), word(WORDS - 1)
SURNAME = word(100_000 + 40).capitalize()
NARROW = {"min_price": Decimal("20.00"), "max_price": Decimal("20.50")}

SHAPES: dict[str, SearchRequest] = {
    "no filter": SearchRequest(BookFilters()),
    "q common word": SearchRequest(BookFilters(q=COMMON)),
    "q rare word": SearchRequest(BookFilters(q=RARE)),
    "q two words": SearchRequest(BookFilters(q=f"{COMMON} {word(1)}")),
    # (A query that is only a negation, `-word`, matches nearly every book: it is a scan.)
    "q phrase or word, not word": SearchRequest(
        BookFilters(q=f'"{COMMON} {word(1)}" or {word(2)} -{RARE}')
    ),
    "q isbn part": SearchRequest(BookFilters(q="0000012345")),
    "q relevance": SearchRequest(BookFilters(q=COMMON), sort="relevance"),
    "q relevance by cursor": SearchRequest(
        BookFilters(q=COMMON), sort="relevance", after=Position(25_000, 0.1)
    ),
    "title": SearchRequest(BookFilters(title=word(7)[2:7])),
    "author surname": SearchRequest(BookFilters(author=SURNAME)),
    "title and author": SearchRequest(BookFilters(title=word(3), author=SURNAME)),
    "isbn": SearchRequest(BookFilters(isbn="0000000012345")),
    "price range": SearchRequest(BookFilters(**NARROW)),
    "price range in stock": SearchRequest(BookFilters(**NARROW, in_stock=True)),
    "in stock": SearchRequest(BookFilters(in_stock=True)),
    "out of stock": SearchRequest(BookFilters(in_stock=False)),
    "q with price in stock": SearchRequest(BookFilters(q=COMMON, **NARROW, in_stock=True)),
    "q with author": SearchRequest(BookFilters(q=COMMON, author=SURNAME)),
    "deep page by cursor": SearchRequest(BookFilters(), after=Position(45_000)),
    "q deep page by cursor": SearchRequest(BookFilters(q=COMMON), after=Position(45_000)),
}


def plan_nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan, depth first."""
    yield plan
    for child in plan.get("Plans", []):
        yield from plan_nodes(child)


def _bounded_range(condition: str) -> bool:
    """Whether a primary-key condition bounds id on both sides within WINDOW_IDS."""
    low = re.search(r"\(id > (\d+)\)", condition)
    high = re.search(r"\(id <= (\d+)\)", condition)
    return bool(low and high) and 0 < int(high[1]) - int(low[1]) <= WINDOW_IDS  # type: ignore[index]


def full_reads(plan: dict[str, Any]) -> list[str]:
    """The nodes that read books without an index to narrow them down."""
    found = []
    for node in plan_nodes(plan):
        kind, relation = node["Node Type"], node.get("Relation Name")
        if kind == "Seq Scan" and relation == "books":
            found.append("Seq Scan on books")
        walks_pk = (
            kind in ("Index Scan", "Index Only Scan") and node.get("Index Name") == "pk_books"
        )
        if walks_pk and "Filter" in node and not _bounded_range(node.get("Index Cond", "")):
            found.append(f"{kind} on pk_books filtering {node['Filter']}")
    return found


@pytest.mark.parametrize("shape", SHAPES)
async def test_every_search_shape_is_answered_by_indexes(
    catalog_with_books: str, shape: str
) -> None:
    request = SHAPES[shape]
    raw = raw_statement(request)  # the SQL and parameters the service sends, via asyncpg
    connection = await asyncpg.connect(catalog_with_books)
    try:
        await connection.execute(SEARCH_SESSION)  # as app.plan_each_search does
        explained = await connection.fetchval(
            f"EXPLAIN (FORMAT JSON) {raw.sql}", *raw.arguments(parameters(request))
        )
    finally:
        await connection.close()
    plan = json.loads(explained)[0]["Plan"]
    assert full_reads(plan) == [], json.dumps(plan, indent=1)


def test_the_common_word_is_common_and_the_rare_one_rare(catalog_with_books: str) -> None:
    """The shapes above test what they claim: a broad word, a narrow word, a real author."""

    def count(where: str, value: str) -> int:
        with psycopg.connect(catalog_with_books) as connection:
            row = connection.execute(
                f"SELECT count(*) FROM books WHERE {where}",  # type: ignore[arg-type]
                (value,),
            ).fetchone()
        assert row is not None
        return int(row[0])

    assert count("title ILIKE %s", f"%{COMMON}%") > 500
    assert 0 < count("title ILIKE %s", f"%{RARE}%") < 100
    assert count("author = %s", f"Ann {SURNAME}") > 0
