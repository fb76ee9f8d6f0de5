"""Helpers for catalog tests: valid book payloads and direct database reads."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from tests.services.conftest import CATALOG_AUTH


def isbn13(seed: int) -> str:
    """A valid ISBN-13 (978 prefix) derived from `seed`, unique per seed below 10**9."""
    body = f"978{seed:09d}"
    total = sum((3 if i % 2 else 1) * int(c) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def book_payload(seed: int = 1, **overrides: Any) -> dict[str, Any]:
    """A valid POST /books body; `overrides` replace fields."""
    payload: dict[str, Any] = {
        "title": f"Book {seed}",
        "author": f"Author {seed}",
        "isbn": isbn13(seed),
        "price": "12.50",
        "quantity": 10,
        "description": "A fine book.",
    }
    return payload | overrides


async def create_book(client: httpx.AsyncClient, seed: int = 1, **overrides: Any) -> dict[str, Any]:
    """Create a book through the API and return its JSON."""
    response = await client.post(
        "/books", json=book_payload(seed, **overrides), headers=CATALOG_AUTH
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def stock_in_database(url: str, book_id: int) -> int:
    """A book's stock read straight from PostgreSQL."""
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT quantity FROM books WHERE id = %s", (book_id,)).fetchone()
    assert row is not None
    return int(row[0])
