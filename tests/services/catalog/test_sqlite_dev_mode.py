"""Dev mode: with no DATABASE_URL the catalog runs on an embedded SQLite file."""

from __future__ import annotations

from pathlib import Path

import httpx
from bookstore_catalog.__main__ import migrate
from bookstore_catalog.app import create_app
from bookstore_catalog.config import CatalogSettings
from bookstore_catalog.sample_data import SAMPLE_BOOKS


async def test_catalog_serves_sample_books_and_reservations_from_sqlite(tmp_path: Path) -> None:
    settings = CatalogSettings(
        sqlite_path=tmp_path / "dev" / "catalog.db", api_key="dev", sample_data=True
    )
    assert settings.uses_sqlite
    migrate(settings)
    app = create_app(settings)
    auth = {"X-API-Key": "dev"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
            page = (await client.get("/books", params={"limit": 100})).json()
            first = page["items"][0]
            reserved = await client.post(
                f"/books/{first['id']}/reservations", json={"quantity": 1}, headers=auth
            )
            in_use = await client.delete(f"/books/{first['id']}", headers=auth)
            released = await client.delete(f"/reservations/{reserved.json()['id']}", headers=auth)
            again = await client.post(
                f"/books/{first['id']}/reservations", json={"quantity": 1}, headers=auth
            )
            ready = await client.get("/health/ready")
    finally:
        await app.state.engine.dispose()
    assert page["total"] == len(SAMPLE_BOOKS)
    assert reserved.status_code == 201
    assert in_use.status_code == 409
    assert released.status_code == 204
    assert again.json()["id"] != reserved.json()["id"]  # ids are never reused
    assert ready.status_code == 200
