"""Connections killed under the catalog (e.g. a PostgreSQL restart): 503 at most, then healed."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from tests.services.catalog.books import create_book
from tests.services.conftest import CATALOG_AUTH


def terminate_other_connections(url: str) -> int:
    """Kill every other backend connected to this database; returns how many."""
    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/books/{id}", None),
        ("GET", "/books", None),
        ("POST", "/books/{id}/reservations", {"quantity": 1}),
    ],
)
async def test_requests_recover_after_database_connections_are_killed(
    catalog_client: httpx.AsyncClient,
    catalog_database_url: str,
    method: str,
    path: str,
    body: dict[str, int] | None,
) -> None:
    book = await create_book(catalog_client, quantity=100)
    url = path.format(id=book["id"])
    warm = await catalog_client.request(method, url, json=body, headers=CATALOG_AUTH)
    assert warm.is_success
    assert terminate_other_connections(catalog_database_url) >= 1

    statuses = [
        (await catalog_client.request(method, url, json=body, headers=CATALOG_AUTH)).status_code
        for _ in range(4)
    ]
    assert set(statuses) <= {warm.status_code, 503}
    assert statuses[-2:] == [warm.status_code] * 2
