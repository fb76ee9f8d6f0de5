"""Books API through HTTP against PostgreSQL: CRUD, search, validation, conflicts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.services.catalog.books import book_payload, create_book, isbn13
from tests.services.conftest import CATALOG_AUTH

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with `status`; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys()
    assert body["status"] == status
    return body


def error_fields(body: dict[str, Any]) -> set[str]:
    """The last part of each `loc` in a 422 problem's `errors`."""
    return {str(error["loc"][-1]) for error in body["errors"]}


async def test_created_book_is_returned_with_location_and_readable(
    catalog_client: httpx.AsyncClient,
) -> None:
    response = await catalog_client.post(
        "/books", json=book_payload(1, isbn="978-0-13-235088-4"), headers=CATALOG_AUTH
    )
    assert response.status_code == 201
    book = response.json()
    assert response.headers["location"] == f"/books/{book['id']}"
    assert book["isbn"] == "9780132350884"
    assert book["price"] == "12.50"
    assert book["quantity"] == 10
    assert book["created_at"]
    assert book["updated_at"]

    fetched = await catalog_client.get(response.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json() == book


async def test_price_is_serialized_with_two_decimal_places(
    catalog_client: httpx.AsyncClient,
) -> None:
    book = await create_book(catalog_client, price=7)
    assert book["price"] == "7.00"


async def test_unknown_book_is_404_problem(catalog_client: httpx.AsyncClient) -> None:
    body = assert_problem(await catalog_client.get("/books/999"), 404)
    assert "999" in body["detail"]


async def test_non_integer_book_id_is_422(catalog_client: httpx.AsyncClient) -> None:
    body = assert_problem(await catalog_client.get("/books/abc"), 422)
    assert error_fields(body) == {"book_id"}


async def test_duplicate_isbn_is_409_even_when_written_differently(
    catalog_client: httpx.AsyncClient,
) -> None:
    await create_book(catalog_client, isbn="9780306406157")
    response = await catalog_client.post(
        "/books", json=book_payload(2, isbn="978-0-306-40615-7"), headers=CATALOG_AUTH
    )
    assert "9780306406157" in assert_problem(response, 409)["detail"]


async def test_isbn10_with_x_check_digit_is_accepted_and_normalized(
    catalog_client: httpx.AsyncClient,
) -> None:
    book = await create_book(catalog_client, isbn="0-8044-2957-x")
    assert book["isbn"] == "080442957X"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("isbn", "978-0-13-235088-5"),
        ("isbn", "123"),
        ("price", "0"),
        ("price", "-1.00"),
        ("price", "12.345"),
        ("price", "abc"),
        ("price", "100000000.00"),
        ("quantity", -1),
        ("quantity", 1_000_001),
        ("quantity", 1.5),
        ("title", ""),
        ("title", "x" * 301),
        ("author", "y" * 201),
        ("description", "z" * 5001),
        ("title", "nul\x00byte"),
    ],
)
async def test_invalid_field_is_422_naming_the_field(
    catalog_client: httpx.AsyncClient, field: str, value: Any
) -> None:
    response = await catalog_client.post(
        "/books", json=book_payload(1, **{field: value}), headers=CATALOG_AUTH
    )
    body = assert_problem(response, 422)
    assert error_fields(body) == {field}
    assert field in body["detail"]


async def test_missing_fields_are_all_listed(catalog_client: httpx.AsyncClient) -> None:
    response = await catalog_client.post("/books", json={"title": "t"}, headers=CATALOG_AUTH)
    assert error_fields(assert_problem(response, 422)) == {"author", "isbn", "price"}


async def test_update_changes_only_the_fields_sent(catalog_client: httpx.AsyncClient) -> None:
    book = await create_book(catalog_client)
    response = await catalog_client.put(
        f"/books/{book['id']}", json={"price": "20.00", "quantity": 3}, headers=CATALOG_AUTH
    )
    assert response.status_code == 200
    updated = response.json()
    assert (updated["price"], updated["quantity"], updated["title"]) == ("20.00", 3, book["title"])
    assert updated["updated_at"] >= book["updated_at"]


async def test_update_with_null_field_is_422(catalog_client: httpx.AsyncClient) -> None:
    book = await create_book(catalog_client)
    response = await catalog_client.put(
        f"/books/{book['id']}", json={"title": None}, headers=CATALOG_AUTH
    )
    assert error_fields(assert_problem(response, 422)) == {"title"}


async def test_update_to_an_isbn_already_taken_is_409(catalog_client: httpx.AsyncClient) -> None:
    first = await create_book(catalog_client, 1)
    second = await create_book(catalog_client, 2)
    response = await catalog_client.put(
        f"/books/{second['id']}", json={"isbn": first["isbn"]}, headers=CATALOG_AUTH
    )
    assert_problem(response, 409)


