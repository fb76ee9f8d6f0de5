"""GET /books/{id} on the raw pool: reads that arrive together share one SELECT."""

from __future__ import annotations

from typing import Any

from bookstore_catalog.config import CatalogSettings

from tests.services.catalog.books import (
    create_book,
    one_connection_catalog,
    while_the_connection_is_held,
)


async def test_concurrent_reads_share_selects_and_each_gets_its_own_book(
    catalog_settings: CatalogSettings,
) -> None:
    async with one_connection_catalog(catalog_settings) as (app, client):
        books = [await create_book(client, seed) for seed in range(1, 6)]
        wanted = [book["id"] for book in books] + [10**6, books[0]["id"]]
        responses, book_selects = await while_the_connection_is_held(
            app, [client.get(f"/books/{id_}") for id_ in wanted], "FROM books"
        )
    assert [response.status_code for response in responses] == [200] * 5 + [404, 200]
    bodies: list[dict[str, Any]] = [response.json() for response in responses]
    assert [body["title"] for body in bodies[:5]] == [book["title"] for book in books]
    assert bodies[6] == bodies[0]
    # two SELECTs were already waiting for the connection; the other five reads shared a third
    assert len(book_selects) == 3
    assert all("= ANY" in statement for statement in book_selects)
