"""The place-order saga when catalog or the database fails: nothing is left half-made."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from bookstore_orders.app import create_app
from bookstore_orders.config import OrdersSettings

from tests.services.conftest import free_port
from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import (
    API_KEY,
    AUTH,
    OrdersClientFactory,
    count_orders_not_failed,
    count_rows,
    order_statuses,
    refusing_trigger,
)
from tests.services.orders.test_orders_api import order_body

LEFT_PENDING_METRIC = "bookstore_orders_left_pending_total "
SWEPT_METRIC = "bookstore_orders_swept_total "
TWO_BOOKS = order_body(items=[{"book_id": 1, "quantity": 3}, {"book_id": 2, "quantity": 1}])


def assert_no_order_and_no_held_stock(catalog: StubCatalog, orders_db: str) -> None:
    assert catalog.reservations == {}
    assert catalog.stock == {1: 10, 2: 10}
    assert count_orders_not_failed(orders_db) == 0
    assert count_rows(orders_db, "order_items") == 0


async def test_catalog_error_on_a_later_line_releases_the_lines_already_reserved(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    catalog.fail_reserve_for = {2}
    async with orders_client(url) as client:
        response = await client.post("/orders", json=TWO_BOOKS, headers=AUTH)
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert "no stock is held" in response.json()["detail"]
    assert catalog.reserve_calls == 4  # the failing line is retried, safely, by reference
    assert_no_order_and_no_held_stock(catalog, orders_db)


async def test_catalog_timing_out_on_a_line_releases_the_lines_already_reserved(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    catalog.hang_reserve_for = {2}
    catalog.fail_reserve_for = {2}
    catalog.hang_seconds = 1.0
    async with orders_client(url, catalog_read_timeout=0.2) as client:
        response = await client.post("/orders", json=TWO_BOOKS, headers=AUTH)
    assert response.status_code == 503
    assert "timed out" in response.json()["detail"]
    assert_no_order_and_no_held_stock(catalog, orders_db)


@pytest.fixture
def failing_order_writes(orders_db: str) -> Iterator[None]:
    """Make PostgreSQL refuse every new order row (a real database failure)."""
    with refusing_trigger(
        url=orders_db,
        name="refuse_orders",
        timing="BEFORE INSERT",
        table="order_items",
        raise_sql="RAISE EXCEPTION 'orders are refused by the test'",
    ):
        yield


@pytest.mark.usefixtures("failing_order_writes")
async def test_failed_order_write_releases_every_reservation(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        response = await client.post("/orders", json=TWO_BOOKS, headers=AUTH)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert_no_order_and_no_held_stock(catalog, orders_db)


async def test_release_is_retried_when_catalog_answers_503(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    catalog.fail_reserve_for = {2}
    catalog.fail_next_releases = 2
    async with orders_client(url, circuit_failure_threshold=10) as client:
        response = await client.post("/orders", json=TWO_BOOKS, headers=AUTH)
    assert response.status_code == 503
    assert catalog.release_calls == 4  # both lines by reference, each refused once
    assert_no_order_and_no_held_stock(catalog, orders_db)


async def test_catalog_down_is_503_with_retry_after_within_two_seconds_and_confirms_nothing(
    orders_client: OrdersClientFactory, orders_db: str
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    async with orders_client(closed) as client:
        started = time.monotonic()
        response = await client.post("/orders", json=order_body(), headers=AUTH)
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert elapsed < 2.5
    # no request reached catalog, so nothing can be held there: failed at once
    assert order_statuses(orders_db) == {"failed": 1}
    assert count_rows(orders_db, "order_items") == 0


async def test_breaker_opens_after_repeated_failures_and_then_fails_fast(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    catalog.fail_reserve_for = {1}
    body = order_body(items=[{"book_id": 1, "quantity": 1}])
    async with orders_client(url, circuit_failure_threshold=2, circuit_reset_timeout=60) as client:
        for _ in range(2):
            assert (await client.post("/orders", json=body, headers=AUTH)).status_code == 503
        fast = await client.post("/orders", json=body, headers=AUTH)
        metrics = (await client.get("/metrics")).text
    assert fast.status_code == 503
    assert "circuit open" in fast.json()["detail"]
    assert int(fast.headers["retry-after"]) >= 59
    assert catalog.reserve_calls == 2
    assert "bookstore_orders_catalog_circuit_state 2.0" in metrics
    assert 'bookstore_orders_rejected_total{reason="catalog_unavailable"}' in metrics


async def test_cancel_with_catalog_down_is_503_and_the_order_stays_confirmed(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        placed = (await client.post("/orders", json=order_body(), headers=AUTH)).json()
    async with orders_client(f"http://127.0.0.1:{free_port()}") as client:
        refused = await client.post(f"/orders/{placed['id']}/cancel", headers=AUTH)
        status = (await client.get(f"/orders/{placed['id']}")).json()["status"]
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert status == "confirmed"
    assert catalog.stock[1] == 8
    async with orders_client(url) as client:
        retried = await client.post(f"/orders/{placed['id']}/cancel", headers=AUTH)
    assert retried.json()["status"] == "cancelled"
    assert catalog.stock[1] == 10


async def test_order_whose_stock_catalog_refuses_back_stays_pending_until_swept(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    catalog.fail_reserve_for = {2}
    catalog.fail_next_releases = 6  # both lines' release and every retry of them
    settings = {"pending_sweep_interval": 0.05, "pending_grace_seconds": 0.3}
    async with orders_client(url, circuit_failure_threshold=50, **settings) as client:
        response = await client.post("/orders", json=TWO_BOOKS, headers=AUTH)
        assert response.status_code == 503
        status = (await client.get("/orders/1")).json()["status"]
        for _ in range(200):  # the sweeper runs every 50 ms; allow it 10 s
            if (await client.get("/orders/1")).json()["status"] == "failed":
                break
            await asyncio.sleep(0.05)
        metrics = (await client.get("/metrics")).text
    assert status == "pending"
    assert_no_order_and_no_held_stock(catalog, orders_db)
    for metric in (LEFT_PENDING_METRIC, SWEPT_METRIC):
        values = [line for line in metrics.splitlines() if line.startswith(metric)]
        assert float(values[0].split()[-1]) >= 1


async def test_unreachable_orders_database_is_503_and_gives_the_stock_back(
    stub_catalog: tuple[StubCatalog, str],
) -> None:
    catalog, url = stub_catalog
    settings = OrdersSettings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
        api_key=API_KEY,
        catalog_url=url,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            response = await client.post("/orders", json=TWO_BOOKS, headers=AUTH)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "database is unavailable" in response.json()["detail"]
    assert catalog.reservations == {}
    assert catalog.stock == {1: 10, 2: 10}


@pytest.fixture
def unavailable_order_updates(orders_db: str) -> Iterator[Callable[[], None]]:
    """Make PostgreSQL refuse order updates as if shutting down; call the result to heal."""
    with refusing_trigger(
        url=orders_db,
        name="refuse_updates",
        timing="BEFORE UPDATE",
        table="orders",
        condition="NEW.status = 'cancelled'",
        raise_sql="RAISE EXCEPTION 'going away' USING ERRCODE = '57P03'",
    ) as trigger:
        yield trigger.remove


async def test_cancel_whose_database_write_fails_is_503_and_a_retry_completes_it(
    orders_client: OrdersClientFactory,
    stub_catalog: tuple[StubCatalog, str],
    unavailable_order_updates: Callable[[], None],
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        placed = (await client.post("/orders", json=order_body(), headers=AUTH)).json()
        refused = await client.post(f"/orders/{placed['id']}/cancel", headers=AUTH)
        unavailable_order_updates()
        retried = await client.post(f"/orders/{placed['id']}/cancel", headers=AUTH)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert retried.status_code == 200
    assert retried.json()["status"] == "cancelled"
    assert catalog.stock[1] == 10
    assert catalog.reservations == {}
