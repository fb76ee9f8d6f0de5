"""Crash recovery: an order left pending (its process died mid-order) is compensated."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import psycopg
import pytest
from bookstore_common.db import create_engine, create_sessionmaker
from bookstore_orders.catalog_client import CatalogClient, build_http_session
from bookstore_orders.circuit_breaker import CircuitBreaker
from bookstore_orders.compensation import (
    OrderCompensator,
    new_reservation_token,
    reservation_reference,
)
from bookstore_orders.config import OrdersSettings

from tests.services.conftest import LiveCatalog
from tests.services.orders.conftest import API_KEY, OrdersClientFactory, order_statuses
from tests.services.orders.test_with_live_catalog import create_book, reservations_of, stock_of


def insert_pending_order(orders_db: str, lines: int, age: timedelta) -> tuple[int, str]:
    """An order row as a process writes it before reserving, `age` old: (id, token)."""
    token = new_reservation_token()
    with psycopg.connect(orders_db, autocommit=True) as connection:
        row = connection.execute(
            "INSERT INTO orders (status, customer_name, customer_email, total_price, "
            "line_count, reservation_token, created_at, updated_at) "
            "VALUES ('pending', 'Ada', 'ada@example.com', 0, %s, %s, now() - %s, now()) "
            "RETURNING id",
            (lines, token, age),
        ).fetchone()
    assert row is not None
    return int(row[0]), token


async def reserve_at_catalog(live: LiveCatalog, book_id: int, quantity: int, ref: str) -> int:
    """Reserve at the real catalog under `ref`, as the dead process did; the HTTP status."""
    async with httpx.AsyncClient(base_url=live.base_url) as client:
        response = await client.post(
            f"/books/{book_id}/reservations",
            json={"quantity": quantity},
            headers={"X-API-Key": live.api_key, "Idempotency-Key": ref},
        )
    return response.status_code


@pytest.fixture
async def compensators(
    orders_db: str, live_catalog: LiveCatalog
) -> AsyncIterator[list[OrderCompensator]]:
    """Two sweepers (as two replicas would run), each with its own pool and catalog client."""
    settings = OrdersSettings(database_url=orders_db, database_pool_size=2)
    engines = [create_engine(settings) for _ in range(2)]
    sessions = [build_http_session(API_KEY) for _ in range(2)]
    yield [
        OrderCompensator(
            create_sessionmaker(engine),
            CatalogClient(http, live_catalog.base_url, CircuitBreaker()),
        )
        for engine, http in zip(engines, sessions, strict=True)
    ]
    for engine, http in zip(engines, sessions, strict=True):
        await http.close()
        await engine.dispose()


async def test_sweeper_releases_a_dead_orders_reservations_and_marks_it_failed(
    orders_client: OrdersClientFactory, live_catalog: LiveCatalog, orders_db: str
) -> None:
    book_id = await create_book(live_catalog, quantity=5)
    order_id, token = insert_pending_order(orders_db, lines=2, age=timedelta(minutes=1))
    first_line = reservation_reference(order_id, token, 0)
    assert await reserve_at_catalog(live_catalog, book_id, 2, first_line) == 201
    # the process died here: line 1 was never reserved, the order never confirmed
    settings = {"pending_sweep_interval": 0.05, "pending_grace_seconds": 30}
    async with orders_client(live_catalog.base_url, **settings):
        for _ in range(200):  # the sweeper runs every 50 ms; allow it 10 s
            if order_statuses(orders_db) == {"failed": 1}:
                break
            await asyncio.sleep(0.05)
    assert order_statuses(orders_db) == {"failed": 1}
    assert await stock_of(live_catalog, book_id) == 5
    assert reservations_of(live_catalog, book_id) == []
    second_line = reservation_reference(order_id, token, 1)
    assert await reserve_at_catalog(live_catalog, book_id, 1, second_line) == 409
    assert await stock_of(live_catalog, book_id) == 5


async def test_order_pending_for_less_than_the_grace_period_is_left_alone(
    compensators: list[OrderCompensator], live_catalog: LiveCatalog, orders_db: str
) -> None:
    book_id = await create_book(live_catalog, quantity=5)
    order_id, token = insert_pending_order(orders_db, lines=1, age=timedelta(seconds=5))
    ref = reservation_reference(order_id, token, 0)
    assert await reserve_at_catalog(live_catalog, book_id, 1, ref) == 201
    assert await compensators[0].sweep(timedelta(seconds=30)) == 0
    assert order_statuses(orders_db) == {"pending": 1}
    assert await stock_of(live_catalog, book_id) == 4


async def test_two_sweepers_at_once_compensate_each_stale_order_once(
    compensators: list[OrderCompensator], live_catalog: LiveCatalog, orders_db: str
) -> None:
    book_id = await create_book(live_catalog, quantity=10)
    for _ in range(3):
        order_id, token = insert_pending_order(orders_db, lines=1, age=timedelta(minutes=5))
        ref = reservation_reference(order_id, token, 0)
        assert await reserve_at_catalog(live_catalog, book_id, 2, ref) == 201
    swept = await asyncio.gather(*(c.sweep(timedelta(seconds=30)) for c in compensators))
    assert sum(swept) == 3
    assert order_statuses(orders_db) == {"failed": 3}
    assert await stock_of(live_catalog, book_id) == 10
    assert reservations_of(live_catalog, book_id) == []


async def test_compensating_an_order_that_did_confirm_keeps_its_stock(
    compensators: list[OrderCompensator], live_catalog: LiveCatalog, orders_db: str
) -> None:
    book_id = await create_book(live_catalog, quantity=5)
    order_id, token = insert_pending_order(orders_db, lines=1, age=timedelta(0))
    ref = reservation_reference(order_id, token, 0)
    assert await reserve_at_catalog(live_catalog, book_id, 2, ref) == 201
    with psycopg.connect(orders_db, autocommit=True) as connection:
        connection.execute("UPDATE orders SET status = 'confirmed' WHERE id = %s", (order_id,))
    # e.g. the confirm committed but its answer was lost, so the saga tries to compensate
    await compensators[0].fail_order(order_id, token, 1)
    assert order_statuses(orders_db) == {"confirmed": 1}
    assert await stock_of(live_catalog, book_id) == 3
