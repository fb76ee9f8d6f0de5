"""Without DATABASE_URL orders runs on an embedded SQLite file (dev mode), end to end."""

from __future__ import annotations

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
