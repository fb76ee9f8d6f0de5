"""Pure parts of search: the web search grammar used on SQLite, and the cursors."""

from __future__ import annotations

import pytest
from bookstore_catalog.cursors import InvalidCursorError, Position, decode_cursor, encode_cursor
from bookstore_catalog.fulltext import Atom, parse_websearch
from bookstore_catalog.schemas import BookFilters


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("Lord Rings", [[Atom(("lord",))], [Atom(("rings",))]]),
        ("a or b c", [[Atom(("a",)), Atom(("b",))], [Atom(("c",))]]),
        ('"middle earth" -orcs', [[Atom(("middle", "earth"))], [Atom(("orcs",), True)]]),
        ("or tolkien or", [[Atom(("tolkien",))]]),
        ("--- !!", []),
        ('"unclosed phrase', [[Atom(("unclosed", "phrase"))]]),
    ],
)
def test_web_search_queries_parse_as_postgresql_reads_them(
    query: str, expected: list[list[Atom]]
) -> None:
    assert parse_websearch(query) == expected


def test_cursor_round_trips_its_position_and_exact_rank() -> None:
    filters = BookFilters(q="dune", in_stock=True)
    rank = 0.1 + 0.2  # a float with a long expansion survives exactly
    cursor = encode_cursor(Position(42, rank), filters, "relevance")
    assert decode_cursor(cursor, filters, "relevance") == Position(42, rank)
    assert "=" not in cursor  # URL-safe, unpadded


@pytest.mark.parametrize(
    ("filters", "sort"),
    [(BookFilters(q="dune"), "id"), (BookFilters(q="dune", in_stock=False), "relevance")],
)
def test_cursor_of_one_search_is_refused_by_another(filters: BookFilters, sort: str) -> None:
    cursor = encode_cursor(Position(1, 0.5), BookFilters(q="dune"), "relevance")
    with pytest.raises(InvalidCursorError, match="other filters"):
        decode_cursor(cursor, filters, sort)  # type: ignore[arg-type]
