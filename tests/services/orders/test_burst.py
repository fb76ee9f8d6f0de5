"""A burst of orders at one book is answered 201 or 409, never shed as a catalog outage;
the breaker still opens when catalog really does not answer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.services.conftest import LiveCatalog, start_catalog_server
from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import (
    AUTH,
    LiveOrders,
    OrdersClientFactory,
    order_statuses,
    start_orders_server,
)
from tests.services.orders.test_orders_api import order_body
from tests.services.orders.test_with_live_catalog import (
    create_book,
    order_one_copy_at_once,
    reservations_of,
    stock_of,
)

CIRCUIT_CLOSED = "bookstore_orders_catalog_circuit_state 0.0"
CIRCUIT_OPEN = "bookstore_orders_catalog_circuit_state 2.0"


@pytest.fixture(scope="module")
def two_worker_catalog(make_database: Callable[[str], str]) -> Iterator[LiveCatalog]:
    """A catalog server with two workers (as the bench runs it), on its own database."""
    yield from start_catalog_server(make_database("burst_catalog"), workers=2)


async def test_two_hundred_orders_at_once_for_fifty_copies_are_all_answered_201_or_409(
    orders_db: str, two_worker_catalog: LiveCatalog
) -> None:
    live_catalog = two_worker_catalog
    servers = start_orders_server(orders_db, live_catalog.base_url)
    live_orders = next(servers)
    try:
        await _race(live_orders, live_catalog)
    finally:
        servers.close()


async def _race(live_orders: LiveOrders, live_catalog: LiveCatalog) -> None:
    """200 one-copy orders at once at a book with 50 copies, as the bench's check does."""
    book_id = await create_book(live_catalog, quantity=50)
    responses = await order_one_copy_at_once(live_orders, book_id, orders=200, http_timeout=60)
    async with httpx.AsyncClient(base_url=live_orders.base_url, timeout=60) as client:
        metrics = [(await client.get("/metrics")).text for _ in range(4)]
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] * 50 + [409] * 150, [r.text for r in responses if r.status_code > 409]
    assert await stock_of(live_catalog, book_id) == 0
    assert [quantity for _, quantity in reservations_of(live_catalog, book_id)] == [1] * 50
    assert order_statuses(live_orders.database_url) == {"confirmed": 50, "failed": 150}
    # no catalog call failed, and the breaker of every worker stayed closed
    assert all(CIRCUIT_CLOSED in text for text in metrics)
    assert all('outcome="transport_error"} 0.0' in text for text in metrics)


async def test_calls_waiting_their_turn_past_the_deadline_are_503_but_not_catalog_failures(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    catalog.hang_reserve_for, catalog.hang_seconds = {1}, 0.3  # slow but healthy
    body = order_body(items=[{"book_id": 1, "quantity": 1}])
    settings = {
        "catalog_max_connections": 1,
        "catalog_deadline": 0.5,
        "circuit_failure_threshold": 1,  # a single failure reported would open it
    }
    async with orders_client(url, **settings) as client:
        responses = await asyncio.gather(
            *(client.post("/orders", json=body, headers=AUTH) for _ in range(4))
        )
        catalog.hang_reserve_for = set()
        after = await client.post("/orders", json=body, headers=AUTH)
    assert sorted(r.status_code for r in responses) == [201, 201, 503, 503]
    waited = [r for r in responses if r.status_code == 503]
    assert all("waiting in this worker" in r.json()["detail"] for r in waited)
    assert all(int(r.headers["retry-after"]) >= 1 for r in waited)
    assert catalog.reserve_calls == 3  # the two that waited too long were never sent
    assert catalog.release_calls == 0  # so there is nothing to give back
    # the breaker stayed closed: one failure reported would have opened it for 5 s, and this
    # app's breaker is read by its behaviour (the circuit gauge is the process's, shared
    # with every other test's app in this process)
    assert after.status_code == 201
    assert catalog.stock[1] == 7


async def test_the_breaker_still_opens_when_catalog_does_not_answer_in_time(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    catalog.hang_reserve_for, catalog.hang_seconds = {1}, 3.0
    body = order_body(items=[{"book_id": 1, "quantity": 1}])
    settings = {
        "catalog_read_timeout": 0.2,
        "circuit_failure_threshold": 2,
        "circuit_reset_timeout": 60,
    }
    async with orders_client(url, **settings) as client:
        first = await client.post("/orders", json=body, headers=AUTH)
        fast = await client.post("/orders", json=body, headers=AUTH)
        metrics = (await client.get("/metrics")).text
    assert first.status_code == 503
    assert "timed out" in first.json()["detail"] or "circuit open" in first.json()["detail"]
    assert fast.status_code == 503
    assert "circuit open" in fast.json()["detail"]
    assert CIRCUIT_OPEN in metrics
