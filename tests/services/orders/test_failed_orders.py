"""Refused orders stay out of the default listing, yet are kept for audit with their lines."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psycopg
import pytest

from tests.services.conftest import free_port
from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import AUTH, OrdersClientFactory
from tests.services.orders.test_orders_api import order_body

# 11 copies of book 1 (10 in stock) and 1 of book 2: refused with 409, nothing held.
TOO_MANY = order_body(items=[{"book_id": 1, "quantity": 11}, {"book_id": 2, "quantity": 1}])
REQUESTED_LINES = [
    {"book_id": 1, "quantity": 11, "unit_price": None},
    {"book_id": 2, "quantity": 1, "unit_price": None},
]


async def listing(client: httpx.AsyncClient, **params: str) -> dict[str, Any]:
    """GET /orders with `params`; the page."""
    response = await client.get("/orders", params=params)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


def requested_items_column(url: str) -> list[Any]:
    """orders.requested_items of every order, by id (straight from PostgreSQL)."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT requested_items FROM orders ORDER BY id").fetchall()
    return [row[0] for row in rows]


@pytest.mark.parametrize("pool_size", [5, 1], ids=["raw-pool-batched", "engine-only"])
async def test_an_order_refused_for_stock_is_listed_only_as_failed_with_its_requested_lines(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], pool_size: int
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url, database_pool_size=pool_size) as client:
        refused = await client.post("/orders", json=TOO_MANY, headers=AUTH)
        default = await listing(client)
        failed = await listing(client, status="failed")
        [order] = failed["items"]
        fetched = await client.get(f"/orders/{order['id']}")
    assert refused.status_code == 409
    assert (default["total"], default["items"]) == (0, [])
    assert failed["total"] == 1
    assert order["status"] == "failed"
    assert order["items"] == REQUESTED_LINES
    assert order["total_price"] == "0.00"
    assert (order["customer_name"], order["customer_email"]) == ("Ada Lovelace", "ada@example.com")
    assert fetched.status_code == 200
    assert fetched.json() == order
    assert catalog.held() == 0


