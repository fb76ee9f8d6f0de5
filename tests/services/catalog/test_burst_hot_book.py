"""A burst of reservations at one book: they share statements, in arrival order, and two
catalog processes racing on its row still take exactly the copies it has."""

from __future__ import annotations

import asyncio

import httpx
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import CatalogSettings

from tests.services.catalog.books import (
    create_book,
    one_connection_catalog,
    stock_in_database,
    while_the_connection_is_held,
)
from tests.services.catalog.test_reservation_batching import reserver, stock
from tests.services.catalog.test_reservation_references import active_reservations
from tests.services.conftest import CATALOG_AUTH


async def test_a_burst_at_one_book_shares_statements_and_takes_exactly_its_copies(
    catalog_settings: CatalogSettings,
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        hot = (await create_book(client, 1, quantity=7))["id"]
        reserve = reserver(client)
        calls = [reserve(hot, key=f"order-{n}-line-0") for n in range(20)]
        responses, statements = await while_the_connection_is_held(
            app, calls, "INSERT INTO reservations"
        )
        assert await stock(client, hot) == 0
    statuses = [r.status_code for r in responses]
    assert statuses == [201] * 7 + [409] * 13  # the first seven to arrive
    assert len({r.json()["id"] for r in responses[:7]}) == 7
    # two statements were waiting for the connection; the other eighteen shared a third
    assert len(statements) == 3


async def test_requests_for_one_book_in_a_statement_are_taken_in_arrival_order(
    catalog_settings: CatalogSettings,
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        book = (await create_book(client, 1, quantity=4))["id"]
        other = (await create_book(client, 2, quantity=1))["id"]
        reserve = reserver(client)
        # the first two run alone (book: 4 -> 3); then in one statement, in order: 2 fits
        # (1 left), 2 does not, 1 does, and `other` has no copy left
        calls = [reserve(book), reserve(other), reserve(book, 2), reserve(book, 2)]
        calls += [reserve(book, 1), reserve(other)]
        responses, statements = await while_the_connection_is_held(
            app, calls, "INSERT INTO reservations"
        )
        assert [await stock(client, b) for b in (book, other)] == [0, 0]
    assert [r.status_code for r in responses] == [201, 201, 201, 409, 201, 409]
    assert [r.json()["quantity"] for r in responses if r.status_code == 201] == [1, 1, 2, 1]
    assert len(statements) == 3


async def test_a_repeated_reference_in_a_burst_is_one_reservation_and_replayed(
    catalog_settings: CatalogSettings,
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        hot = (await create_book(client, 1, quantity=5))["id"]
        reserve = reserver(client)
        stored = await reserve(hot, key="order-1-line-0")
        calls = [reserve(hot, key="order-2-line-0"), reserve(hot, key="order-1-line-0")]
        calls += [reserve(hot, key="order-3-line-0"), reserve(hot, key="order-3-line-0")]
        responses, _ = await while_the_connection_is_held(app, calls, "INSERT INTO reservations")
        assert await stock(client, hot) == 2
    assert [r.status_code for r in responses] == [201] * 4
    assert responses[1].json() == stored.json()
    assert responses[1].headers["idempotent-replayed"] == "true"
    assert responses[3].json() == responses[2].json()


async def test_two_catalog_processes_racing_at_one_book_take_exactly_its_copies(
    catalog_settings: CatalogSettings, catalog_database_url: str
) -> None:
    settings = catalog_settings.model_copy(update={"database_pool_size": 4})
    apps = [create_catalog_app(settings) for _ in range(2)]
    async with (
        apps[0].router.lifespan_context(apps[0]),
        apps[1].router.lifespan_context(apps[1]),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[0]), base_url="http://a") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=apps[1]), base_url="http://b") as b,
    ):
        hot = (await create_book(a, 1, quantity=30))["id"]

        async def reserve(n: int) -> httpx.Response:
            headers = CATALOG_AUTH | {"Idempotency-Key": f"order-{n}-line-0"}
            body = {"quantity": 1 + n % 3}
            client = a if n % 2 else b
            return await client.post(f"/books/{hot}/reservations", json=body, headers=headers)

        responses = await asyncio.gather(*(reserve(n) for n in range(120)))
    taken = sum(r.json()["quantity"] for r in responses if r.status_code == 201)
    assert {r.status_code for r in responses} <= {201, 409}
    assert taken == 30 - stock_in_database(catalog_database_url, hot)
    assert taken >= 28  # a 2 or 3 no longer fits only when fewer copies are left
    held = sum(quantity for _, quantity in active_reservations(catalog_database_url, hot))
    assert held == taken
