"""Stock reservations: atomic take, exact give-back, under real concurrency on PostgreSQL."""

from __future__ import annotations

import asyncio

import httpx

from tests.services.catalog.books import book_payload, create_book, stock_in_database
from tests.services.catalog.test_books_api import assert_problem, error_fields
from tests.services.conftest import CATALOG_AUTH, LiveCatalog


async def reserve(client: httpx.AsyncClient, book_id: int, quantity: int) -> httpx.Response:
    """POST a reservation with the API key."""
    return await client.post(
        f"/books/{book_id}/reservations", json={"quantity": quantity}, headers=CATALOG_AUTH
    )


async def test_reservation_takes_stock_and_reports_unit_price(
    catalog_client: httpx.AsyncClient,
) -> None:
    book = await create_book(catalog_client, quantity=5, price="19.90")
    response = await reserve(catalog_client, book["id"], 3)
    assert response.status_code == 201
    reservation = response.json()
    assert reservation["book_id"] == book["id"]
    assert reservation["quantity"] == 3
    assert reservation["unit_price"] == "19.90"
    assert isinstance(reservation["id"], int)
    assert (await catalog_client.get(f"/books/{book['id']}")).json()["quantity"] == 2


async def test_reservation_for_more_than_stock_is_409_and_takes_nothing(
    catalog_client: httpx.AsyncClient,
) -> None:
    book = await create_book(catalog_client, quantity=2)
    assert_problem(await reserve(catalog_client, book["id"], 3), 409)
    assert (await catalog_client.get(f"/books/{book['id']}")).json()["quantity"] == 2


async def test_reservation_of_unknown_book_is_404(catalog_client: httpx.AsyncClient) -> None:
    assert_problem(await reserve(catalog_client, 12345, 1), 404)


async def test_reservation_quantity_must_be_positive(catalog_client: httpx.AsyncClient) -> None:
    book = await create_book(catalog_client)
    for quantity in (0, -1, 1_000_001):
        body = assert_problem(await reserve(catalog_client, book["id"], quantity), 422)
        assert error_fields(body) == {"quantity"}


async def test_release_gives_stock_back_once_then_404(catalog_client: httpx.AsyncClient) -> None:
    book = await create_book(catalog_client, quantity=4)
    reservation = (await reserve(catalog_client, book["id"], 3)).json()
    first = await catalog_client.delete(f"/reservations/{reservation['id']}", headers=CATALOG_AUTH)
    second = await catalog_client.delete(f"/reservations/{reservation['id']}", headers=CATALOG_AUTH)
    assert first.status_code == 204
    assert_problem(second, 404)
    assert (await catalog_client.get(f"/books/{book['id']}")).json()["quantity"] == 4


async def test_fifty_concurrent_reservations_for_ten_copies_sell_exactly_ten(
    catalog_client: httpx.AsyncClient, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=10)
    responses = await asyncio.gather(*(reserve(catalog_client, book["id"], 1) for _ in range(50)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 10 + [409] * 40
    assert stock_in_database(catalog_database_url, book["id"]) == 0


async def test_concurrent_releases_of_one_reservation_give_stock_back_once(
    catalog_client: httpx.AsyncClient, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=6)
    reservation = (await reserve(catalog_client, book["id"], 5)).json()
    responses = await asyncio.gather(
        *(
            catalog_client.delete(f"/reservations/{reservation['id']}", headers=CATALOG_AUTH)
            for _ in range(10)
        )
    )
    assert sorted(r.status_code for r in responses) == [204] + [404] * 9
    assert stock_in_database(catalog_database_url, book["id"]) == 6


async def test_reservations_race_over_real_http_never_oversell(live_catalog: LiveCatalog) -> None:
    auth = {"X-API-Key": live_catalog.api_key}
    async with httpx.AsyncClient(base_url=live_catalog.base_url, timeout=30) as client:
        created = await client.post("/books", json=book_payload(777, quantity=10), headers=auth)
        book_id = created.json()["id"]
        responses = await asyncio.gather(
            *(
                client.post(f"/books/{book_id}/reservations", json={"quantity": 1}, headers=auth)
                for _ in range(50)
            )
        )
        assert sorted(r.status_code for r in responses) == [201] * 10 + [409] * 40
        assert (await client.get(f"/books/{book_id}")).json()["quantity"] == 0
