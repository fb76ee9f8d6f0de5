"""Helpers for catalog tests: book payloads, database reads, and a one-connection app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import CatalogSettings
from fastapi import FastAPI

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


async def while_the_connection_is_held(
    app: FastAPI, calls: list[Awaitable[httpx.Response]], statement_part: str
) -> tuple[list[httpx.Response], list[str]]:
    """Start `calls` while the app's only raw connection is busy (so they queue), then let
    go; their responses, and the statements containing `statement_part` that ran."""
    statements: list[str] = []
    async with app.state.database.connection() as connection:
        connection.add_query_logger(lambda query: statements.append(query.query))
        tasks = [asyncio.ensure_future(call) for call in calls]
        await asyncio.sleep(0.1)
    responses = list(await asyncio.gather(*tasks))
    return responses, [s for s in statements if statement_part in s]


@asynccontextmanager
async def one_connection_catalog(
    settings: CatalogSettings,
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The catalog app (lifespan running) whose raw pool holds a single connection."""
    app = create_catalog_app(settings.model_copy(update={"database_pool_size": 2}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            yield app, client
