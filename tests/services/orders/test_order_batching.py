"""Concurrent orders on the raw pool share statements (one round trip and one commit for
several orders), and every order still gets exactly its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from functools import partial
from typing import Any

import asyncpg
import psycopg
import pytest
from bookstore_common.batching import Batcher
from bookstore_orders import repository
from bookstore_orders.compensation import new_reservation_token
from bookstore_orders.models import utcnow

from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import AUTH, count_rows, order_statuses
from tests.services.orders.test_orders_api import order_body
from tests.services.orders.test_raw_pool import client_of, running_app

ORDERS = 12

# Each inserted order row records the transaction that wrote it; the short sleep keeps the
# first INSERT in flight while the other orders arrive.
_INSTALL_WRITE_LOG = [
    "CREATE TABLE write_log (order_id integer, tx bigint)",
    """
    CREATE FUNCTION log_order_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO write_log VALUES (NEW.id, txid_current());
        PERFORM pg_sleep(0.05);
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER log_order_write AFTER INSERT ON orders FOR EACH ROW "
    "EXECUTE FUNCTION log_order_write()",
]
_REMOVE_WRITE_LOG = [
    "DROP TRIGGER IF EXISTS log_order_write ON orders",
    "DROP FUNCTION IF EXISTS log_order_write()",
    "DROP TABLE IF EXISTS write_log",
]


@pytest.fixture
def write_log(orders_db: str) -> Iterator[str]:
    """Record, per inserted order, the id of the transaction that inserted it."""
    with psycopg.connect(orders_db, autocommit=True) as connection:
        for statement in (*_REMOVE_WRITE_LOG, *_INSTALL_WRITE_LOG):
            connection.execute(statement)  # type: ignore[arg-type]
    try:
        yield orders_db
    finally:
        with psycopg.connect(orders_db, autocommit=True) as connection:
            for statement in _REMOVE_WRITE_LOG:
                connection.execute(statement)  # type: ignore[arg-type]


def transactions_that_inserted_orders(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute("SELECT count(DISTINCT tx) FROM write_log").fetchone()
    assert row is not None
    return int(row[0])


async def test_concurrent_orders_share_inserts_yet_each_gets_its_own_order(
    stub_catalog: tuple[StubCatalog, str], write_log: str
) -> None:
    catalog, url = stub_catalog
    catalog.stock = {1: ORDERS, 2: ORDERS}
    async with running_app(write_log, url) as app, client_of(app) as client:
        bodies = [
            order_body(
                customer_name=f"Customer {n}",
                items=[{"book_id": 1, "quantity": 1}, {"book_id": 2, "quantity": 1}],
            )
            for n in range(ORDERS)
        ]
        responses = await asyncio.gather(
            *(client.post("/orders", json=body, headers=AUTH) for body in bodies)
        )
        assert [response.status_code for response in responses] == [201] * ORDERS
        stored = [
            (await client.get(f"/orders/{response.json()['id']}")).json() for response in responses
        ]
    assert [order["customer_name"] for order in stored] == [f"Customer {n}" for n in range(ORDERS)]
    assert all([item["book_id"] for item in order["items"]] == [1, 2] for order in stored)
    assert all(order["status"] == "confirmed" for order in stored)
    assert order_statuses(write_log) == {"confirmed": ORDERS}
    assert count_rows(write_log, "order_items") == 2 * ORDERS
    assert catalog.held() == 2 * ORDERS
    assert catalog.stock == {1: 0, 2: 0}
    # the first INSERT went alone; the orders that arrived meanwhile went together
    assert transactions_that_inserted_orders(write_log) <= 3


def pending(name: str) -> dict[str, Any]:
    """insert_pending_orders_raw's arguments for one order."""
    return {
        "customer_name": name,
        "customer_email": "reader@example.com",
        "line_count": 1,
        "reservation_token": new_reservation_token(),
        "requested_items": [{"book_id": 1, "quantity": 1}],
        "created_at": utcnow(),
    }


def line(book_id: int, reference: str) -> dict[str, Any]:
    return {
        "book_id": book_id,
        "quantity": 1,
        "unit_price": Decimal("9.99"),
        "reservation_id": reference,
    }


async def test_a_batched_confirm_confirms_only_the_orders_still_pending(
    stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    _, url = stub_catalog
    async with running_app(orders_db, url) as app:
        database = app.state.database
        ids = await repository.insert_pending_orders_raw(
            database, [pending("a"), pending("b"), pending("c")]
        )
        with psycopg.connect(orders_db, autocommit=True) as connection:
            connection.execute("UPDATE orders SET status = 'failed' WHERE id = %s", (ids[1],))
        confirmed = await repository.confirm_orders_raw(
            database,
            [
                repository.Confirmation(order_id, Decimal("9.99"), [line(1, f"r-{order_id}")])
                for order_id in ids
            ],
        )
    assert confirmed == [True, False, True]
    assert order_statuses(orders_db) == {"confirmed": 2, "failed": 1}
    with psycopg.connect(orders_db) as connection:
        lines = connection.execute("SELECT order_id FROM order_items ORDER BY id").fetchall()
    assert [row[0] for row in lines] == [ids[0], ids[2]]


async def test_an_order_the_database_refuses_fails_alone_in_its_batch(
    stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    _, url = stub_catalog
    async with running_app(orders_db, url) as app:
        batcher = Batcher(
            partial(repository.insert_pending_orders_raw, app.state.database), concurrency=1
        )
        first = asyncio.create_task(batcher.submit(pending("first")))
        await asyncio.sleep(0)
        too_long = "x" * 201  # the column holds 200 characters
        results = await asyncio.gather(
            *(batcher.submit(pending(name)) for name in ("good", too_long, "also good")),
            return_exceptions=True,
        )
        await first
    assert isinstance(results[0], int)
    assert isinstance(results[1], asyncpg.StringDataRightTruncationError)
    assert isinstance(results[2], int)
    assert count_rows(orders_db, "orders") == 3


async def test_one_batch_refuses_orders_that_share_a_reservation_token(
    stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    _, url = stub_catalog
    twin = pending("a")
    async with running_app(orders_db, url) as app:
        with pytest.raises(ValueError, match="share a reservation token"):
            await repository.insert_pending_orders_raw(app.state.database, [twin, dict(twin)])
    assert count_rows(orders_db, "orders") == 0
