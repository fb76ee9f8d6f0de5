"""`make bench` seed data: a realistic catalog of up to millions of books, loaded with SQL.

The text is made up but shaped like a real catalog: titles of two to four words drawn from
a deterministic 6,000-word list with a long-tailed (Zipf-like) frequency, 50,000 distinct
authors (first name + surname) whose popularity is skewed (a few write thousands of books,
most a handful), short descriptions from the same words. Loading runs in PostgreSQL
(generate_series) with the search indexes dropped and rebuilt afterwards: a million books
in well under a minute, where the HTTP API took hours.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg

WORD_COUNT = 6000
FIRST_NAME_COUNT = 400
SURNAME_COUNT = 12_000
AUTHOR_COUNT = 50_000
# A word of rank r (0 = most common) is drawn as floor(WORD_COUNT * u ** WORD_SKEW), u uniform:
# the top word is in ~2% of books (in title or description), the rarest in ~0.05%.
WORD_SKEW = 1.5
AUTHOR_SKEW = 2.0  # the same for authors: the top author has ~2,000 of 1,000,000 books
OUT_OF_STOCK_SHARE = 0.1
SEED = 20261122
INDEX_BUILDERS = 2
LOADERS = 2  # INSERTs at once (one per core): each row's search document costs ~25 µs

_ONSETS: tuple[str, ...] = ("b", "br", "c", "ch", "d", "dr", "f", "g", "gr", "h", "j", "k")
_ONSETS += ("l", "m", "n", "p", "pr", "r", "s", "sh", "st", "t", "tr", "v", "w", "z")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "ie")
_CODAS = ("", "n", "r", "l", "m", "th", "nd", "rk", "x", "lt", "mb", "ng")


def _syllable(rng: random.Random) -> str:
    return rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS)


def _distinct_words(rng: random.Random, count: int, syllables: Sequence[int]) -> list[str]:
    """`count` distinct made-up words of the given syllable counts (deterministic)."""
    words: dict[str, None] = {}
    while len(words) < count:
        word = "".join(_syllable(rng) for _ in range(rng.choice(syllables)))
        if 4 <= len(word) <= 11:
            words.setdefault(word, None)
    return list(words)


@dataclass(frozen=True)
class Corpus:
    """The made-up vocabulary: words by rank (most common first) and authors by popularity."""

    words: list[str]
    authors: list[str]

    @property
    def surnames(self) -> list[str]:
        """Each author's surname, in author order."""
        return [author.rsplit(" ", 1)[1] for author in self.authors]


def make_corpus(seed: int = SEED) -> Corpus:
    """The word list and the authors, the same on every run (no download, no randomness)."""
    rng = random.Random(seed)
    words = _distinct_words(rng, WORD_COUNT + FIRST_NAME_COUNT + SURNAME_COUNT, (2, 2, 3))
    title_words = words[:WORD_COUNT]
    first_names = [w.capitalize() for w in words[WORD_COUNT : WORD_COUNT + FIRST_NAME_COUNT]]
    surnames = [w.capitalize() for w in words[WORD_COUNT + FIRST_NAME_COUNT :]]
    # Author i: surname i % SURNAME_COUNT with a first name that differs for each lap of the
    # surnames, so the 50,000 names are distinct and each surname has about four authors.
    authors = [
        f"{first_names[(i * 7 + i // SURNAME_COUNT) % FIRST_NAME_COUNT]} "
        f"{surnames[i % SURNAME_COUNT]}"
        for i in range(AUTHOR_COUNT)
    ]
    return Corpus(words=title_words, authors=authors)


def _rank(size: int, skew: float) -> str:
    """SQL: a random 0-based rank below `size`, skewed towards 0 (the most popular)."""
    return f"floor({size} * power(random(), {skew}))::int"


def _isbn13_sql(number: str) -> str:
    """SQL: the ISBN-13 '978' + 9-digit `number` + its check digit (weights 1,3,1,...)."""
    # '978' weighs 9*1 + 7*3 + 8*1 = 38; the 9 digits after it weigh 3,1,3,1,3,1,3,1,3.
    digits = " + ".join(
        f"{3 if k % 2 == 0 else 1} * (({number} / {10 ** (8 - k)}) % 10)" for k in range(9)
    )
    return f"'978' || lpad(({number})::text, 9, '0') || ((10 - (38 + {digits}) % 10) % 10)::text"


_TITLE_WORDS = ("t1", "t2", "t3", "t4")
_DESCRIPTION_WORDS = ("d1", "d2", "d3")


