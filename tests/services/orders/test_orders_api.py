"""Every orders endpoint through HTTP: success paths, validation, auth and problem+json."""

from __future__ import annotations

from typing import Any

import pytest

from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import AUTH, OrdersClientFactory, count_orders_not_failed

PROBLEM = "application/problem+json"


def order_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "items": [{"book_id": 1, "quantity": 2}],
    }
    return body | overrides


async def test_placed_order_is_confirmed_priced_by_catalog_and_readable(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        body = order_body(items=[{"book_id": 1, "quantity": 2}, {"book_id": 2, "quantity": 1}])
        response = await client.post("/orders", json=body, headers=AUTH)
        assert response.status_code == 201, response.text
        order = response.json()
        assert response.headers["location"] == f"/orders/{order['id']}"
        assert order["status"] == "confirmed"
        assert order["customer_email"] == "ada@example.com"
        assert order["items"] == [
            {"book_id": 1, "quantity": 2, "unit_price": "9.99"},
            {"book_id": 2, "quantity": 1, "unit_price": "9.99"},
        ]
        assert order["total_price"] == "29.97"
        fetched = await client.get(response.headers["location"])
        assert fetched.status_code == 200
        assert fetched.json() == order
    assert catalog.stock == {1: 8, 2: 9}


async def test_placing_an_order_needs_the_api_key(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        missing = await client.post("/orders", json=order_body())
        wrong = await client.post("/orders", json=order_body(), headers={"X-API-Key": "nope"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert {"type", "title", "status", "detail"} <= response.json().keys()
    assert catalog.reserve_calls == 0
    assert count_orders_not_failed(orders_db) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (order_body(items=[]), ["body", "items"]),
        (order_body(items=[{"book_id": 1, "quantity": 0}]), ["body", "items", 0, "quantity"]),
        (order_body(items=[{"book_id": 1, "quantity": 1001}]), ["body", "items", 0, "quantity"]),
        (order_body(items=[{"book_id": 0, "quantity": 1}]), ["body", "items", 0, "book_id"]),
        (order_body(items=[{"book_id": "x", "quantity": 1}]), ["body", "items", 0, "book_id"]),
        (
            order_body(items=[{"book_id": i, "quantity": 1} for i in range(1, 52)]),
            ["body", "items"],
        ),
        (order_body(customer_email="not-an-email"), ["body", "customer_email"]),
        (order_body(customer_name="   "), ["body", "customer_name"]),
        (order_body(customer_name="x" * 201), ["body", "customer_name"]),
        (order_body(customer_name="nul\x00byte"), ["body", "customer_name"]),
        (
            order_body(items=[{"book_id": 1, "quantity": 1}, {"book_id": 1, "quantity": 2}]),
            ["body", "items"],
        ),
        (
            {"customer_name": "Ada", "items": [{"book_id": 1, "quantity": 1}]},
            ["body", "customer_email"],
        ),
    ],
    ids=[
        "no-items",
        "zero-quantity",
        "too-many-copies",
        "book-id-zero",
        "book-id-not-a-number",
        "51-items",
        "bad-email",
        "blank-name",
        "long-name",
        "control-character-in-name",
        "duplicate-book",
        "missing-email",
    ],
)
async def test_invalid_order_is_rejected_with_422_naming_the_field(
    orders_client: OrdersClientFactory,
    stub_catalog: tuple[StubCatalog, str],
    body: dict[str, Any],
    field: list[str | int],
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    assert field in [error["loc"] for error in response.json()["errors"]]
    assert catalog.reserve_calls == 0


@pytest.mark.parametrize(
    "body",
    [
        order_body(items=[{"book_id": 1, "quantity": 1, "unit_price": "0.01"}]),
        order_body(total_price="0.01"),
    ],
    ids=["line-price", "order-total"],
)
async def test_a_client_sent_price_is_rejected_because_prices_come_from_catalog(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], body: dict[str, Any]
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "extra_forbidden"
    assert catalog.reserve_calls == 0


async def test_order_for_an_unknown_book_is_422_and_releases_the_other_lines(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    body = order_body(items=[{"book_id": 1, "quantity": 3}, {"book_id": 99, "quantity": 1}])
    async with orders_client(url) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
    assert response.status_code == 422
    problem = response.json()
    assert "99" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "items", 1, "book_id"]
    assert catalog.stock[1] == 10
    assert catalog.reservations == {}
    assert count_orders_not_failed(orders_db) == 0


async def test_order_for_more_than_stock_is_rejected_without_reserving(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    body = order_body(items=[{"book_id": 1, "quantity": 4}, {"book_id": 2, "quantity": 11}])
    async with orders_client(url) as client:
        response = await client.post("/orders", json=body, headers=AUTH)
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert "book 2" in response.json()["detail"]
    assert catalog.stock == {1: 10, 2: 10}
    assert catalog.reservations == {}
    assert count_orders_not_failed(orders_db) == 0


async def test_unknown_order_is_404_problem_and_a_bad_id_is_422(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    _, url = stub_catalog
    async with orders_client(url) as client:
        missing = await client.get("/orders/12345")
        bad = await client.get("/orders/abc")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM
    assert "12345" in missing.json()["detail"]
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["path", "order_id"]


async def test_orders_are_listed_newest_first_filtered_and_paginated(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    _, url = stub_catalog
    async with orders_client(url) as client:
        ids = []
        for email in ("a@example.com", "b@example.com", "a@example.com"):
            placed = await client.post(
                "/orders",
                json=order_body(customer_email=email, items=[{"book_id": 1, "quantity": 1}]),
                headers=AUTH,
            )
            ids.append(placed.json()["id"])
        await client.post(f"/orders/{ids[0]}/cancel", headers=AUTH)

        everything = (await client.get("/orders")).json()
        page = (await client.get("/orders", params={"limit": 1, "offset": 1})).json()
        by_email = (await client.get("/orders", params={"email": "a@example.com"})).json()
        confirmed = (await client.get("/orders", params={"status": "confirmed"})).json()
        bad_status = await client.get("/orders", params={"status": "shipped"})
        bad_limit = await client.get("/orders", params={"limit": 0})

    assert [o["id"] for o in everything["items"]] == ids[::-1]
    assert (everything["total"], everything["limit"], everything["offset"]) == (3, 20, 0)
    assert [o["id"] for o in page["items"]] == [ids[1]]
    assert page["total"] == 3
    assert [o["id"] for o in by_email["items"]] == [ids[2], ids[0]]
    assert [o["id"] for o in confirmed["items"]] == [ids[2], ids[1]]
    assert bad_status.status_code == 422
    assert bad_limit.status_code == 422


async def test_cancel_gives_the_stock_back_and_a_second_cancel_is_409(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        placed = (await client.post("/orders", json=order_body(), headers=AUTH)).json()
        assert catalog.stock[1] == 8
        cancelled = await client.post(f"/orders/{placed['id']}/cancel", headers=AUTH)
        again = await client.post(f"/orders/{placed['id']}/cancel", headers=AUTH)
        fetched = (await client.get(f"/orders/{placed['id']}")).json()
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert fetched["status"] == "cancelled"
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert catalog.stock[1] == 10
    assert catalog.reservations == {}


async def test_cancel_needs_the_api_key_and_an_existing_order(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    _, url = stub_catalog
    async with orders_client(url) as client:
        placed = (await client.post("/orders", json=order_body(), headers=AUTH)).json()
        unauthorized = await client.post(f"/orders/{placed['id']}/cancel")
        missing = await client.post("/orders/424242/cancel", headers=AUTH)
        still = (await client.get(f"/orders/{placed['id']}")).json()
    assert unauthorized.status_code == 401
    assert missing.status_code == 404
    assert still["status"] == "confirmed"


async def test_request_id_is_sent_to_catalog_and_echoed(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        response = await client.post(
            "/orders", json=order_body(), headers=AUTH | {"X-Request-ID": "trace-me-1"}
        )
    assert response.headers["x-request-id"] == "trace-me-1"
    assert catalog.seen_request_ids[-1] == "trace-me-1"
    assert catalog.seen_api_keys[-1] == AUTH["X-API-Key"]
