"""Cross-cutting behaviour of the catalog: auth, request ids, health, metrics, errors, prefix."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from bookstore_catalog.app import create_app
from bookstore_catalog.config import CatalogSettings
from fastapi import FastAPI

from tests.services.catalog.books import book_payload, create_book
from tests.services.catalog.test_books_api import assert_problem
from tests.services.conftest import CATALOG_AUTH, free_port, start_catalog_server


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/books"),
        ("PUT", "/books/1"),
        ("DELETE", "/books/1"),
        ("POST", "/books/1/reservations"),
        ("DELETE", "/reservations/1"),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}], ids=["missing", "wrong"])
async def test_writes_without_the_right_api_key_are_401(
    catalog_client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await catalog_client.request(method, path, json={"quantity": 1}, headers=headers)
    assert "X-API-Key" in assert_problem(response, 401)["detail"]


async def test_reads_need_no_api_key(catalog_client: httpx.AsyncClient) -> None:
    book = await create_book(catalog_client)
    assert (await catalog_client.get(f"/books/{book['id']}")).status_code == 200
    assert (await catalog_client.get("/books")).status_code == 200


async def test_writes_are_refused_when_no_api_key_is_configured(
    catalog_settings: CatalogSettings,
) -> None:
    app = create_app(catalog_settings.model_copy(update={"api_key": None}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        response = await client.post("/books", json=book_payload(), headers=CATALOG_AUTH)
    await app.state.engine.dispose()
    assert "API_KEY" in assert_problem(response, 503)["detail"]


async def test_request_id_is_echoed_when_given(catalog_client: httpx.AsyncClient) -> None:
    response = await catalog_client.get("/books", headers={"X-Request-ID": "trace-123"})
    assert response.headers["x-request-id"] == "trace-123"


async def test_request_id_is_generated_when_absent_also_on_errors(
    catalog_client: httpx.AsyncClient,
) -> None:
    ok = await catalog_client.get("/books")
    missing = await catalog_client.get("/books/999")
    assert len(ok.headers["x-request-id"]) == 32
    assert len(missing.headers["x-request-id"]) == 32
    assert ok.headers["x-request-id"] != missing.headers["x-request-id"]


async def test_unknown_route_and_wrong_method_are_problems(
    catalog_client: httpx.AsyncClient,
) -> None:
    assert_problem(await catalog_client.get("/nowhere"), 404)
    assert_problem(await catalog_client.patch("/books"), 405)


async def test_api_is_also_served_under_catalog_prefix_but_not_documented(
    catalog_client: httpx.AsyncClient,
) -> None:
    response = await catalog_client.post(
        "/catalog/books", json=book_payload(), headers=CATALOG_AUTH
    )
    assert response.status_code == 201
    assert response.headers["location"] == f"/catalog/books/{response.json()['id']}"
    assert (await catalog_client.get(response.headers["location"])).status_code == 200
    paths = (await catalog_client.get("/openapi.json")).json()["paths"]
    assert "/books" in paths
    assert not any(path.startswith("/catalog") for path in paths)


async def test_health_live_and_ready_when_database_is_up(
    catalog_client: httpx.AsyncClient,
) -> None:
    assert (await catalog_client.get("/health/live")).json() == {"status": "ok"}
    assert (await catalog_client.get("/health/ready")).json() == {"status": "ok"}


async def test_ready_is_503_problem_when_database_is_unreachable() -> None:
    settings = CatalogSettings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere",
        api_key="k",
        ready_timeout=1,
    )
    app: FastAPI = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        ready = await client.get("/health/ready")
        live = await client.get("/health/live")
    await app.state.engine.dispose()
    assert_problem(ready, 503)
    assert ready.headers["retry-after"]
    assert live.status_code == 200


def sample(metrics: str, prefix: str) -> float:
    """The value of the first sample line starting with `prefix` (0 when absent)."""
    for line in metrics.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_metrics_count_requests_by_route_template_and_reservations(
    catalog_client: httpx.AsyncClient,
) -> None:
    route = (
        'bookstore_catalog_http_requests_total{method="GET",route="/books/{book_id}",status="200"}'
    )
    made = "bookstore_catalog_stock_reservations_total "
    rejected = 'bookstore_catalog_stock_reservations_rejected_total{reason="insufficient_stock"}'
    released = "bookstore_catalog_stock_reservations_released_total"
    before = (await catalog_client.get("/metrics")).text

    book = await create_book(catalog_client, quantity=1)
    await catalog_client.get(f"/books/{book['id']}")
    await catalog_client.get(f"/books/{book['id']}")
    reservation = await catalog_client.post(
        f"/books/{book['id']}/reservations", json={"quantity": 1}, headers=CATALOG_AUTH
    )
    await catalog_client.post(
        f"/books/{book['id']}/reservations", json={"quantity": 1}, headers=CATALOG_AUTH
    )
    await catalog_client.delete(f"/reservations/{reservation.json()['id']}", headers=CATALOG_AUTH)

    response = await catalog_client.get("/metrics")
    after = response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert sample(after, route) - sample(before, route) == 2
    assert sample(after, made) - sample(before, made) == 1
    assert sample(after, rejected) - sample(before, rejected) == 1
    assert sample(after, released) - sample(before, released) == 1
    assert "bookstore_catalog_http_request_duration_seconds_bucket" in after
    assert f'/books/{book["id"]}"' not in after


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/books/1", None),
        ("GET", "/books", None),
        ("POST", "/books", book_payload()),
        ("POST", "/books/1/reservations", {"quantity": 1}),
    ],
)
async def test_database_outage_is_503_problem_with_retry_after(
    method: str, path: str, body: dict[str, object] | None
) -> None:
    settings = CatalogSettings(
        database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", api_key="k"
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        response = await client.request(method, path, json=body, headers={"X-API-Key": "k"})
    await app.state.engine.dispose()
    assert "unavailable" in assert_problem(response, 503)["detail"]
    assert response.headers["retry-after"] == "5"


def test_metrics_add_up_across_two_workers(make_database: Callable[[str], str]) -> None:
    server = start_catalog_server(make_database("catalog_workers"), workers=2)
    catalog = next(server)
    try:
        for _ in range(20):  # a new connection each time, so both workers get some
            assert httpx.get(f"{catalog.base_url}/health/live").status_code == 200
        totals = {
            sample(
                httpx.get(f"{catalog.base_url}/metrics").text,
                'bookstore_catalog_http_requests_total{method="GET",route="/health/live",status="200"}',
            )
            for _ in range(4)
        }
    finally:
        server.close()
    assert totals == {20.0}
