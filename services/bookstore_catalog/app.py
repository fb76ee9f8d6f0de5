"""The catalog FastAPI application."""

from __future__ import annotations

from bookstore_common.app import create_service_app
from fastapi import FastAPI

from bookstore_catalog.config import CatalogSettings
from bookstore_catalog.routes import router

VERSION = "0.1.0"


def create_app(settings: CatalogSettings) -> FastAPI:
    """Build the catalog app; its API is served at `/` and, for the Ingress, at `/catalog`."""
    app = create_service_app(
        settings,
        title="Bookstore catalog",
        version=VERSION,
        description="Books and their stock. Writes need `X-API-Key`; reads are public.",
    )
    app.include_router(router)
    app.include_router(router, prefix="/catalog", include_in_schema=False)
    return app


def create_app_from_env() -> FastAPI:
    """uvicorn factory: the catalog app configured from the environment."""
    return create_app(CatalogSettings())
