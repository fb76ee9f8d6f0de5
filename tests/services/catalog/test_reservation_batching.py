"""Reservations on the raw pool: the ones that arrive together share one statement (and one
commit), each still gets its own answer, and one book is never in a batch twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import CatalogSettings
from fastapi import FastAPI

from tests.services.catalog.books import create_book
from tests.services.conftest import CATALOG_AUTH

Reserve = Callable[..., Awaitable[httpx.Response]]


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


def reserver(client: httpx.AsyncClient) -> Reserve:
    async def reserve(book_id: int, quantity: int = 1, key: str | None = None) -> httpx.Response:
        headers = CATALOG_AUTH | ({"Idempotency-Key": key} if key else {})
        return await client.post(
            f"/books/{book_id}/reservations", json={"quantity": quantity}, headers=headers
        )

    return reserve


async def while_the_connection_is_held(
    app: FastAPI, calls: list[Awaitable[httpx.Response]]
) -> tuple[list[httpx.Response], list[str]]:
    """Start `calls` while the only raw connection is busy (so they queue), then let go;
    their responses and the reservation statements that ran."""
    statements: list[str] = []
    async with app.state.database.connection() as connection:
        connection.add_query_logger(lambda query: statements.append(query.query))
        tasks = [asyncio.ensure_future(call) for call in calls]
        await asyncio.sleep(0.1)
    responses = list(await asyncio.gather(*tasks))
    return responses, [s for s in statements if "INSERT INTO reservations" in s]


async def stock(client: httpx.AsyncClient, book_id: int) -> int:
    body: dict[str, Any] = (await client.get(f"/books/{book_id}")).json()
    return int(body["quantity"])


async def test_reservations_arriving_together_share_a_statement_yet_each_is_answered(
    catalog_settings: CatalogSettings,
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        a, b, c, d = [(await create_book(client, seed, quantity=5))["id"] for seed in range(1, 5)]
        reserve = reserver(client)
        calls = [reserve(a), reserve(b), reserve(c), reserve(a), reserve(d, 2), reserve(c, 9)]
        responses, statements = await while_the_connection_is_held(app, calls)
        assert [r.status_code for r in responses] == [201, 201, 201, 201, 201, 409]
        assert [await stock(client, book) for book in (a, b, c, d)] == [3, 4, 4, 3]
    assert [r.json()["book_id"] for r in responses[:5]] == [a, b, c, a, d]
    assert len({r.json()["id"] for r in responses[:5]}) == 5
    # two statements were waiting for the connection, the next three requests shared one,
    # and c's second request (c already in that batch) went in a fourth
    assert len(statements) == 4


async def test_a_reservation_whose_book_is_already_in_the_batch_waits_for_the_next(
    catalog_settings: CatalogSettings,
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        hot = (await create_book(client, 1, quantity=3))["id"]
        reserve = reserver(client)
        responses, statements = await while_the_connection_is_held(
            app, [reserve(hot) for _ in range(5)]
        )
        assert sorted(r.status_code for r in responses) == [201, 201, 201, 409, 409]
        assert await stock(client, hot) == 0
    assert len(statements) == 5  # one book: one reservation per statement, to the last copy


async def test_a_stored_reference_in_a_batch_is_replayed_and_the_others_are_made(
    catalog_settings: CatalogSettings,
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        a, b, c = [(await create_book(client, seed, quantity=5))["id"] for seed in range(1, 4)]
        reserve = reserver(client)
        first = await reserve(a, key="order-1-line-0")
        assert first.status_code == 201
        responses, _ = await while_the_connection_is_held(
            app, [reserve(b), reserve(c), reserve(a, key="order-1-line-0"), reserve(b, 2)]
        )
        assert [r.status_code for r in responses] == [201, 201, 201, 201]
        assert [await stock(client, book) for book in (a, b, c)] == [4, 2, 4]
    assert responses[2].headers["idempotent-replayed"] == "true"
    assert responses[2].json() == first.json()