async def test_update_of_unknown_book_is_404(catalog_client: httpx.AsyncClient) -> None:
    response = await catalog_client.put("/books/42", json={"title": "t"}, headers=CATALOG_AUTH)
    assert_problem(response, 404)


async def test_deleted_book_is_gone(catalog_client: httpx.AsyncClient) -> None:
    book = await create_book(catalog_client)
    response = await catalog_client.delete(f"/books/{book['id']}", headers=CATALOG_AUTH)
    assert response.status_code == 204
    assert_problem(await catalog_client.get(f"/books/{book['id']}"), 404)
    assert_problem(await catalog_client.delete(f"/books/{book['id']}", headers=CATALOG_AUTH), 404)


async def test_book_with_active_reservation_cannot_be_deleted(
    catalog_client: httpx.AsyncClient,
) -> None:
    book = await create_book(catalog_client)
    reserved = await catalog_client.post(
        f"/books/{book['id']}/reservations", json={"quantity": 1}, headers=CATALOG_AUTH
    )
    response = await catalog_client.delete(f"/books/{book['id']}", headers=CATALOG_AUTH)
    assert "reservations" in assert_problem(response, 409)["detail"]

    await catalog_client.delete(f"/reservations/{reserved.json()['id']}", headers=CATALOG_AUTH)
    assert (
        await catalog_client.delete(f"/books/{book['id']}", headers=CATALOG_AUTH)
    ).status_code == 204


async def seed_search_books(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Three books with distinct titles, authors, prices and stock."""
    return [
        await create_book(client, 1, title="Dune", author="Frank Herbert", price="10.99"),
        await create_book(
            client, 2, title="Dune Messiah", author="Frank Herbert", price="12.00", quantity=0
        ),
        await create_book(client, 3, title="Neuromancer", author="William Gibson", price="9.50"),
    ]


@pytest.mark.parametrize(
    ("params", "expected_titles"),
    [
        ({}, ["Dune", "Dune Messiah", "Neuromancer"]),
        ({"q": "dune"}, ["Dune", "Dune Messiah"]),
        ({"q": "gibson"}, ["Neuromancer"]),
        ({"q": isbn13(3)[-6:]}, ["Neuromancer"]),
        ({"title": "messiah"}, ["Dune Messiah"]),
        ({"author": "HERBERT"}, ["Dune", "Dune Messiah"]),
        ({"isbn": isbn13(2)}, ["Dune Messiah"]),
        ({"min_price": "10"}, ["Dune", "Dune Messiah"]),
        ({"max_price": "10.99"}, ["Dune", "Neuromancer"]),
        ({"in_stock": "true"}, ["Dune", "Neuromancer"]),
        ({"in_stock": "false"}, ["Dune Messiah"]),
        ({"q": "100%_"}, []),
        ({"unknown": "ignored", "q": "neuromancer"}, ["Neuromancer"]),
    ],
)
async def test_search_filters_books(
    catalog_client: httpx.AsyncClient, params: dict[str, str], expected_titles: list[str]
) -> None:
    await seed_search_books(catalog_client)
    response = await catalog_client.get("/books", params=params)
    assert response.status_code == 200
    page = response.json()
    assert [item["title"] for item in page["items"]] == expected_titles
    assert page["total"] == len(expected_titles)


async def test_pagination_is_stable_by_id_with_total(catalog_client: httpx.AsyncClient) -> None:
    ids = [(await create_book(catalog_client, seed))["id"] for seed in range(1, 6)]
    first = (await catalog_client.get("/books", params={"limit": 2})).json()
    second = (await catalog_client.get("/books", params={"limit": 2, "offset": 2})).json()
    beyond = (await catalog_client.get("/books", params={"limit": 2, "offset": 10})).json()
    assert [b["id"] for b in first["items"] + second["items"]] == ids[:4]
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert (beyond["items"], beyond["total"]) == ([], 5)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"min_price": "cheap"}, "min_price"),
        ({"in_stock": "maybe"}, "in_stock"),
        ({"q": "x" * 301}, "q"),
    ],
)
async def test_bad_search_parameter_is_422_naming_it(
    catalog_client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await catalog_client.get("/books", params=params)
    assert error_fields(assert_problem(response, 422)) == {field}


async def test_default_page_size_is_20(catalog_client: httpx.AsyncClient) -> None:
    page = (await catalog_client.get("/books")).json()
    assert (page["limit"], page["offset"]) == (20, 0)


async def test_concurrent_creates_with_one_isbn_make_one_book(
    catalog_client: httpx.AsyncClient,
) -> None:
    responses = await asyncio.gather(
        *(
            catalog_client.post(
                "/books", json=book_payload(seed, isbn=isbn13(1)), headers=CATALOG_AUTH
            )
            for seed in range(10)
        )
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 9
    assert (await catalog_client.get("/books")).json()["total"] == 1
