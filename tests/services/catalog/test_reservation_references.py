"""Reservations keyed by Idempotency-Key: one stock take per key, released keys tombstoned."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import psycopg
from bookstore_catalog.service import purge_released
from fastapi import FastAPI

from tests.services.catalog.books import book_payload, create_book, stock_in_database
from tests.services.catalog.test_books_api import assert_problem, error_fields
from tests.services.conftest import CATALOG_AUTH, LiveCatalog


async def reserve(
    client: httpx.AsyncClient, book_id: int, quantity: int, key: str
) -> httpx.Response:
    """POST a reservation under an Idempotency-Key."""
    return await client.post(
        f"/books/{book_id}/reservations",
        json={"quantity": quantity},
        headers=CATALOG_AUTH | {"Idempotency-Key": key},
    )


async def release_by_reference(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """DELETE the reservation made under an Idempotency-Key."""
    return await client.delete(f"/reservations/by-reference/{key}", headers=CATALOG_AUTH)


def active_reservations(url: str, book_id: int) -> list[tuple[int, int]]:
    """(id, quantity) of the reservations still holding a book's stock."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT id, quantity FROM reservations "
            "WHERE book_id = %s AND released_at IS NULL ORDER BY id",
            (book_id,),
        ).fetchall()
    return [(int(row[0]), int(row[1])) for row in rows]


async def test_same_key_twice_takes_stock_once_and_replays_the_reservation(
    catalog_client: httpx.AsyncClient, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=5, price="7.50")
    first = await reserve(catalog_client, book["id"], 2, "order-1-0")
    second = await reserve(catalog_client, book["id"], 2, "order-1-0")
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert stock_in_database(catalog_database_url, book["id"]) == 3


async def test_replay_after_stock_ran_out_still_returns_the_reservation(
    catalog_client: httpx.AsyncClient,
) -> None:
    book = await create_book(catalog_client, quantity=2)
    first = await reserve(catalog_client, book["id"], 2, "all-of-it")
    again = await reserve(catalog_client, book["id"], 2, "all-of-it")
    assert again.status_code == 201
    assert again.json()["id"] == first.json()["id"]


async def test_key_reused_for_another_book_or_quantity_is_422_and_takes_nothing(
    catalog_client: httpx.AsyncClient, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=5)
    other = await create_book(catalog_client, seed=2, quantity=5)
    await reserve(catalog_client, book["id"], 1, "reused")
    assert_problem(await reserve(catalog_client, book["id"], 2, "reused"), 422)
    assert_problem(await reserve(catalog_client, other["id"], 1, "reused"), 422)
    assert stock_in_database(catalog_database_url, book["id"]) == 4
    assert stock_in_database(catalog_database_url, other["id"]) == 5


async def test_idempotency_key_must_be_printable_ascii_of_at_most_255(
    catalog_client: httpx.AsyncClient,
) -> None:
    book = await create_book(catalog_client, quantity=5)
    for key in ("x" * 256, "with space", "del\x7f"):
        body = assert_problem(await reserve(catalog_client, book["id"], 1, key), 422)
        assert error_fields(body) == {"idempotency-key"}
    assert (await catalog_client.get(f"/books/{book['id']}")).json()["quantity"] == 5


async def test_release_by_reference_gives_stock_back_once_and_stays_204(
    catalog_client: httpx.AsyncClient, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=4)
    await reserve(catalog_client, book["id"], 3, "order-2-0")
    first = await release_by_reference(catalog_client, "order-2-0")
    second = await release_by_reference(catalog_client, "order-2-0")
    assert (first.status_code, second.status_code) == (204, 204)
    assert stock_in_database(catalog_database_url, book["id"]) == 4
    assert active_reservations(catalog_database_url, book["id"]) == []


async def test_released_key_is_409_on_a_late_post_and_takes_no_stock(
    catalog_client: httpx.AsyncClient, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=4)
    reserved = (await reserve(catalog_client, book["id"], 1, "given-up")).json()
    assert (await release_by_reference(catalog_client, "given-up")).status_code == 204
    late = await reserve(catalog_client, book["id"], 1, "given-up")
    body = assert_problem(late, 409)
    assert "reservation was released" in body["detail"]
    assert stock_in_database(catalog_database_url, book["id"]) == 4
    by_id = await catalog_client.delete(f"/reservations/{reserved['id']}", headers=CATALOG_AUTH)
    assert_problem(by_id, 404)


