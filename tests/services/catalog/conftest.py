"""Catalog fixtures: the in-process app runs its lifespan, so PostgreSQL uses the raw pool."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import CatalogSettings
from fastapi import FastAPI


@pytest.fixture
async def catalog_app(catalog_settings: CatalogSettings) -> AsyncIterator[FastAPI]:
    """The catalog app on an empty catalog database, inside its lifespan (raw pool open)."""
    app = create_catalog_app(catalog_settings)
    async with app.router.lifespan_context(app):
        assert app.state.database.pool is not None
        yield app
