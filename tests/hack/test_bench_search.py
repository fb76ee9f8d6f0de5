"""The benchmark's search workload: scenarios over the seeded corpus, statements timed as sent."""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit

import bench_data
import bench_search
import bench_seed
import psycopg
from bookstore_catalog.__main__ import migrate
from bookstore_catalog.config import CatalogSettings

ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BOOKS = 120_000  # page 5,000 of 20 exists, and the commonest word passes the count bound


def test_every_scenario_statement_is_timed_and_its_requests_find_books() -> None:
    name = f"bench_test_search_{os.getpid()}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    corpus = bench_seed.make_corpus()
    with bench_data.temporary_databases(ADMIN_URL, [name]):
        migrate(CatalogSettings(database_url=url))
        bench_seed.seed_books(url, BOOKS, corpus, hot_stock=50)
        scenarios = bench_search.search_scenarios(url, corpus)
        timings = bench_search.statement_timings(url, scenarios)
        common_word = parse_qs(urlsplit(scenarios[0].paths[0]).query)["q"][0]
        with psycopg.connect(url) as connection:
            row = connection.execute(
                "SELECT count(*) FROM books "
                "WHERE search_document @@ websearch_to_tsquery('english', %s)",
                (common_word,),
            ).fetchone()
    assert {s.key for s in scenarios} == {
        "q-common",
        "q-rare",
        "relevance",
        "surname",
        "price",
        "offset",
        "cursor",
    }
    assert set(timings) == {s.name for s in scenarios}
    assert all(t.execution_ms > 0 and t.planning_ms > 0 for t in timings.values())
    assert row is not None
    assert row[0] > 1_000  # broad: past the default count bound, the windowed plan is timed
