"""Without DATABASE_URL orders runs on an embedded SQLite file (dev mode), end to end."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
from bookstore_orders.__main__ import migrate
from bookstore_orders.app import create_app
from bookstore_orders.config import OrdersSettings

from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import API_KEY, AUTH
from tests.services.orders.test_orders_api import order_body


async def test_orders_are_placed_listed_and_cancelled_on_sqlite(
    tmp_path: Path, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    settings = OrdersSettings(sqlite_path=tmp_path / "orders.db", api_key=API_KEY, catalog_url=url)
    assert settings.uses_sqlite
    migrate(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            placed = await client.post("/orders", json=order_body(), headers=AUTH)
            keyed = AUTH | {"Idempotency-Key": "dev-1"}
            first = await client.post("/orders", json=order_body(), headers=keyed)
            replay = await client.post("/orders", json=order_body(), headers=keyed)
            listed = (await client.get("/orders")).json()
            cancelled = await client.post(f"/orders/{placed.json()['id']}/cancel", headers=AUTH)
    assert placed.status_code == first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert listed["total"] == 2
    assert cancelled.json()["status"] == "cancelled"
    assert catalog.stock[1] == 8


async def test_a_refused_order_on_sqlite_is_kept_as_failed_with_its_lines_but_not_listed(
    tmp_path: Path, stub_catalog: tuple[StubCatalog, str]
) -> None:
    _, url = stub_catalog
    settings = OrdersSettings(sqlite_path=tmp_path / "orders.db", api_key=API_KEY, catalog_url=url)
    migrate(settings)
    app = create_app(settings)
    too_many = order_body(items=[{"book_id": 2, "quantity": 11}])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            placed = await client.post("/orders", json=order_body(), headers=AUTH)
            refused = await client.post("/orders", json=too_many, headers=AUTH)
            default = (await client.get("/orders")).json()
            failed = (await client.get("/orders", params={"status": "failed"})).json()
    assert (placed.status_code, refused.status_code) == (201, 409)
    assert [order["id"] for order in default["items"]] == [placed.json()["id"]]
    assert [order["items"] for order in failed["items"]] == [
        [{"book_id": 2, "quantity": 11, "unit_price": None}]
    ]
    with sqlite3.connect(tmp_path / "orders.db") as connection:
        rows = connection.execute("SELECT status, requested_items FROM orders ORDER BY id")
        stored = rows.fetchall()
    assert stored == [("confirmed", None), ("failed", '[{"book_id": 2, "quantity": 11}]')]
