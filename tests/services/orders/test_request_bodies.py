"""POST /orders with a body that is not a JSON object: 400 malformed JSON, 415, 422 on `body`."""

from __future__ import annotations

from tests.services.catalog.test_books_api import assert_problem
from tests.services.orders.catalog_stub import StubCatalog
from tests.services.orders.conftest import AUTH, OrdersClientFactory, count_rows

JSON = {"Content-Type": "application/json"} | AUTH


async def test_malformed_order_json_is_a_400_and_places_nothing(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str], orders_db: str
) -> None:
    catalog, url = stub_catalog
    async with orders_client(url) as client:
        response = await client.post("/orders", content=b"customer_name=Ada", headers=JSON)
    body = assert_problem(response, 400)
    assert body["title"] == "Malformed JSON body"
    assert body["detail"] == "The request body is not valid JSON: Expecting value at character 0."
    assert catalog.reserve_calls == 0
    assert count_rows(orders_db, "orders") == 0


async def test_an_order_body_that_is_a_json_array_is_a_422_on_the_body_field(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    _, url = stub_catalog
    async with orders_client(url) as client:
        response = await client.post("/orders", content=b'[{"book_id": 1}]', headers=JSON)
    body = assert_problem(response, 422)
    assert body["detail"] == "The request body must be a JSON object, not an array."
    assert [error["loc"] for error in body["errors"]] == [["body"]]


async def test_an_order_sent_as_form_data_is_a_415_asking_for_json(
    orders_client: OrdersClientFactory, stub_catalog: tuple[StubCatalog, str]
) -> None:
    _, url = stub_catalog
    headers = {"Content-Type": "application/x-www-form-urlencoded"} | AUTH
    async with orders_client(url) as client:
        response = await client.post("/orders", content=b'{"items": []}', headers=headers)
    assert "Content-Type: application/json" in assert_problem(response, 415)["detail"]