async def test_release_before_the_post_leaves_a_tombstone_so_the_late_post_is_409(
    catalog_client: httpx.AsyncClient, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=4)
    assert (await release_by_reference(catalog_client, "order-3-0")).status_code == 204
    late = await reserve(catalog_client, book["id"], 2, "order-3-0")
    assert "reservation was released" in assert_problem(late, 409)["detail"]
    assert stock_in_database(catalog_database_url, book["id"]) == 4
    assert active_reservations(catalog_database_url, book["id"]) == []


async def test_release_by_id_keeps_the_key_tombstoned(
    catalog_client: httpx.AsyncClient, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=4)
    reserved = (await reserve(catalog_client, book["id"], 2, "by-id")).json()
    released = await catalog_client.delete(f"/reservations/{reserved['id']}", headers=CATALOG_AUTH)
    assert released.status_code == 204
    assert_problem(await reserve(catalog_client, book["id"], 2, "by-id"), 409)
    assert (await release_by_reference(catalog_client, "by-id")).status_code == 204
    assert stock_in_database(catalog_database_url, book["id"]) == 4


async def test_book_with_only_released_reservations_can_be_deleted(
    catalog_client: httpx.AsyncClient,
) -> None:
    book = await create_book(catalog_client, quantity=4)
    await reserve(catalog_client, book["id"], 1, "gone-soon")
    await release_by_reference(catalog_client, "gone-soon")
    deleted = await catalog_client.delete(f"/books/{book['id']}", headers=CATALOG_AUTH)
    assert deleted.status_code == 204


async def test_twenty_concurrent_posts_with_one_key_take_stock_once(
    live_catalog: LiveCatalog,
) -> None:
    async with httpx.AsyncClient(base_url=live_catalog.base_url, timeout=30) as client:
        created = await client.post(
            "/books", json=book_payload(881, quantity=10), headers=CATALOG_AUTH
        )
        book_id = created.json()["id"]
        responses = await asyncio.gather(
            *(reserve(client, book_id, 3, f"race-{book_id}") for _ in range(20))
        )
        stock = (await client.get(f"/books/{book_id}")).json()["quantity"]
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    assert stock == 7
    assert len(active_reservations(live_catalog.database_url, book_id)) == 1


async def test_concurrent_releases_by_reference_give_stock_back_once(
    live_catalog: LiveCatalog,
) -> None:
    async with httpx.AsyncClient(base_url=live_catalog.base_url, timeout=30) as client:
        created = await client.post(
            "/books", json=book_payload(882, quantity=6), headers=CATALOG_AUTH
        )
        book_id = created.json()["id"]
        await reserve(client, book_id, 5, f"free-{book_id}")
        responses = await asyncio.gather(
            *(release_by_reference(client, f"free-{book_id}") for _ in range(10))
        )
        stock = (await client.get(f"/books/{book_id}")).json()["quantity"]
    assert [r.status_code for r in responses] == [204] * 10
    assert stock == 6


async def test_posts_racing_releases_of_one_key_never_lose_or_hold_stock(
    live_catalog: LiveCatalog,
) -> None:
    async with httpx.AsyncClient(base_url=live_catalog.base_url, timeout=30) as client:
        created = await client.post(
            "/books", json=book_payload(883, quantity=6), headers=CATALOG_AUTH
        )
        book_id = created.json()["id"]
        key = f"racing-{book_id}"
        calls = [reserve(client, book_id, 2, key) for _ in range(10)]
        calls += [release_by_reference(client, key) for _ in range(10)]
        responses = await asyncio.gather(*calls)
        stock = (await client.get(f"/books/{book_id}")).json()["quantity"]
    assert {r.status_code for r in responses} <= {201, 204, 409}
    assert stock == 6
    assert active_reservations(live_catalog.database_url, book_id) == []


async def test_purge_forgets_released_reservations_past_retention_only(
    catalog_client: httpx.AsyncClient, catalog_app: FastAPI, catalog_database_url: str
) -> None:
    book = await create_book(catalog_client, quantity=4)
    await reserve(catalog_client, book["id"], 1, "kept")
    await reserve(catalog_client, book["id"], 1, "old")
    await release_by_reference(catalog_client, "old")
    await release_by_reference(catalog_client, "never-made")
    engine = catalog_app.state.engine
    assert await purge_released(engine, timedelta(hours=1)) == 0
    assert await purge_released(engine, timedelta(0)) == 2
    with psycopg.connect(catalog_database_url) as connection:
        rows = connection.execute("SELECT reference FROM reservations").fetchall()
    assert rows == [("kept",)]
