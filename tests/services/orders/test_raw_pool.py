"""POST /orders without an Idempotency-Key on PostgreSQL: its statements on the raw pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
import pytest
from bookstore_orders.app import create_app
from bookstore_orders.config import OrdersSettings
from fastapi import FastAPI

from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import (
    API_KEY,
    AUTH,
    count_rows,
    order_statuses,
    refusing_trigger,
)
from tests.services.orders.test_orders_api import order_body

TWO_BOOKS = order_body(items=[{"book_id": 1, "quantity": 3}, {"book_id": 2, "quantity": 1}])


@asynccontextmanager
async def running_app(orders_db: str, catalog_url: str) -> AsyncIterator[FastAPI]:
    """The orders app with its lifespan running (so the raw pool is open)."""
    settings = OrdersSettings(
        database_url=orders_db, api_key=API_KEY, catalog_url=catalog_url, database_pool_size=4
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def client_of(app: FastAPI) -> httpx.AsyncClient:
    """An in-process HTTP client for `app`."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orders")


async def test_order_without_key_is_written_on_the_raw_pool_not_the_engine(
    stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    async with running_app(orders_db, url) as app, client_of(app) as client:
        response = await client.post("/orders", json=TWO_BOOKS, headers=AUTH)
        raw_connections = app.state.database.pool.get_size()
        engine_connections = app.state.engine.pool.checkedin()
    assert response.status_code == 201
    assert raw_connections >= 1
    assert engine_connections == 0
    placed = response.json()
    assert placed["status"] == "confirmed"
    assert Decimal(placed["total_price"]) == 4 * catalog.price
    assert catalog.held() == 4
    assert order_statuses(orders_db) == {"confirmed": 1}
    assert count_rows(orders_db, "order_items") == 2


@pytest.fixture
def confirm_refused_as_shutting_down(orders_db: str) -> Iterator[None]:
    """Make PostgreSQL refuse confirming an order as if shutting down (SQLSTATE 57P03)."""
    with refusing_trigger(
        url=orders_db,
        name="refuse_confirm",
        timing="BEFORE UPDATE",
        table="orders",
        condition="NEW.status = 'confirmed'",
        raise_sql="RAISE EXCEPTION 'going away' USING ERRCODE = '57P03'",
    ):
        yield


@pytest.mark.usefixtures("confirm_refused_as_shutting_down")
async def test_raw_pool_confirm_refused_by_the_database_is_503_and_gives_the_stock_back(
    stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    async with running_app(orders_db, url) as app, client_of(app) as client:
        response = await client.post("/orders", json=TWO_BOOKS, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "database is unavailable" in response.json()["detail"]
    assert catalog.reservations == {}
    assert catalog.stock == {1: 10, 2: 10}
    assert order_statuses(orders_db) == {"failed": 1}
    assert count_rows(orders_db, "order_items") == 0
