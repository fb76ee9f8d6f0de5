"""GET /books search on PostgreSQL: full text, substrings, relevance, cursors, the count bound."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import psycopg
import pytest
from bookstore_catalog.app import create_app
from bookstore_catalog.config import CatalogSettings
from bookstore_catalog.cursors import Position, encode_cursor
from bookstore_catalog.schemas import BookFilters
from bookstore_catalog.search import SEARCH_SESSION, SearchRequest, parameters, raw_statement
from fastapi import FastAPI
from sqlalchemy import text

from tests.services.catalog.books import create_book, isbn13
from tests.services.catalog.test_books_api import assert_problem, error_fields


async def titles(client: httpx.AsyncClient, **params: Any) -> list[str]:
    """The titles of the first page of a search."""
    response = await client.get("/books", params=params)
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


async def seed_library(client: httpx.AsyncClient) -> None:
    """Books whose words differ in form (stemming) and in field (title, author, text)."""
    await create_book(client, 1, title="The Hobbit", author="J. R. R. Tolkien", price="9.99")
    await create_book(
        client, 2, title="Running with Scissors", author="Augusten Burroughs", quantity=0
    )
    await create_book(
        client,
        3,
        title="The Silmarillion",
        author="Christopher Tolkien",
        description="Myths of Middle-earth, edited by the son of the author.",
        price="30.00",
    )
    await create_book(client, 4, title="Dragons at Dusk", author="Ann Sparrow", price="12.00")


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("tolkiens", ["The Hobbit", "The Silmarillion"]),  # plural finds the name
        ("run", ["Running with Scissors"]),  # stem of running
        ("dragon", ["Dragons at Dusk"]),
        ("myth", ["The Silmarillion"]),  # description
        ("tolkien -hobbit", ["The Silmarillion"]),  # websearch: exclusion
        ("hobbit or dragons", ["The Hobbit", "Dragons at Dusk"]),
        ('"middle earth"', ["The Silmarillion"]),  # phrase
        ('"earth middle"', []),
        ("the", []),  # a stop word alone matches nothing
        (isbn13(2)[-7:], ["Running with Scissors"]),  # part of an ISBN
    ],
)
async def test_q_is_language_aware_full_text_search(
    catalog_client: httpx.AsyncClient, q: str, expected: list[str]
) -> None:
    await seed_library(catalog_client)
    assert await titles(catalog_client, q=q) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"title": "obbi"}, ["The Hobbit"]),
        ({"author": "olkie"}, ["The Hobbit", "The Silmarillion"]),
        ({"author": "TOLKIEN", "title": "silm"}, ["The Silmarillion"]),
        ({"q": "tolkien", "max_price": "10"}, ["The Hobbit"]),
        ({"q": "tolkien", "min_price": "10", "in_stock": "true"}, ["The Silmarillion"]),
        ({"q": "running", "in_stock": "false"}, ["Running with Scissors"]),
        ({"q": "running", "in_stock": "true"}, []),
        ({"min_price": "11", "max_price": "20", "in_stock": "true"}, ["Dragons at Dusk"]),
    ],
)
async def test_substring_and_combined_filters_all_apply(
    catalog_client: httpx.AsyncClient, params: dict[str, str], expected: list[str]
) -> None:
    await seed_library(catalog_client)
    assert await titles(catalog_client, **params) == expected


async def test_relevance_ranks_title_over_author_over_description_then_by_id(
    catalog_client: httpx.AsyncClient,
) -> None:
    await create_book(catalog_client, 1, title="Tales", description="About a wizard.")
    await create_book(catalog_client, 2, title="Maps", author="Wizard Press")
    await create_book(catalog_client, 3, title="The Wizard")
    await create_book(catalog_client, 4, title="A Wizard Again")
    by_relevance = await titles(catalog_client, q="wizards", sort="relevance")
    by_id = await titles(catalog_client, q="wizards")
    assert by_relevance == ["The Wizard", "A Wizard Again", "Maps", "Tales"]
    assert by_id == ["Tales", "Maps", "The Wizard", "A Wizard Again"]


async def test_searches_are_planned_for_their_own_words_never_by_a_cached_generic_plan(
    catalog_app: FastAPI,
) -> None:
    async with catalog_app.state.autocommit_engine.connect() as connection:
        mode = await connection.scalar(text("SHOW plan_cache_mode"))
        workers = await connection.scalar(text("SHOW max_parallel_workers_per_gather"))
    assert mode == "force_custom_plan"
    assert workers == "0"


async def test_relevance_without_q_is_422_naming_sort(catalog_client: httpx.AsyncClient) -> None:
    response = await catalog_client.get("/books", params={"sort": "relevance"})
    assert error_fields(assert_problem(response, 422)) == {"sort"}


async def pages(client: httpx.AsyncClient, **params: Any) -> list[list[int]]:
    """Follow next_cursor from the first page to the last; the ids of every page."""
    found: list[list[int]] = []
    cursor = None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/books", params=query)).json()
        found.append([item["id"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def test_cursor_pages_cover_every_match_once_in_order_and_end_with_null(
    catalog_client: httpx.AsyncClient,
) -> None:
    kinds = ("Sea", "Sea Storm", "Storm")  # three ranks, each shared by several books
    ids = [
        (await create_book(catalog_client, seed, title=kinds[seed % 3]))["id"]
        for seed in range(1, 11)
    ]
    by_id = await pages(catalog_client, q="sea or storm", limit=3)
    assert by_id == [ids[0:3], ids[3:6], ids[6:9], ids[9:10]]
    ranked = await pages(catalog_client, q="sea or storm", sort="relevance", limit=2)
    flat = [book_id for page in ranked for book_id in page]
    full = await catalog_client.get("/books", params={"q": "sea or storm", "sort": "relevance"})
    assert flat == [item["id"] for item in full.json()["items"]]
    assert sorted(flat) == ids
    assert flat[:3] == [ids[0], ids[3], ids[6]]  # "Sea Storm" first (seeds 1, 4, 7), by id


async def test_offset_pages_and_cursor_pages_agree(catalog_client: httpx.AsyncClient) -> None:
    for seed in range(1, 8):
        await create_book(catalog_client, seed, price=f"{seed}.00")
    by_cursor = await pages(catalog_client, min_price="2", limit=2)
    by_offset = [
        [item["id"] for item in page["items"]]
        for page in [
            (
                await catalog_client.get(
                    "/books", params={"min_price": "2", "limit": 2, "offset": offset}
                )
            ).json()
            for offset in (0, 2, 4)
        ]
    ]
    assert by_cursor == by_offset


async def test_page_by_cursor_reports_null_offset_and_the_same_total(
    catalog_client: httpx.AsyncClient,
) -> None:
    for seed in range(1, 4):
        await create_book(catalog_client, seed)
    first = (await catalog_client.get("/books", params={"limit": 2})).json()
    second = (
        await catalog_client.get("/books", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert (first["offset"], first["total"], first["total_exact"]) == (0, 3, True)
    assert (second["offset"], second["total"], second["next_cursor"]) == (None, 3, None)


@pytest.mark.parametrize(
    "change",
    [{"q": "other"}, {"in_stock": "true"}, {"sort": "relevance"}, {"offset": "0"}],
)
async def test_cursor_is_refused_with_other_filters_or_with_offset(
    catalog_client: httpx.AsyncClient, change: dict[str, str]
) -> None:
    for seed in range(1, 4):
        await create_book(catalog_client, seed, title="Same words")
    first = (await catalog_client.get("/books", params={"q": "same", "limit": 1})).json()
    params = {"q": "same", "limit": "1", "cursor": first["next_cursor"]} | change
    response = await catalog_client.get("/books", params=params)
    assert error_fields(assert_problem(response, 422)) == {"cursor"}


@pytest.mark.parametrize("cursor", ["not-base64!", "bm90IGpzb24", "W10", "x" * 201])
async def test_malformed_cursor_is_422_naming_cursor(
    catalog_client: httpx.AsyncClient, cursor: str
) -> None:
    response = await catalog_client.get("/books", params={"cursor": cursor})
    assert error_fields(assert_problem(response, 422)) == {"cursor"}


@pytest.fixture
async def small_bound_client(catalog_settings: CatalogSettings) -> AsyncIterator[httpx.AsyncClient]:
    """The catalog counting matches up to 5 only (SEARCH_COUNT_LIMIT=5)."""
    app = create_app(catalog_settings.model_copy(update={"search_count_limit": 5}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            yield client


async def test_total_is_exact_up_to_the_bound_then_the_bound_and_not_exact(
    small_bound_client: httpx.AsyncClient,
) -> None:
    for seed in range(1, 9):
        await create_book(small_bound_client, seed, title="Common", price=f"{seed}.00")
    everything = (await small_bound_client.get("/books", params={"q": "common"})).json()
    five = (await small_bound_client.get("/books", params={"max_price": "5"})).json()
    deep = (await small_bound_client.get("/books", params={"offset": 6, "limit": 1})).json()
    assert (everything["total"], everything["total_exact"]) == (5, False)
    assert len(everything["items"]) == 8  # the bound limits the count, never the results
    assert (five["total"], five["total_exact"]) == (5, True)
    assert (deep["total"], deep["total_exact"], len(deep["items"])) == (5, False, 1)


async def test_books_in_a_page_are_written_exactly_as_a_single_book_is(
    catalog_client: httpx.AsyncClient,
) -> None:
    created = [
        await create_book(catalog_client, 1, price="7", title='Zürich ✓ "quoted"'),
        await create_book(catalog_client, 2, price="12.50", description=""),
    ]
    page = (await catalog_client.get("/books")).json()
    singles = [(await catalog_client.get(f"/books/{book['id']}")).json() for book in created]
    assert page["items"] == singles == created
    assert [book["price"] for book in page["items"]] == ["7.00", "12.50"]


# Matching ids inside and far beyond the first window of a broad search (search.WINDOW_IDS).
SPREAD_IDS = [1, 2, 3, 8000, 8192, 8193, 9000, 20000, 50000]


def seed_spread_books(settings: CatalogSettings) -> None:
    """Books "Common n" at SPREAD_IDS, and others between them that never match."""
    assert settings.database_url is not None
    with psycopg.connect(settings.database_url.get_secret_value(), autocommit=True) as connection:
        for book_id in sorted({*SPREAD_IDS, 4, 8191, 8194, 30000}):
            connection.execute(
                "INSERT INTO books (id, title, author, isbn, price, quantity) "
                "VALUES (%s, %s, 'Ann Writer', %s, 9.99, 1)",
                (
                    book_id,
                    f"{'Common' if book_id in SPREAD_IDS else 'Other'} {book_id}",
                    isbn13(book_id),
                ),
            )


@pytest.mark.parametrize("params", [{"q": "common"}, {"title": "ommo"}])
async def test_broad_matches_past_the_first_window_page_completely_by_cursor_and_offset(
    small_bound_client: httpx.AsyncClient, catalog_settings: CatalogSettings, params: dict[str, str]
) -> None:
    """Past the count bound, pages come from a window of ids after the page's start, and
    from the matches beyond it when the window holds too few: every match once, in order."""
    seed_spread_books(catalog_settings)
    by_cursor = await pages(small_bound_client, **params, limit=2)
    assert by_cursor == [[1, 2], [3, 8000], [8192, 8193], [9000, 20000], [50000]]
    by_offset = [
        [
            item["id"]
            for item in (await small_bound_client.get("/books", params=query)).json()["items"]
        ]
        for query in ({**params, "limit": 2, "offset": offset} for offset in range(0, 10, 2))
    ]
    assert by_offset == by_cursor
    first = (await small_bound_client.get("/books", params=params)).json()
    assert (first["total"], first["total_exact"]) == (5, False)
    assert [item["id"] for item in first["items"]] == SPREAD_IDS


def forged_cursor(book_id: int, **filters: Any) -> str:
    """A cursor as the API encodes one, for any id (`cursors.encode_cursor` with BookFilters)."""
    return encode_cursor(Position(book_id), BookFilters(**filters), "id")


@pytest.mark.parametrize("filters", [{}, {"q": "common"}])
async def test_cursor_past_the_largest_possible_id_is_422_and_the_last_one_an_empty_page(
    small_bound_client: httpx.AsyncClient,
    catalog_settings: CatalogSettings,
    filters: dict[str, str],
) -> None:
    seed_spread_books(catalog_settings)
    too_far = forged_cursor(2**40, **filters)
    response = await small_bound_client.get("/books", params={**filters, "cursor": too_far})
    assert error_fields(assert_problem(response, 422)) == {"cursor"}
    last = forged_cursor(2_147_483_600, **filters)
    page = (await small_bound_client.get("/books", params={**filters, "cursor": last})).json()
    assert (page["items"], page["next_cursor"]) == ([], None)


async def test_the_largest_offset_of_a_broad_search_is_an_empty_page(
    small_bound_client: httpx.AsyncClient, catalog_settings: CatalogSettings
) -> None:
    seed_spread_books(catalog_settings)
    params = {"q": "common", "offset": 2_147_483_647, "limit": 100}
    page = (await small_bound_client.get("/books", params=params)).json()
    assert (page["items"], page["total"], page["total_exact"]) == ([], 5, False)


# Where "wizard" is in each book (seed -> title, author, description): title matches of
# several ranks (twice in the title, or also in the description), author matches, then
# description-only matches, one of them with the word three times.
WIZARD_BOOKS = {
    1: ("Wizard Tales", "Ann Writer", "A story of the sea."),
    2: ("Sea Stories", "Ann Writer", "A wizard, a wizard and a wizard."),
    3: ("The Wizard", "Ann Writer", "A wizard at sea."),
    4: ("Maps", "Bob Wizard", ""),
    5: ("Wizard of Wizards", "Ann Writer", ""),
    6: ("Storms", "Ann Writer", "One wizard."),
    7: ("Wizard Again", "Ann Writer", "Nothing more."),
    8: ("Wizard Days", "Ann Writer", ""),
    9: ("Tides", "Cy Wizard", "A wizard too."),
    10: ("Wizard Nights", "Ann Writer", ""),
    11: ("Other", "Ann Writer", "No match here."),
}


async def expected_relevance_order(settings: CatalogSettings, q: str) -> list[int]:
    """Every match of q, ranked in SQL over the whole document (no shortcut): rank, then id."""
    assert settings.database_url is not None
    async with await psycopg.AsyncConnection.connect(
        settings.database_url.get_secret_value()
    ) as connection:
        cursor = await connection.execute(
            "SELECT id FROM books WHERE search_document @@ websearch_to_tsquery('english', %s) "
            "ORDER BY ts_rank(search_document, websearch_to_tsquery('english', %s)) DESC, id",
            (q, q),
        )
        return [row[0] for row in await cursor.fetchall()]


@pytest.mark.parametrize("q", ["wizards", "wizard or sea"])
async def test_relevance_of_a_word_in_many_titles_pages_exactly_as_ranking_every_match(
    small_bound_client: httpx.AsyncClient, catalog_settings: CatalogSettings, q: str
) -> None:
    """A one-word q ranks the title and author matches alone while they fill the page (they
    outrank every description-only match): pages by cursor and by offset, across the tiers,
    give the order of ranking every match, and the count bound still holds."""
    ids = {
        seed: (
            await create_book(
                small_bound_client, seed, title=title, author=author, description=text
            )
        )["id"]
        for seed, (title, author, text) in WIZARD_BOOKS.items()
    }
    expected = await expected_relevance_order(catalog_settings, q)
    assert ids[11] not in expected
    if q == "wizards":  # title over author over description
        tiers = [{1, 3, 5, 7, 8, 10}, {4, 9}, {2, 6}]
        assert [set(expected[:6]), set(expected[6:8]), set(expected[8:])] == [
            {ids[seed] for seed in tier} for tier in tiers
        ]
    by_cursor = await pages(small_bound_client, q=q, sort="relevance", limit=2)
    assert [book_id for page in by_cursor for book_id in page] == expected
    by_offset = [
        book_id
        for offset in range(0, len(expected), 3)
        for book_id in [
            item["id"]
            for item in (
                await small_bound_client.get(
                    "/books", params={"q": q, "sort": "relevance", "limit": 3, "offset": offset}
                )
            ).json()["items"]
        ]
    ]
    assert by_offset == expected
    first = (await small_bound_client.get("/books", params={"q": q, "sort": "relevance"})).json()
    assert (first["total"], first["total_exact"]) == (5, False)
    assert [item["id"] for item in first["items"]] == expected

    # The first page of the one-word q came from the title and author matches alone.
    request = SearchRequest(BookFilters(q=q), sort="relevance", limit=2, count_limit=5)
    assert await reads_every_match(catalog_settings, request) == (q != "wizards")


def _loops_on_books(node: dict[str, Any]) -> int:
    """How many times the plan node and those under it scanned books."""
    own = node.get("Actual Loops", 0) if node.get("Relation Name") == "books" else 0
    return own + sum(_loops_on_books(child) for child in node.get("Plans", []))


async def reads_every_match(settings: CatalogSettings, request: SearchRequest) -> bool:
    """Whether the relevance statement read every match (its `matches` CTE scanned books)."""
    assert settings.database_url is not None
    raw = raw_statement(request)
    connection = await asyncpg.connect(settings.database_url.get_secret_value())
    try:
        await connection.execute(SEARCH_SESSION)
        explained = await connection.fetchval(
            f"EXPLAIN (ANALYZE, FORMAT JSON) {raw.sql}", *raw.arguments(parameters(request))
        )
    finally:
        await connection.close()
    nodes = [json.loads(explained)[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node.get("Subplan Name") == "CTE matches":
            return _loops_on_books(node) > 0
        nodes.extend(node.get("Plans", []))
    raise AssertionError("no CTE matches in the relevance statement")
