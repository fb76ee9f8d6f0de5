"""Orders-only fixtures: a migrated orders database and the orders app over HTTP."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from bookstore_orders.__main__ import migrate
from bookstore_orders.app import create_app
from bookstore_orders.config import OrdersSettings
from psycopg import sql

from tests.services.conftest import CATALOG_API_KEY, LiveCatalog, free_port, truncate
from tests.services.orders.catalog_stub import StubCatalog, serve

# One key per bookstore: orders accepts it and sends it on to catalog.
API_KEY = CATALOG_API_KEY
AUTH = {"X-API-Key": API_KEY}

OrdersClientFactory = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def orders_database_url(make_database: Callable[[str], str]) -> str:
    """An orders database for the session, migrated to head with Alembic (`migrate`)."""
    url = make_database("orders")
    migrate(OrdersSettings(database_url=url))
    return url


@pytest.fixture
def orders_db(orders_database_url: str) -> str:
    """The orders database, emptied before the test (isolation per test)."""
    truncate(orders_database_url, ("orders", "order_items", "idempotency_keys"))
    return orders_database_url


@dataclass(frozen=True)
class RefusingTrigger:
    """A PostgreSQL row trigger that makes the database refuse a write, as a real failure would."""

    url: str
    name: str
    timing: str  # e.g. "BEFORE INSERT"
    table: str
    raise_sql: str  # e.g. "RAISE EXCEPTION 'going away' USING ERRCODE = '57P03'"
    condition: str = "true"  # the trigger's WHEN condition

    def install(self) -> None:
        """Create the trigger function and the trigger."""
        name, table = sql.Identifier(self.name), sql.Identifier(self.table)
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(
                sql.SQL(
                    "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {}; END $$"
                ).format(name, sql.SQL(self.raise_sql))
            )
            connection.execute(
                sql.SQL(
                    "CREATE TRIGGER {} {} ON {} FOR EACH ROW WHEN ({}) EXECUTE FUNCTION {}()"
                ).format(name, sql.SQL(self.timing), table, sql.SQL(self.condition), name)
            )

    def remove(self) -> None:
        """Drop the trigger and its function (idempotent, so a test may heal mid-way)."""
        name, table = sql.Identifier(self.name), sql.Identifier(self.table)
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(name, table))
            connection.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(name))


@contextlib.contextmanager
def refusing_trigger(**trigger: str) -> Iterator[RefusingTrigger]:
    """Install a RefusingTrigger for the block; it is always dropped afterwards."""
    installed = RefusingTrigger(**trigger)
    installed.install()
    try:
        yield installed
    finally:
        installed.remove()


def count_rows(url: str, table: str) -> int:
    """How many rows an orders table holds (read straight from PostgreSQL)."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone()
    assert row is not None
    return int(row[0])


def count_orders_not_failed(url: str) -> int:
    """Orders that are placed or still pending: a refused order must leave none behind."""
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(*) FROM orders WHERE status <> 'failed'").fetchone()
    assert row is not None
    return int(row[0])


def order_statuses(url: str) -> dict[str, int]:
    """How many orders the orders database holds in each status."""
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT status, count(*) FROM orders GROUP BY status").fetchall()
    return {str(row[0]): int(row[1]) for row in rows}


@pytest.fixture
def orders_client(orders_db: str) -> OrdersClientFactory:
    """Start the orders app (lifespan included) pointed at a catalog URL; yield a client."""

    @asynccontextmanager
    async def start(catalog_url: str, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        defaults: dict[str, Any] = {
            "database_url": orders_db,
            "api_key": API_KEY,
            "catalog_url": catalog_url,
            "database_pool_size": 5,
        }
        settings = OrdersSettings(**(defaults | overrides))
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


@dataclass(frozen=True)
class LiveOrders:
    """An orders server running as a real process (`bookstore-orders`)."""

    base_url: str
    database_url: str


def start_orders_server(
    database_url: str, catalog_url: str, *, workers: int = 2
) -> Iterator[LiveOrders]:
    """Run `bookstore-orders` (migrate, then serve) on a free port until closed."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "API_KEY": API_KEY,
        "CATALOG_URL": catalog_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": str(workers),
        "LOG_LEVEL": "warning",
        "DATABASE_POOL_SIZE": "4",  # PostgreSQL connections are shared by the whole suite
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    script = Path(sys.executable).with_name("bookstore-orders")
    process = subprocess.Popen([str(script)], env=env, stdout=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"orders exited with {process.returncode} while starting")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError("orders did not become ready within 30 s")
            time.sleep(0.1)
        yield LiveOrders(base_url=base_url, database_url=database_url)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def live_orders(orders_db: str, live_catalog: LiveCatalog) -> Iterator[LiveOrders]:
    """A real orders server (2 workers) on the emptied orders database, calling live catalog."""
    yield from start_orders_server(orders_db, live_catalog.base_url)