def insert_books_sql(count: int, part: int = 0, parts: int = 1) -> str:
    """One INSERT ... SELECT making books `part + 1`, `part + 1 + parts`, ... up to `count`
    (ids and ISBN numbers), from the vocabulary tables.

    The random ranks come first, then hash joins turn them into words and names (indexing
    a large array per row would detoast it every time). Loaders of interleaved ids fill
    pages side by side, so the table stays in id order page by page, as one INSERT leaves it.
    """
    ranks = ", ".join(
        f"{_rank(WORD_COUNT, WORD_SKEW)} AS {name}" for name in _TITLE_WORDS + _DESCRIPTION_WORDS
    )
    joins = " ".join(
        f"JOIN bench_words {name} ON {name}.rank = r.{name}"
        for name in _TITLE_WORDS + _DESCRIPTION_WORDS
    )
    return f"""
        INSERT INTO books (id, title, author, isbn, price, quantity, description)
        SELECT r.g, initcap(t1.word || ' ' || t2.word
                       || CASE WHEN r.three THEN ' ' || t3.word ELSE '' END
                       || CASE WHEN r.four THEN ' ' || t4.word ELSE '' END),
               a.name,
               {_isbn13_sql("r.g")},
               round((4.99 + r.price * 45)::numeric, 2),
               CASE WHEN r.stock < {OUT_OF_STOCK_SHARE} THEN 0
                    ELSE 1000 + floor(r.stock * 100000)::int END,
               'A story of ' || d1.word || ', ' || d2.word || ' and ' || d3.word || '.'
        FROM (
            SELECT g, {ranks}, {_rank(AUTHOR_COUNT, AUTHOR_SKEW)} AS author,
                   random() < 0.6 AS three, random() < 0.25 AS four,
                   random() AS price, random() AS stock
            FROM generate_series({part + 1}, {count}, {parts}) AS g
        ) AS r
        {joins}
        JOIN bench_authors a ON a.rank = r.author
    """  # noqa: S608 - built from our own constants, no input


# Indexes rebuilt after the load: building once is far faster than updating per row.
_REBUILT_INDEXES = """
    SELECT indexname, indexdef FROM pg_indexes
    WHERE schemaname = current_schema() AND tablename = 'books'
      AND indexname NOT IN ('pk_books', 'uq_books_isbn')
"""


def seed_books(url: str, count: int, corpus: Corpus, hot_stock: int) -> int:
    """Load `count` books plus one hot book (`hot_stock` copies) into a migrated catalog.

    Returns the hot book's id. The statistics and visibility map are fresh afterwards
    (VACUUM ANALYZE), as on a catalog that has been running for a while.
    """
    with psycopg.connect(url, autocommit=True) as connection:
        indexes = connection.execute(_REBUILT_INDEXES).fetchall()
        for name, _ in indexes:
            connection.execute(f'DROP INDEX "{name}"')
    # The trigger of migration 0005 computes each book's search document as it is inserted.
    with ThreadPoolExecutor(max_workers=LOADERS) as pool:
        list(pool.map(lambda part: _load(url, corpus, count, part), range(LOADERS)))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT setval(pg_get_serial_sequence('books', 'id'), %s)", (count,))
        row = connection.execute(
            "INSERT INTO books (title, author, isbn, price, quantity, description) "
            "VALUES ('The Hot Book', 'Hot Author', '9799999999992', 9.99, %s, '') "
            "RETURNING id",
            (hot_stock,),
        ).fetchone()
    # Largest first, two at a time (one per core): the full-text indexes are most of the work.
    definitions = sorted((d for _, d in indexes), key=_build_order)
    with ThreadPoolExecutor(max_workers=INDEX_BUILDERS) as pool:
        list(pool.map(lambda definition: _build_index(url, definition), definitions))
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE) books")
    assert row is not None
    return int(row[0])


def _load(url: str, corpus: Corpus, count: int, part: int) -> None:
    """Insert this loader's share of the books (deterministic: its own random seed)."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SELECT setseed(%s)", (0.2026 + part / 100,))
        connection.execute("CREATE TEMP TABLE bench_words (rank int, word text)")
        connection.execute("CREATE TEMP TABLE bench_authors (rank int, name text)")
        with connection.cursor().copy("COPY bench_words FROM STDIN") as copy:
            for rank, word in enumerate(corpus.words):
                copy.write_row((rank, word))
        with connection.cursor().copy("COPY bench_authors FROM STDIN") as copy:
            for rank, name in enumerate(corpus.authors):
                copy.write_row((rank, name))
        connection.execute("ANALYZE bench_words, bench_authors")
        connection.execute(insert_books_sql(count, part, LOADERS))


def _build_order(definition: str) -> int:
    """Full-text expression first, then the other GIN indexes, then btree indexes."""
    return 0 if "to_tsvector" in definition else 1 if "gin" in definition.lower() else 2


def _build_index(url: str, definition: str) -> None:
    """Run one CREATE INDEX on a connection of its own."""
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("SET maintenance_work_mem = '256MB'")
        connection.execute(definition)
