"""Orders-only fixtures: a migrated orders database and the orders app over HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import psycopg
import pytest
from bookstore_orders.__main__ import migrate
from bookstore_orders.app import create_app
from bookstore_orders.config import OrdersSettings
from psycopg import sql

from tests.services.orders.catalog_stub import StubCatalog, serve

ADMIN_URL = os.environ.get(
    "TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
API_KEY = "orders-test-key"
AUTH = {"X-API-Key": API_KEY}

OrdersClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


def database_url(name: str) -> str:
    """The URL of database `name` on the admin server."""
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def orders_database_url() -> Iterator[str]:
    """A fresh orders database for the test session, migrated with Alembic to head."""
    name = f"orders_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = database_url(name)
        migrate(OrdersSettings(database_url=url))
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def orders_db(orders_database_url: str) -> str:
    """The orders database, emptied before the test (isolation per test)."""
    with psycopg.connect(orders_database_url, autocommit=True) as connection:
        connection.execute(
            "TRUNCATE orders, order_items, idempotency_keys RESTART IDENTITY CASCADE"
        )
    return orders_database_url


def count_rows(url: str, table: str) -> int:
    """How many rows an orders table holds (read straight from PostgreSQL)."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def orders_client(orders_db: str) -> OrdersClientFactory:
    """Start the orders app (lifespan included) pointed at a catalog URL; yield a client."""

    @asynccontextmanager
    async def start(catalog_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        settings = OrdersSettings(
            database_url=orders_db, api_key=API_KEY, catalog_url=catalog_url, **overrides
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
                yield client

    return start


@pytest.fixture
def stub_catalog() -> Iterator[tuple[StubCatalog, str]]:
    """A scriptable catalog stand-in on a real loopback port, with two books in stock."""
    catalog = StubCatalog(stock={1: 10, 2: 10})
    with serve(catalog.app()) as url:
        yield catalog, url
