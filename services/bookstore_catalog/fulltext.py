"""Full-text `q`: PostgreSQL's websearch_to_tsquery on the GIN-indexed document, and the same
query language on SQLite (dev mode) over FTS5, or over LIKE when SQLite lacks FTS5.

PostgreSQL is the reference: English stemming and stop words, title over author over
description in the rank. SQLite approximates it: FTS5's porter stemmer (no stop words,
bm25 with the same column order of weights); without FTS5, substring LIKE on each word
with a plural `s` dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    column,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
    table,
)
from sqlalchemy.types import Boolean, Float, String

from bookstore_catalog.models import BOOK_DOCUMENT, BOOK_HEAD, ENGLISH, Book

_TOKEN = re.compile(r'"([^"]*)"?|(\S+)')
_WORD = re.compile(r"\w+")
_FTS5_WEIGHTS = "10.0, 4.0, 2.0"  # bm25 column weights: title, author, description
_FTS_TABLE = table("books_fts", column("rowid"))  # SQLite: the FTS5 table of migration 0004


@dataclass(frozen=True)
class Atom:
    """A word or a quoted phrase of a query, possibly negated (`-word`)."""

    words: tuple[str, ...]
    negated: bool = False


def parse_websearch(query: str) -> list[list[Atom]]:
    """websearch_to_tsquery's grammar: AND of OR-groups (`a b or c` is a & (b | c)).

    Words outside quotes are split on punctuation as PostgreSQL's parser does; `-` before a
    word or phrase negates it; a lone `or` joins its neighbours.
    """
    groups: list[list[Atom]] = []
    join_next = False
    for match in _TOKEN.finditer(query):
        phrase, bare = match.group(1), match.group(2)
        raw = phrase if phrase is not None else bare
        negated = bare is not None and bare.startswith("-")
        if bare is not None and bare.lower() == "or":
            join_next = bool(groups)
            continue
        words = tuple(w.lower() for w in _WORD.findall(raw))
        if not words:
            continue
        atoms = [Atom(words, negated)] if phrase is not None or negated else []
        atoms += [Atom((w,)) for w in words] if not atoms else []
        for index, atom in enumerate(atoms):
            if join_next and index == 0:
                groups[-1].append(atom)
            else:
                groups.append([atom])
        join_next = False
    return groups


def postgres_query(query: str) -> ColumnElement[Any]:
    """websearch_to_tsquery('english', :q): one parameter, however often it is used."""
    return func.websearch_to_tsquery(ENGLISH, bindparam("q", query, type_=String))


def postgres_match(query: str) -> ColumnElement[bool]:
    """The book's stored document matches the query (answered by ix_books_search_document)."""
    return BOOK_DOCUMENT.op("@@", return_type=Boolean)(postgres_query(query))


def postgres_head_match(query: str) -> ColumnElement[bool]:
    """The query matches the book's title and author words (ix_books_search_head)."""
    return BOOK_HEAD.op("@@", return_type=Boolean)(postgres_query(query))


def postgres_one_word(query: str) -> ColumnElement[bool]:
    """The query is one word, not negated (one node): ts_rank is then tiered by weight.

    For a lone lexeme, ts_rank (default weights, no normalization) is
    (w_max + sum over its other positions j of w_j / (j + 1)^2) / 1.64493406685, with
    1.64493406685 = sum of 1 / i^2. A book with the word in its title or author (weight
    A 1.0 or B 0.4) ranks at least 0.4 / 1.645 = 0.243; a book with it only in its
    description (C 0.2 at every position) ranks at most 0.2 * 1.645 / 1.645 = 0.2.
    """
    return func.numnode(postgres_query(query)) == literal_column("1")


def postgres_rank(query: str) -> ColumnElement[float]:
    """ts_rank of the stored document (weights: title 1, author 0.4, description 0.2).

    A float4, so its value survives a JSON round trip in a cursor exactly. ts_rank, not
    ts_rank_cd: the proximity of cover density matters little in a short book record, and
    it cost twice as much per match (ranking the ~17,600 matches of the commonest word of a
    million books: +10 ms against +19 ms, on top of ~22 ms to read them).
    """
    return func.ts_rank(BOOK_DOCUMENT, postgres_query(query), type_=Float)


def _fts5_phrase(words: tuple[str, ...]) -> str:
    """An FTS5 phrase literal (its words are \\w+ only: nothing to escape)."""
    return '"' + " ".join(words) + '"'


def _fts5_ids(expression: str) -> ColumnElement[bool]:
    """books.id is among the FTS5 matches of `expression`."""
    matching: Select[Any] = select(_FTS_TABLE.c.rowid).where(
        literal_column("books_fts").op("MATCH")(expression)
    )
    return Book.id.in_(matching)


def _like_any_column(words: tuple[str, ...]) -> ColumnElement[bool]:
    """The words, in a row, inside title, author or description (a final plural s dropped)."""
    last = words[-1]
    stem = last[:-1] if len(last) > 3 and last.endswith("s") else last
    pattern = "%" + " ".join((*words[:-1], stem)) + "%"  # \\w+ words: only `_` is special
    pattern = pattern.replace("_", "!_")  # `!` escapes, as in search.LIKE_ESCAPE
    return or_(
        *(
            column.ilike(pattern, escape="!")
            for column in (Book.title, Book.author, Book.description)
        )
    )


def _sqlite_atom(atom: Atom, fts5: bool) -> ColumnElement[bool]:
    """One atom on SQLite: an FTS5 phrase match, or the words as one substring by LIKE."""
    clause = _fts5_ids(_fts5_phrase(atom.words)) if fts5 else _like_any_column(atom.words)
    return not_(clause) if atom.negated else clause


def sqlite_match(query: str, fts5: bool) -> ColumnElement[bool]:
    """The books matching `query` on SQLite (a query without words matches nothing)."""
    groups = parse_websearch(query)
    if not groups:
        return false()
    return and_(*(or_(*(_sqlite_atom(atom, fts5) for atom in group)) for group in groups))


def sqlite_rank(query: str, fts5: bool) -> ColumnElement[float]:
    """Higher for better matches: -bm25 over FTS5 (title first), else 0 (id order)."""
    words = [a.words for group in parse_websearch(query) for a in group if not a.negated]
    if not fts5 or not words:
        return literal_column("0.0", Float)
    expression = " OR ".join(_fts5_phrase(w) for w in words)
    score = (
        select(-func.bm25(literal_column("books_fts"), literal_column(_FTS5_WEIGHTS)))
        .select_from(_FTS_TABLE)
        .where(
            literal_column("books_fts").op("MATCH")(expression),
            _FTS_TABLE.c.rowid == Book.id,
        )
        .scalar_subquery()
    )
    return func.coalesce(score, 0.0, type_=Float)
