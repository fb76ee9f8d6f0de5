"""Idempotency-Key: a retried POST /orders returns the first answer, never a second order."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import psycopg
from bookstore_orders.app import create_app
from bookstore_orders.config import OrdersSettings
from bookstore_orders.service import OrdersService

from tests.services.conftest import free_port
from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import (
    API_KEY,
    AUTH,
    OrdersClientFactory,
    count_orders_not_failed,
    order_statuses,
)
from tests.services.orders.test_orders_api import order_body


def keyed(key: str) -> dict[str, str]:
    return AUTH | {"Idempotency-Key": key}


async def test_same_key_twice_returns_the_first_order_and_reserves_once(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        first = await client.post("/orders", json=order_body(), headers=keyed("order-1"))
        second = await client.post("/orders", json=order_body(), headers=keyed("order-1"))
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["idempotent-replayed"] == "true"
    assert catalog.reserve_calls == 1
    assert count_orders_not_failed(orders_db) == 1


async def test_different_keys_place_different_orders(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    _, url = stub_catalog
    async with orders_client(url) as client:
        for key in ("a", "b"):
            response = await client.post("/orders", json=order_body(), headers=keyed(key))
            assert response.status_code == 201
    assert count_orders_not_failed(orders_db) == 2


async def test_same_key_with_a_different_body_is_422(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    _, url = stub_catalog
    async with orders_client(url) as client:
        await client.post("/orders", json=order_body(), headers=keyed("k"))
        other = order_body(items=[{"book_id": 2, "quantity": 1}])
        response = await client.post("/orders", json=other, headers=keyed("k"))
    assert response.status_code == 422
    assert "different order" in response.json()["detail"]
    assert count_orders_not_failed(orders_db) == 1


async def test_same_key_concurrently_places_one_order_with_one_set_of_reservations(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        responses = await asyncio.gather(
            *(client.post("/orders", json=order_body(), headers=keyed("burst")) for _ in range(10))
        )
        replay = await client.post("/orders", json=order_body(), headers=keyed("burst"))
    created = [r for r in responses if r.status_code == 201]
    in_progress = [r for r in responses if r.status_code == 409]
    assert len(created) + len(in_progress) == 10
    assert {r.json()["id"] for r in created} == {replay.json()["id"]}
    assert all(r.headers["retry-after"] == "1" for r in in_progress)
    assert catalog.reserve_calls == 1
    assert catalog.stock[1] == 8
    assert count_orders_not_failed(orders_db) == 1


async def test_a_final_rejection_is_replayed_for_its_key(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    body = order_body(items=[{"book_id": 1, "quantity": 11}])
    async with orders_client(url) as client:
        first = await client.post("/orders", json=body, headers=keyed("short"))
        catalog.stock[1] = 100
        second = await client.post("/orders", json=body, headers=keyed("short"))
    assert first.status_code == second.status_code == 409
    assert second.json() == first.json()
    assert second.headers["content-type"] == "application/problem+json"
    assert catalog.reserve_calls == 1


async def test_a_passing_outage_is_not_remembered_so_the_retry_places_the_order(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    _, url = stub_catalog
    async with orders_client(f"http://127.0.0.1:{free_port()}") as client:
        down = await client.post("/orders", json=order_body(), headers=keyed("retry-me"))
    async with orders_client(url) as client:
        retried = await client.post("/orders", json=order_body(), headers=keyed("retry-me"))
    assert down.status_code == 503
    assert retried.status_code == 201
    # catalog refused the connection, so it holds nothing: the first order just failed
    assert order_statuses(orders_db) == {"failed": 1, "confirmed": 1}


async def test_an_overlong_or_unprintable_key_is_422(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        long_key = await client.post("/orders", json=order_body(), headers=keyed("k" * 256))
        spaced = await client.post("/orders", json=order_body(), headers=keyed("has space"))
    for response in (long_key, spaced):
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["header", "idempotency-key"]
    assert catalog.reserve_calls == 0


async def test_keys_older_than_the_retention_are_purged_and_newer_ones_kept(
    orders_db: str, stub_catalog: tuple[StubCatalog, str]
) -> None:
    _, url = stub_catalog
    app = create_app(OrdersSettings(database_url=orders_db, api_key=API_KEY, catalog_url=url))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://orders") as client:
            for key in ("old", "new"):
                await client.post("/orders", json=order_body(), headers=keyed(key))
        with psycopg.connect(orders_db, autocommit=True) as connection:
            connection.execute(
                "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' "
                "WHERE key = 'old'"
            )
        service: OrdersService = app.state.orders_service
        purged = await service.purge_idempotency_keys(timedelta(hours=24))
    assert purged == 1
    with psycopg.connect(orders_db) as connection:
        keys = [row[0] for row in connection.execute("SELECT key FROM idempotency_keys")]
    assert keys == ["new"]
