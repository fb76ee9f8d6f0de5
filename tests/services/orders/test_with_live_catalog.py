"""Orders against a real catalog server: races, idempotency, prices and stock given back."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

import httpx
import psycopg

from tests.services.conftest import LiveCatalog
from tests.services.orders.conftest import (
    AUTH,
    LiveOrders,
    OrdersClientFactory,
    count_orders_not_failed,
    order_statuses,
)
from tests.services.orders.test_orders_api import order_body


def new_isbn13() -> str:
    """A random ISBN-13 with a valid check digit (unique enough per test)."""
    digits = "978" + "".join(random.choice("0123456789") for _ in range(9))
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits))
    return digits + str((10 - total % 10) % 10)


async def create_book(live: LiveCatalog, quantity: int, price: str = "12.34") -> int:
    """Add a book to the live catalog and return its id."""
    book = {
        "title": "Dune",
        "author": "Frank Herbert",
        "isbn": new_isbn13(),
        "price": price,
        "quantity": quantity,
    }
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        response = await client.post("/books", json=book, headers={"X-API-Key": live.api_key})
    assert response.status_code == 201, response.text
    book_id: int = response.json()["id"]
    return book_id


async def order_one_copy_at_once(
    live_orders: LiveOrders, book_id: int, orders: int, http_timeout: float
) -> list[httpx.Response]:
    """`orders` one-copy orders of a book, sent at once, each on a connection of its own."""
    body = order_body(items=[{"book_id": book_id, "quantity": 1}])
    limits = httpx.Limits(max_connections=orders)
    async with httpx.AsyncClient(
        base_url=live_orders.base_url, limits=limits, timeout=http_timeout
    ) as client:
        return await asyncio.gather(
            *(client.post("/orders", json=body, headers=AUTH) for _ in range(orders))
        )


async def stock_of(live: LiveCatalog, book_id: int) -> int:
    """Copies of a book in stock, as catalog reports them."""
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        quantity: int = (await client.get(f"/books/{book_id}")).json()["quantity"]
    return quantity


def reservations_of(live: LiveCatalog, book_id: int) -> list[tuple[int, int]]:
    """(id, quantity) of every reservation catalog still holds for a book (not released)."""
    with psycopg.connect(live.database_url) as connection:
        rows = connection.execute(
            "SELECT id, quantity FROM reservations WHERE book_id = %s AND released_at IS NULL "
            "ORDER BY id",
            (book_id,),
        ).fetchall()
    return [(int(row[0]), int(row[1])) for row in rows]


def reservation_ids_in_orders(orders_db: str) -> list[int]:
    """The catalog reservation ids the orders database keeps for its confirmed orders."""
    with psycopg.connect(orders_db) as connection:
        rows = connection.execute(
            "SELECT i.reservation_id FROM order_items i JOIN orders o ON o.id = i.order_id "
            "WHERE o.status = 'confirmed' ORDER BY 1"
        ).fetchall()
    return sorted(int(row[0]) for row in rows)


async def test_fifty_concurrent_orders_for_the_last_ten_copies_confirm_exactly_ten(
    live_orders: LiveOrders, live_catalog: LiveCatalog
) -> None:
    book_id = await create_book(live_catalog, quantity=10)
    responses = await order_one_copy_at_once(live_orders, book_id, orders=50, http_timeout=30)
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 10 + [409] * 40
    losers = [r for r in responses if r.status_code == 409]
    assert all(f"book {book_id}" in r.json()["detail"] for r in losers)
    assert await stock_of(live_catalog, book_id) == 0
    held = reservations_of(live_catalog, book_id)
    assert [quantity for _, quantity in held] == [1] * 10
    assert sorted(rid for rid, _ in held) == reservation_ids_in_orders(live_orders.database_url)
    assert order_statuses(live_orders.database_url) == {"confirmed": 10, "failed": 40}


async def test_same_key_ten_times_at_once_makes_one_order_and_one_reservation(
    orders_client: OrdersClientFactory, live_catalog: LiveCatalog, orders_db: str
) -> None:
    book_id = await create_book(live_catalog, quantity=5)
    body = order_body(items=[{"book_id": book_id, "quantity": 2}])
    headers = AUTH | {"Idempotency-Key": f"live-{book_id}"}
    async with orders_client(live_catalog.base_url) as client:
        responses = await asyncio.gather(
            *(client.post("/orders", json=body, headers=headers) for _ in range(10))
        )
        replay = await client.post("/orders", json=body, headers=headers)
    assert {r.status_code for r in responses} <= {201, 409}
    assert replay.status_code == 201
    assert {r.json()["id"] for r in responses if r.status_code == 201} == {replay.json()["id"]}
    assert len(reservations_of(live_catalog, book_id)) == 1
    assert await stock_of(live_catalog, book_id) == 3
    assert count_orders_not_failed(orders_db) == 1


async def test_prices_come_from_catalog_and_cancel_gives_the_stock_back(
    orders_client: OrdersClientFactory, live_catalog: LiveCatalog
) -> None:
    cheap = await create_book(live_catalog, quantity=4, price="12.34")
    dear = await create_book(live_catalog, quantity=4, price="100.00")
    body = order_body(items=[{"book_id": cheap, "quantity": 2}, {"book_id": dear, "quantity": 1}])
    async with orders_client(live_catalog.base_url) as client:
        placed = await client.post("/orders", json=body, headers=AUTH)
        assert placed.status_code == 201, placed.text
        order = placed.json()
        assert [Decimal(item["unit_price"]) for item in order["items"]] == [
            Decimal("12.34"),
            Decimal("100.00"),
        ]
        assert Decimal(order["total_price"]) == Decimal("124.68")
        assert (await stock_of(live_catalog, cheap), await stock_of(live_catalog, dear)) == (2, 3)
        cancelled = await client.post(f"/orders/{order['id']}/cancel", headers=AUTH)
    assert cancelled.json()["status"] == "cancelled"
    assert (await stock_of(live_catalog, cheap), await stock_of(live_catalog, dear)) == (4, 4)
    assert reservations_of(live_catalog, cheap) == reservations_of(live_catalog, dear) == []


async def test_order_short_on_one_book_holds_nothing_of_the_others_at_catalog(
    orders_client: OrdersClientFactory, live_catalog: LiveCatalog, orders_db: str
) -> None:
    plenty = await create_book(live_catalog, quantity=10)
    scarce = await create_book(live_catalog, quantity=1)
    body = order_body(
        items=[{"book_id": plenty, "quantity": 3}, {"book_id": scarce, "quantity": 2}]
    )
    async with orders_client(live_catalog.base_url) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
    assert response.status_code == 409, response.text
    assert f"book {scarce}" in response.json()["detail"]
    assert await stock_of(live_catalog, plenty) == 10
    assert reservations_of(live_catalog, plenty) == []
    assert count_orders_not_failed(orders_db) == 0
