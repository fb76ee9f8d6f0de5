"""`make bench` search workload: request lists per search scenario, and each scenario's
representative statement timed with EXPLAIN ANALYZE (warm), as the catalog issues it.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import asyncpg  # type: ignore[import-untyped]
import psycopg
from bench_seed import Corpus
from bookstore_catalog.cursors import Position, decode_cursor, encode_cursor
from bookstore_catalog.schemas import BookFilters
from bookstore_catalog.search import SEARCH_SESSION, SearchRequest, parameters, raw_statement

COMMON_WORDS = 10  # the most frequent words of the corpus: each in ~1-2% of books
RARE_WORDS = 1000  # the rarest words: each in a few hundred books of a million
DEEP_PAGE = 5000
PAGE_SIZE = 20
STATEMENT_RUNS = 5
MAX_STATEMENT_MS = 20.0


@dataclass(frozen=True)
class SearchScenario:
    """One search load: its name, the request paths it picks from, the statement to time."""

    key: str
    name: str
    paths: list[str]
    statement: SearchRequest


def _path(**params: object) -> str:
    """`/books?...` with the parameters URL-encoded."""
    return "/books?" + urlencode({k: str(v) for k, v in params.items()})


def _deep_page_cursor(url: str) -> str | None:
    """The cursor of page DEEP_PAGE of the whole catalog by id (what a client would hold),
    or None when the catalog has fewer pages."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT id FROM books ORDER BY id OFFSET %s LIMIT 1",
            ((DEEP_PAGE - 1) * PAGE_SIZE - 1,),
        ).fetchone()
    if row is None:
        return None
    return encode_cursor(Position(int(row[0])), BookFilters(), "id")


def search_scenarios(url: str, corpus: Corpus, seed: int = 7) -> list[SearchScenario]:
    """The search scenarios; the timed statement of each is its broadest request."""
    rng = random.Random(seed)
    common, rare = corpus.words[:COMMON_WORDS], corpus.words[-RARE_WORDS:]
    surnames = corpus.surnames  # one per author: popular authors' names come up as often
    popular_surname = corpus.surnames[0]
    prices = [Decimal(rng.randrange(500, 4900)) / 100 for _ in range(1000)]
    one_dollar = BookFilters(min_price=Decimal("10"), max_price=Decimal("11"), in_stock=True)
    scenarios = [
        SearchScenario(
            "q-common",
            "GET /books?q=<common word>",
            [_path(q=word) for word in common],
            SearchRequest(BookFilters(q=common[0])),
        ),
        SearchScenario(
            "q-rare",
            "GET /books?q=<rare word>",
            [_path(q=word) for word in rare],
            SearchRequest(BookFilters(q=rare[0])),
        ),
        SearchScenario(
            "relevance",
            "GET /books?q=&sort=relevance",
            [_path(q=word, sort="relevance") for word in [*common, *rare[: COMMON_WORDS * 9]]],
            SearchRequest(BookFilters(q=common[0]), sort="relevance"),
        ),
        SearchScenario(
            "surname",
            "GET /books?author=<surname>",
            [_path(author=name) for name in rng.sample(surnames, min(4096, len(surnames)))],
            SearchRequest(BookFilters(author=popular_surname)),
        ),
        SearchScenario(
            "price",
            "GET /books?min_price=&max_price=&in_stock",
            [_path(min_price=p, max_price=p + 1, in_stock="true") for p in prices],
            SearchRequest(one_dollar),
        ),
    ]
    cursor = _deep_page_cursor(url)
    if cursor is None:  # a small catalog (e.g. BENCH_BOOKS=2000): no page that deep
        return scenarios
    after = decode_cursor(cursor, BookFilters(), "id")
    offset = (DEEP_PAGE - 1) * PAGE_SIZE
    return [
        *scenarios,
        SearchScenario(
            "offset",
            f"GET /books page {DEEP_PAGE} by offset",
            [_path(limit=PAGE_SIZE, offset=offset)],
            SearchRequest(BookFilters(), limit=PAGE_SIZE, offset=offset),
        ),
        SearchScenario(
            "cursor",
            f"GET /books page {DEEP_PAGE} by cursor",
            [_path(limit=PAGE_SIZE, cursor=cursor)],
            SearchRequest(BookFilters(), limit=PAGE_SIZE, after=after),
        ),
    ]


def write_paths(directory: Path, scenario: SearchScenario) -> Path:
    """The scenario's request paths, one a line, for bench.lua's `get` mode."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"paths_{scenario.key}.txt"
    path.write_text("".join(line + "\n" for line in scenario.paths))
    return path


@dataclass(frozen=True)
class StatementTiming:
    """A statement's median execution and planning times (ms), from EXPLAIN ANALYZE."""

    execution_ms: float
    planning_ms: float


async def _median_timings(url: str, requests: Sequence[SearchRequest]) -> list[StatementTiming]:
    """Median execution and planning time of each request's statement, run as the catalog
    runs it (planned anew each time, as the catalog's custom plans are)."""
    connection = await asyncpg.connect(url)
    try:
        # The session the catalog's search connections have (app.plan_each_search).
        await connection.execute(SEARCH_SESSION)
        medians = []
        for request in requests:
            raw = raw_statement(request)
            arguments = raw.arguments(parameters(request))
            await connection.fetch(raw.sql, *arguments)  # warm the cache
            runs = []
            for _ in range(STATEMENT_RUNS):
                explained = await connection.fetchval(
                    f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {raw.sql}", *arguments
                )
                summary = json.loads(explained)[0]
                runs.append((float(summary["Execution Time"]), float(summary["Planning Time"])))
            medians.append(
                StatementTiming(
                    statistics.median(run[0] for run in runs),
                    statistics.median(run[1] for run in runs),
                )
            )
        return medians
    finally:
        await connection.close()


def statement_timings(url: str, scenarios: Sequence[SearchScenario]) -> dict[str, StatementTiming]:
    """Median execution and planning times (EXPLAIN ANALYZE, after a warm-up run) of each
    timed statement.

    The statement is the one the catalog sends (search.raw_statement, its parameters bound,
    through asyncpg, planned for its values as the catalog's connections plan it): inlined
    literals over psql's simple protocol would be planned differently (e.g. with parallel
    workers, which the catalog's statements never get). TIMING OFF: the statement's own
    execution time is still measured, but not each plan node's (two clock reads per row per
    node, ~0.1 µs each here, would add ~40 ms to an offset walk of 100,000 index entries
    that runs in ~6 ms). Planning is PostgreSQL's work per request too (each search is
    planned for its own values), outside the execution time the target bounds.
    """
    medians = asyncio.run(_median_timings(url, [s.statement for s in scenarios]))
    return {scenario.name: timing for scenario, timing in zip(scenarios, medians, strict=True)}
