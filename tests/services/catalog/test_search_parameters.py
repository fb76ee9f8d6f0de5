"""`GET /books` reads its query parameters as one model (bookstore_common.query_models):
each invalid one is a 422 naming it, as FastAPI's own parameters were, and the OpenAPI
document still lists every parameter with its constraints."""

from __future__ import annotations

import httpx
import pytest
from bookstore_catalog.app import create_app
from bookstore_catalog.config import CatalogSettings

from tests.services.catalog.books import create_book, isbn13
from tests.services.catalog.test_books_api import assert_problem, error_fields


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": "0"}, "limit", "Input should be greater than or equal to 1"),
        ({"limit": "101"}, "limit", "Input should be less than or equal to 100"),
        ({"limit": "ten"}, "limit", "Input should be a valid integer"),
        ({"offset": "-1"}, "offset", "Input should be greater than or equal to 0"),
        ({"offset": "2147483648"}, "offset", "Input should be less than or equal to"),
        ({"sort": "price"}, "sort", "Input should be 'id' or 'relevance'"),
        ({"in_stock": "maybe"}, "in_stock", "Input should be a valid boolean"),
        ({"min_price": "cheap"}, "min_price", "Input should be a valid decimal"),
        ({"max_price": "-1"}, "max_price", "Input should be greater than or equal to 0"),
        ({"q": "x" * 301}, "q", "at most 300"),
        ({"title": "a\x00b"}, "title", "must not contain NUL characters"),
        ({"isbn": "9" * 21}, "isbn", "at most 20"),
        ({"cursor": "c" * 201}, "cursor", "at most 200"),
    ],
)
async def test_an_invalid_parameter_is_422_naming_it(
    catalog_client: httpx.AsyncClient, params: dict[str, str], field: str, message: str
) -> None:
    body = assert_problem(await catalog_client.get("/books", params=params), 422)

    assert error_fields(body) == {field}
    [error] = body["errors"]
    assert error["loc"] == ["query", field]
    assert message in error["msg"]
    assert f"query.{field}" in body["detail"]


async def test_every_invalid_parameter_is_named_at_once(
    catalog_client: httpx.AsyncClient,
) -> None:
    response = await catalog_client.get("/books", params={"limit": "0", "in_stock": "?"})

    assert error_fields(assert_problem(response, 422)) == {"limit", "in_stock"}


async def test_unknown_parameters_are_ignored_and_a_repeated_one_counts_its_last_value(
    catalog_client: httpx.AsyncClient,
) -> None:
    await create_book(catalog_client, title="Dune", author="Herbert", isbn=isbn13(1))
    await create_book(catalog_client, title="Emma", author="Austen", isbn=isbn13(2))

    response = await catalog_client.get("/books?title=emma&title=dune&colour=blue&limit=1")

    assert response.status_code == 200, response.text
    page = response.json()
    assert [book["title"] for book in page["items"]] == ["Dune"]
    assert page["limit"] == 1


def test_the_openapi_document_lists_each_parameter_with_its_constraints() -> None:
    app = create_app(CatalogSettings(database_url="postgresql://unused@127.0.0.1:1/unused"))
    parameters = {p["name"]: p for p in app.openapi()["paths"]["/books"]["get"]["parameters"]}

    assert list(parameters) == [
        "sort", "limit", "offset", "cursor", "q", "title", "author", "isbn",
        "min_price", "max_price", "in_stock",
    ]  # fmt: skip
    assert all(p["in"] == "query" and p["required"] is False for p in parameters.values())
    assert parameters["limit"]["schema"].items() >= {"minimum": 1, "maximum": 100}.items()
    assert parameters["sort"]["schema"]["enum"] == ["id", "relevance"]
    assert parameters["q"]["schema"]["anyOf"][0] == {"type": "string", "maxLength": 300}
    assert "full-text search" in parameters["q"]["description"]
