"""Reservations on the raw pool: the ones that arrive together share one statement (and one
commit), several of one book among them, and each still gets its own answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from bookstore_catalog.config import CatalogSettings

from tests.services.catalog.books import (
    create_book,
    one_connection_catalog,
    while_the_connection_is_held,
)
from tests.services.conftest import CATALOG_AUTH

Reserve = Callable[..., Awaitable[httpx.Response]]


def reserver(client: httpx.AsyncClient) -> Reserve:
    async def reserve(book_id: int, quantity: int = 1, key: str | None = None) -> httpx.Response:
        headers = CATALOG_AUTH | ({"Idempotency-Key": key} if key else {})
        return await client.post(
            f"/books/{book_id}/reservations", json={"quantity": quantity}, headers=headers
        )

    return reserve


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
        responses, statements = await while_the_connection_is_held(
            app, calls, "INSERT INTO reservations"
        )
        assert [r.status_code for r in responses] == [201, 201, 201, 201, 201, 409]
        assert [await stock(client, book) for book in (a, b, c, d)] == [3, 4, 4, 3]
    assert [r.json()["book_id"] for r in responses[:5]] == [a, b, c, a, d]
    assert len({r.json()["id"] for r in responses[:5]}) == 5
    # two statements were waiting for the connection, and the next four requests shared one
    # (c twice: its second request, wanting 9 of the 4 left, took nothing)
    assert len(statements) == 3


async def test_reservations_of_one_book_share_a_statement_to_the_last_copy(
    catalog_settings: CatalogSettings,
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        hot = (await create_book(client, 1, quantity=3))["id"]
        reserve = reserver(client)
        responses, statements = await while_the_connection_is_held(
            app, [reserve(hot) for _ in range(5)], "INSERT INTO reservations"
        )
        assert sorted(r.status_code for r in responses) == [201, 201, 201, 409, 409]
        assert await stock(client, hot) == 0
    # the first two ran alone while the connection was held, the other three shared one
    assert len(statements) == 3


# Sharing a book, the batch runs the walk, which skips a stored reference; of distinct books,
# the plain statement, which a stored reference fails whole (then each request runs alone).
@pytest.mark.parametrize("shares_a_book", [True, False], ids=["shared-book", "distinct-books"])
async def test_a_stored_reference_in_a_batch_is_replayed_and_the_others_are_made(
    catalog_settings: CatalogSettings, shares_a_book: bool
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        a, b, c, d = [(await create_book(client, seed, quantity=5))["id"] for seed in range(1, 5)]
        reserve = reserver(client)
        first = await reserve(a, key="order-1-line-0")
        assert first.status_code == 201
        last = b if shares_a_book else d
        responses, _ = await while_the_connection_is_held(
            app,
            [reserve(b), reserve(c), reserve(a, key="order-1-line-0"), reserve(last, 2)],
            "INSERT INTO reservations",
        )
        assert [r.status_code for r in responses] == [201, 201, 201, 201]
        expected = [4, 2, 4, 5] if shares_a_book else [4, 4, 4, 3]
        assert [await stock(client, book) for book in (a, b, c, d)] == expected
    assert responses[2].headers["idempotent-replayed"] == "true"
    assert responses[2].json() == first.json()
