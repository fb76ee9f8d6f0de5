"""Catalog commits a reservation but its answer is late or never comes: no copy is lost.

A stand-in proxies to the REAL catalog and delays chosen reservation POSTs: after catalog
committed them (the answer is late), or before they reach catalog (the request is late).
Whatever happens, catalog's stock plus its active reservations adds up to what it had,
and the active reservations are exactly the confirmed orders' lines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.services.conftest import LiveCatalog
from tests.services.orders.catalog_stub import serve
from tests.services.orders.conftest import AUTH, OrdersClientFactory, order_statuses
from tests.services.orders.test_orders_api import order_body
from tests.services.orders.test_with_live_catalog import (
    create_book,
    reservation_ids_in_orders,
    reservations_of,
    stock_of,
)

READ_TIMEOUT = 0.3
LATE = 1.0  # well past orders' read timeout


@dataclass
class LateCatalog:
    """Forwards everything to catalog; delays the first `late_posts` reservation POSTs."""

    target: str
    late_posts: int = 0
    answer_late: bool = True  # False: the request itself reaches catalog late
    posts: int = 0

    async def forward(self, request: Request) -> Response:
        is_post = request.method == "POST"
        late = is_post and self.posts < self.late_posts
        self.posts += is_post
        if late and not self.answer_late:
            await asyncio.sleep(LATE)
        async with httpx.AsyncClient(base_url=self.target) as client:
            answer = await client.request(
                request.method,
                request.url.path,
                content=await request.body(),
                headers={k: v for k, v in request.headers.items() if k != "host"},
            )
        if late and self.answer_late:
            await asyncio.sleep(LATE)
        return Response(answer.content, answer.status_code, media_type="application/json")

    def app(self) -> Starlette:
        return Starlette(
            routes=[Route("/{path:path}", self.forward, methods=["GET", "POST", "DELETE"])]
        )


@pytest.fixture
def late_catalog(live_catalog: LiveCatalog) -> Iterator[tuple[LateCatalog, str]]:
    """The delaying stand-in in front of the live catalog, on its own port."""
    proxy = LateCatalog(target=live_catalog.base_url)
    with serve(proxy.app()) as url:
        yield proxy, url


async def assert_no_copy_lost(
    live_catalog: LiveCatalog, orders_db: str, book_id: int, stock: int
) -> None:
    """Stock plus active reservations is what the book had; those are the orders' lines."""
    held = reservations_of(live_catalog, book_id)
    assert await stock_of(live_catalog, book_id) + sum(q for _, q in held) == stock
    assert sorted(rid for rid, _ in held) == reservation_ids_in_orders(orders_db)


async def test_late_answer_to_a_committed_reservation_is_retried_and_the_order_confirms(
    orders_client: OrdersClientFactory,
    late_catalog: tuple[LateCatalog, str],
    live_catalog: LiveCatalog,
    orders_db: str,
) -> None:
    proxy, url = late_catalog
    book_id = await create_book(live_catalog, quantity=5)
    proxy.late_posts = 1
    body = order_body(items=[{"book_id": book_id, "quantity": 2}])
    async with orders_client(url, catalog_read_timeout=READ_TIMEOUT) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
    assert response.status_code == 201, response.text
    assert proxy.posts == 2  # the retry carried the same reference: catalog replayed it
    assert await stock_of(live_catalog, book_id) == 3
    assert order_statuses(orders_db) == {"confirmed": 1}
    await assert_no_copy_lost(live_catalog, orders_db, book_id, 5)


async def test_answers_that_never_come_in_time_fail_the_order_and_the_stock_comes_back(
    orders_client: OrdersClientFactory,
    late_catalog: tuple[LateCatalog, str],
    live_catalog: LiveCatalog,
    orders_db: str,
) -> None:
    proxy, url = late_catalog
    book_id = await create_book(live_catalog, quantity=5)
    other = await create_book(live_catalog, quantity=5)
    proxy.late_posts = 100
    body = order_body(
        items=[{"book_id": book_id, "quantity": 2}, {"book_id": other, "quantity": 1}]
    )
    # Six timeouts open the breaker, so the immediate release fails fast and the order
    # stays pending; the sweeper gives its stock back once the breaker lets it through.
    settings = {
        "catalog_read_timeout": READ_TIMEOUT,
        "circuit_reset_timeout": 0.5,
        "pending_sweep_interval": 0.05,
        "pending_grace_seconds": 0.5,
    }
    async with orders_client(url, **settings) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
        for _ in range(200):  # allow the sweeper 10 s
            if order_statuses(orders_db) == {"failed": 1}:
                break
            await asyncio.sleep(0.05)
    assert response.status_code == 503
    assert order_statuses(orders_db) == {"failed": 1}
    assert reservations_of(live_catalog, book_id) == reservations_of(live_catalog, other) == []
    assert (await stock_of(live_catalog, book_id), await stock_of(live_catalog, other)) == (5, 5)


async def test_reservation_reaching_catalog_after_the_order_gave_up_takes_nothing(
    orders_client: OrdersClientFactory,
    late_catalog: tuple[LateCatalog, str],
    live_catalog: LiveCatalog,
    orders_db: str,
) -> None:
    proxy, url = late_catalog
    book_id = await create_book(live_catalog, quantity=5)
    proxy.late_posts = 100
    proxy.answer_late = False
    body = order_body(items=[{"book_id": book_id, "quantity": 2}])
    async with orders_client(url, catalog_read_timeout=READ_TIMEOUT) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
        assert response.status_code == 503
        await asyncio.sleep(LATE + 0.5)  # let every delayed POST reach catalog
    assert order_statuses(orders_db) == {"failed": 1}
    assert reservations_of(live_catalog, book_id) == []
    assert await stock_of(live_catalog, book_id) == 5
    with psycopg.connect(orders_db) as connection:
        token = connection.execute("SELECT reservation_token FROM orders").fetchone()
    assert token is not None
    with psycopg.connect(live_catalog.database_url) as connection:
        tombstone = connection.execute(
            "SELECT quantity, released_at IS NOT NULL FROM reservations WHERE reference = %s",
            (f"order-1-{token[0]}-0",),
        ).fetchone()
    assert tombstone == (0, True)  # released before any POST arrived; they all got 409
