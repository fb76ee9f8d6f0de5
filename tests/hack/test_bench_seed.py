"""The benchmark's SQL seed: a realistic, deterministic catalog loaded into a migrated database."""

from __future__ import annotations

import os
from collections import Counter

import bench_data
import bench_seed
import psycopg
from bookstore_catalog.__main__ import migrate
from bookstore_catalog.config import CatalogSettings

ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def test_corpus_is_the_same_every_time_with_distinct_words_and_50000_distinct_authors() -> None:
    corpus = bench_seed.make_corpus()
    assert corpus == bench_seed.make_corpus()
    assert len(set(corpus.words)) == len(corpus.words) == bench_seed.WORD_COUNT
    assert len(set(corpus.authors)) == len(corpus.authors) == bench_seed.AUTHOR_COUNT
    assert all(word.isalpha() and word.islower() for word in corpus.words)
    assert max(Counter(corpus.surnames).values()) <= 5  # a surname names a handful of authors


def test_seed_loads_books_with_skewed_words_valid_isbns_and_restores_every_index() -> None:
    name = f"bench_test_seed_{os.getpid()}"
    url = ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with bench_data.temporary_databases(ADMIN_URL, [name]):
        migrate(CatalogSettings(database_url=url))
        indexes = "SELECT indexdef FROM pg_indexes WHERE tablename = 'books' ORDER BY 1"
        with psycopg.connect(url) as connection:
            before = connection.execute(indexes).fetchall()
        corpus = bench_seed.make_corpus()
        hot = bench_seed.seed_books(url, 20_000, corpus, hot_stock=50)
        with psycopg.connect(url) as connection:
            after = connection.execute(indexes).fetchall()
            sample = connection.execute("SELECT isbn FROM books WHERE id <> %s", (hot,)).fetchall()
            total, authors, out_of_stock = connection.execute(
                "SELECT count(*), count(DISTINCT author), count(*) FILTER (WHERE quantity = 0) "
                "FROM books"
            ).fetchone() or (0, 0, 0)
            common, rare = (
                connection.execute(
                    "SELECT count(*) FROM books WHERE title ILIKE %s", (f"%{word}%",)
                ).fetchone()
                or (0,)
                for word in (corpus.words[0], corpus.words[-1])
            )
            hot_row = connection.execute(
                "SELECT author, quantity FROM books WHERE id = %s", (hot,)
            ).fetchone()
    assert after == before
    assert total == 20_001
    assert {isbn for (isbn,) in sample} == {bench_data.isbn13(n) for n in range(1, 20_001)}
    assert authors > 5_000  # skewed: popular authors repeat, most appear once or twice
    assert 0.05 < out_of_stock / total < 0.15
    assert common[0] > 20 * max(rare[0], 1)
    assert hot_row == ("Hot Author", 50)
