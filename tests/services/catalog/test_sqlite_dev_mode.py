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


async def test_keyed_reservations_replay_release_and_tombstone_on_sqlite(tmp_path: Path) -> None:
    settings = CatalogSettings(
        sqlite_path=tmp_path / "dev" / "catalog.db", api_key="dev", sample_data=True
    )
    migrate(settings)
    app = create_app(settings)
    auth = {"X-API-Key": "dev"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
            book = (await client.get("/books")).json()["items"][0]
            path = f"/books/{book['id']}/reservations"
            keyed = auth | {"Idempotency-Key": "dev-1"}
            first = await client.post(path, json={"quantity": 1}, headers=keyed)
            replay = await client.post(path, json={"quantity": 1}, headers=keyed)
            released = await client.delete("/reservations/by-reference/dev-1", headers=auth)
            late = await client.post(path, json={"quantity": 1}, headers=keyed)
            early = await client.delete("/reservations/by-reference/dev-2", headers=auth)
            after_early = await client.post(
                path, json={"quantity": 1}, headers=auth | {"Idempotency-Key": "dev-2"}
            )
            stock = (await client.get(f"/books/{book['id']}")).json()["quantity"]
    finally:
        await app.state.engine.dispose()
    assert (first.status_code, replay.status_code) == (201, 201)
    assert replay.json()["id"] == first.json()["id"]
    assert (released.status_code, late.status_code) == (204, 409)
    assert (early.status_code, after_early.status_code) == (204, 409)
    assert stock == book["quantity"]