async def test_an_order_for_an_unknown_book_is_failed_with_its_lines_and_not_listed(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    _, url = stub_catalog
    unknown = order_body(items=[{"book_id": 99, "quantity": 2}])
    async with orders_client(url) as client:
        refused = await client.post("/orders", json=unknown, headers=AUTH)
        default = await listing(client)
        failed = await listing(client, status="failed")
    assert refused.status_code == 422
    assert default["total"] == 0
    assert [order["items"] for order in failed["items"]] == [
        [{"book_id": 99, "quantity": 2, "unit_price": None}]
    ]


async def test_an_order_refused_because_catalog_is_down_is_failed_and_not_listed(
    orders_client: OrdersClientFactory,
) -> None:
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    async with orders_client(down) as client:
        refused = await client.post("/orders", json=TOO_MANY, headers=AUTH)
        default = await listing(client)
        failed = await listing(client, status="failed")
    assert refused.status_code == 503
    assert default["total"] == 0
    assert [(o["status"], o["items"]) for o in failed["items"]] == [("failed", REQUESTED_LINES)]


async def test_the_default_listing_holds_confirmed_and_cancelled_orders_only(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    _, url = stub_catalog
    async with orders_client(url) as client:
        kept = (await client.post("/orders", json=order_body(), headers=AUTH)).json()
        cancelled = (await client.post("/orders", json=order_body(), headers=AUTH)).json()
        await client.post(f"/orders/{cancelled['id']}/cancel", headers=AUTH)
        assert (await client.post("/orders", json=TOO_MANY, headers=AUTH)).status_code == 409
        mine = order_body(customer_email="bob@example.com")
        bobs = (await client.post("/orders", json=mine, headers=AUTH)).json()
        bob_refused = order_body(customer_email="bob@example.com", items=TOO_MANY["items"])
        assert (await client.post("/orders", json=bob_refused, headers=AUTH)).status_code == 409
        default = await listing(client)
        by_email = await listing(client, email="bob@example.com")
        failed_by_email = await listing(client, email="bob@example.com", status="failed")
        paged = await listing(client, limit="1", offset="1")
    assert [(o["id"], o["status"]) for o in default["items"]] == [
        (bobs["id"], "confirmed"),
        (cancelled["id"], "cancelled"),
        (kept["id"], "confirmed"),
    ]
    assert default["total"] == 3
    assert [o["id"] for o in by_email["items"]] == [bobs["id"]]
    assert by_email["total"] == 1
    assert failed_by_email["total"] == 1
    assert [o["id"] for o in paged["items"]] == [cancelled["id"]]
    assert paged["total"] == 3
    # a placed order's lines are its priced order_items; the requested copy is cleared
    assert default["items"][1]["items"] == [{"book_id": 1, "quantity": 2, "unit_price": "9.99"}]
    assert requested_items_column(orders_db) == [
        None,
        None,
        [{"book_id": 1, "quantity": 11}, {"book_id": 2, "quantity": 1}],
        None,
        [{"book_id": 1, "quantity": 11}, {"book_id": 2, "quantity": 1}],
    ]


async def test_an_order_placed_with_an_idempotency_key_clears_its_requested_lines(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    _, url = stub_catalog
    async with orders_client(url) as client:
        headers = AUTH | {"Idempotency-Key": "k-1"}
        placed = await client.post("/orders", json=order_body(), headers=headers)
        default = await listing(client)
    assert placed.status_code == 201
    assert [o["id"] for o in default["items"]] == [placed.json()["id"]]
    assert requested_items_column(orders_db) == [None]


async def test_a_pending_order_is_listed_only_by_status_with_its_requested_lines(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    """An order whose stock is still being reserved (or given back) was not placed yet."""
    with psycopg.connect(orders_db, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO orders (status, customer_name, customer_email, total_price, "
            "line_count, reservation_token, requested_items, created_at, updated_at) "
            "VALUES ('pending', 'Ada', 'ada@example.com', 0, 1, 'tok', "
            """'[{"book_id": 2, "quantity": 3}]', now(), now())"""
        )
    _, url = stub_catalog
    async with orders_client(url, pending_sweep_interval=3600) as client:
        default = await listing(client)
        pending = await listing(client, status="pending")
    assert default["total"] == 0
    assert [(o["status"], o["items"]) for o in pending["items"]] == [
        ("pending", [{"book_id": 2, "quantity": 3, "unit_price": None}])
    ]


async def test_a_failed_order_from_before_the_requested_lines_were_kept_shows_no_lines(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    with psycopg.connect(orders_db, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO orders (status, customer_name, customer_email, total_price, "
            "created_at, updated_at) VALUES ('failed', 'Ada', 'ada@example.com', 0, now(), now())"
        )
    _, url = stub_catalog
    async with orders_client(url) as client:
        response = await client.get("/orders/1")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["items"]) == ("failed", [])


async def test_an_order_left_pending_for_the_sweeper_keeps_its_lines_until_it_is_failed(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    """Catalog refuses to take the stock back: pending (not listed), then swept to failed."""
    catalog, url = stub_catalog
    catalog.fail_next_releases = 10_000
    settings = {"pending_sweep_interval": 0.05, "pending_grace_seconds": 0.2}
    async with orders_client(url, **settings) as client:
        refused = await client.post("/orders", json=TOO_MANY, headers=AUTH)
        default = await listing(client)
        pending = await listing(client, status="pending")
        catalog.fail_next_releases = 0
        for _ in range(200):  # the sweeper runs every 50 ms; allow it 10 s
            failed = await listing(client, status="failed")
            if failed["total"]:
                break
            await asyncio.sleep(0.05)
    assert refused.status_code == 409
    assert default["total"] == 0
    assert [o["items"] for o in pending["items"]] == [REQUESTED_LINES]
    assert [o["items"] for o in failed["items"]] == [REQUESTED_LINES]
    assert catalog.held() == 0
