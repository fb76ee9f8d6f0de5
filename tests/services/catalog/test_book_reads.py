"""GET /books/{id} on the raw pool: reads that arrive together share one SELECT."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import CatalogSettings

from tests.services.catalog.books import create_book


async def test_concurrent_reads_share_selects_and_each_gets_its_own_book(
    catalog_settings: CatalogSettings,
) -> None:
    settings = catalog_settings.model_copy(update={"database_pool_size": 2})  # 1 raw connection
    app = create_catalog_app(settings)
    statements: list[str] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog") as client:
            books = [await create_book(client, seed) for seed in range(1, 6)]
            wanted = [book["id"] for book in books] + [10**6, books[0]["id"]]
            async with app.state.database.connection() as connection:  # hold it: reads queue
                connection.add_query_logger(lambda query: statements.append(query.query))
                reads = [asyncio.create_task(client.get(f"/books/{id_}")) for id_ in wanted]
                await asyncio.sleep(0.1)
            responses = await asyncio.gather(*reads)
    assert [response.status_code for response in responses] == [200] * 5 + [404, 200]
    bodies: list[dict[str, Any]] = [response.json() for response in responses]
    assert [body["title"] for body in bodies[:5]] == [book["title"] for book in books]
    assert bodies[6] == bodies[0]
    # two SELECTs were already waiting for the connection; the other five reads shared a third
    book_selects = [statement for statement in statements if "FROM books" in statement]
    assert len(book_selects) == 3
    assert all("= ANY" in statement for statement in book_selects)
