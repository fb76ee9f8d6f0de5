"""/docs and /redoc work offline: every asset comes from the service itself, none from a CDN."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import CatalogSettings
from bookstore_orders.app import create_app as create_orders_app
from bookstore_orders.config import OrdersSettings
from fastapi import FastAPI

UNUSED_DATABASE = "postgresql://unused@127.0.0.1:1/unused"  # the docs never touch it
APPS: dict[str, Callable[[], FastAPI]] = {
    "catalog": lambda: create_catalog_app(CatalogSettings(database_url=UNUSED_DATABASE)),
    "orders": lambda: create_orders_app(OrdersSettings(database_url=UNUSED_DATABASE)),
}
ASSET_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def referenced_urls(html: str) -> list[str]:
    """Every src/href attribute of a page."""
    return re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)


@pytest.fixture(params=sorted(APPS))
async def docs_client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """A client for one service's app (no lifespan: the docs need no database)."""
    app = APPS[request.param]()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        yield client
    await app.state.engine.dispose()


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_name_no_outside_host_and_every_asset_is_served_locally(
    docs_client: httpx.AsyncClient, page: str
) -> None:
    response = await docs_client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://|//[a-z]", response.text), response.text
    assets = referenced_urls(response.text)
    assert {url.rsplit(".", 1)[-1] for url in assets} >= {"js", "png"}
    for url in assets:
        asset = await docs_client.get(url)
        assert asset.status_code == 200, url
        suffix = "." + url.rsplit(".", 1)[-1]
        assert ASSET_TYPES[suffix] in asset.headers["content-type"], url
        assert len(asset.content) > 1000, url


async def test_swagger_ui_loads_its_own_bundle_and_css_and_the_services_openapi(
    docs_client: httpx.AsyncClient,
) -> None:
    html = (await docs_client.get("/docs")).text
    assert set(referenced_urls(html)) == {
        "/docs-assets/swagger-ui.css",
        "/docs-assets/favicon.png",
        "/docs-assets/swagger-ui-bundle.js",
    }
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html  # no call to the online spec validator
    bundle = await docs_client.get("/docs-assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.content
    assert (await docs_client.get("/openapi.json")).json()["openapi"].startswith("3.")


async def test_docs_behind_a_path_prefix_point_at_the_prefixed_assets() -> None:
    app = APPS["catalog"]()
    transport = httpx.ASGITransport(app=app, root_path="/catalog")
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        html = (await client.get("/docs")).text
    await app.state.engine.dispose()
    assert "/catalog/docs-assets/swagger-ui-bundle.js" in referenced_urls(html)
    assert "url: '/catalog/openapi.json'" in html


def test_the_docs_are_not_part_of_the_openapi_schema() -> None:
    paths = APPS["orders"]().openapi()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]
