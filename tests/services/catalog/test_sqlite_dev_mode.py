"""Dev mode: with no DATABASE_URL the catalog runs on an embedded SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from bookstore_catalog import search
from bookstore_catalog.__main__ import migrate
from bookstore_catalog.app import create_app
from bookstore_catalog.config import CatalogSettings
from bookstore_catalog.sample_data import SAMPLE_BOOKS

from tests.services.catalog.books import book_payload


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


@pytest.fixture
async def dev_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The catalog on a fresh SQLite file with four searchable books."""
    settings = CatalogSettings(sqlite_path=tmp_path / "catalog.db", api_key="dev")
    migrate(settings)
    app = create_app(settings.model_copy(update={"search_count_limit": 3}))
    auth = {"X-API-Key": "dev"}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://dev") as client:
            for seed, (title, author, description) in enumerate(
                [
                    ("The Hobbit", "J. R. R. Tolkien", ""),
                    ("Wizard Tales", "Ann Sparrow", "Running from dragons."),
                    ("The Silmarillion", "Christopher Tolkien", "About a wizard."),
                    ("The Wizard", "Bo Lee", ""),
                ],
                start=1,
            ):
                body = book_payload(seed, title=title, author=author, description=description)
                assert (await client.post("/books", json=body, headers=auth)).status_code == 201
            yield client
    finally:
        await app.state.engine.dispose()


async def search_titles(client: httpx.AsyncClient, **params: str) -> list[str]:
    """The titles of the first page of a search."""
    response = await client.get("/books", params=params)
    assert response.status_code == 200, response.text
    return [item["title"] for item in response.json()["items"]]


@pytest.mark.parametrize("fts5", [True, False], ids=["fts5", "like-fallback"])
async def test_q_on_sqlite_stems_and_follows_web_search_syntax(
    dev_client: httpx.AsyncClient, fts5: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if not fts5:
        monkeypatch.setitem(
            search._fts5_tables, f"sqlite+aiosqlite:///{tmp_path}/catalog.db", False
        )
    assert await search_titles(dev_client, q="tolkiens") == ["The Hobbit", "The Silmarillion"]
    assert await search_titles(dev_client, q="dragons") == ["Wizard Tales"]
    assert await search_titles(dev_client, q="wizard -tales") == ["The Silmarillion", "The Wizard"]
    assert await search_titles(dev_client, q="hobbit or dragons") == ["The Hobbit", "Wizard Tales"]
    assert await search_titles(dev_client, q='"the wizard"') == ["The Wizard"]


async def test_relevance_cursor_and_count_bound_work_on_sqlite(
    dev_client: httpx.AsyncClient,
) -> None:
    ranked = await search_titles(dev_client, q="wizard", sort="relevance")
    assert ranked[-1] == "The Silmarillion"  # only its description says wizard
    first = (await dev_client.get("/books", params={"q": "wizard", "limit": 2})).json()
    second = (
        await dev_client.get(
            "/books", params={"q": "wizard", "limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    everything = (await dev_client.get("/books")).json()
    assert [b["title"] for b in first["items"] + second["items"]] == [
        "Wizard Tales",
        "The Silmarillion",
        "The Wizard",
    ]
    assert second["next_cursor"] is None
    assert (everything["total"], everything["total_exact"]) == (3, False)
    assert (first["total"], first["total_exact"]) == (3, True)
