"""Catalog bodies that are not a JSON object: 400 malformed JSON, 415, 422 on `body`."""

from __future__ import annotations

import httpx
import pytest

from tests.services.catalog.books import create_book
from tests.services.catalog.test_books_api import assert_problem
from tests.services.conftest import CATALOG_AUTH

JSON = {"Content-Type": "application/json"} | CATALOG_AUTH
ENDPOINTS = [
    ("POST", "/books"),
    ("PUT", "/books/{id}"),
    ("POST", "/books/{id}/reservations"),
]


async def _send(
    client: httpx.AsyncClient, method: str, path: str, content: bytes, headers: dict[str, str]
) -> httpx.Response:
    """Send raw bytes to an endpoint whose `{id}` is a real book."""
    book = await create_book(client, quantity=5)
    url = path.format(id=book["id"])
    return await client.request(method, url, content=content, headers=headers)


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_malformed_json_is_a_400_naming_the_decoder_reason_and_position(
    catalog_client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await _send(catalog_client, method, path, b'{"quantity": 1,', JSON)
    body = assert_problem(response, 400)
    assert body["title"] == "Malformed JSON body"
    assert body["type"].endswith("/malformed-json")
    assert body["detail"] == (
        "The request body is not valid JSON: "
        "Expecting property name enclosed in double quotes at character 15."
    )


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_a_json_array_body_is_a_422_on_the_body_field_saying_an_object_is_expected(
    catalog_client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await _send(catalog_client, method, path, b"[1, 2]", JSON)
    body = assert_problem(response, 422)
    assert body["detail"] == "The request body must be a JSON object, not an array."
    assert [error["loc"] for error in body["errors"]] == [["body"]]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_a_body_sent_as_form_data_is_a_415_asking_for_json(
    catalog_client: httpx.AsyncClient, method: str, path: str
) -> None:
    headers = {"Content-Type": "application/x-www-form-urlencoded"} | CATALOG_AUTH
    response = await _send(catalog_client, method, path, b'{"quantity": 1}', headers)
    assert "Content-Type: application/json" in assert_problem(response, 415)["detail"]


async def test_a_missing_body_is_a_422_on_the_body_field(
    catalog_client: httpx.AsyncClient,
) -> None:
    response = await catalog_client.post("/books", headers=JSON)
    body = assert_problem(response, 422)
    assert body["detail"] == "The request body is missing; send a JSON object."
    assert [error["loc"] for error in body["errors"]] == [["body"]]


async def test_a_field_error_inside_an_object_still_names_the_field(
    catalog_client: httpx.AsyncClient,
) -> None:
    response = await _send(
        catalog_client, "POST", "/books/{id}/reservations", b'{"quantity": 0}', JSON
    )
    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [["body", "quantity"]]
