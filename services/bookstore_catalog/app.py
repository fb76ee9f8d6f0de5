"""The catalog FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from bookstore_common.app import create_service_app, freeze_startup_heap
from bookstore_common.health import install_schema_check
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bookstore_catalog import batches, service
from bookstore_catalog.config import SCHEMA, CatalogSettings
from bookstore_catalog.routes import router
from bookstore_catalog.search import SEARCH_SESSION

VERSION = "0.1.0"

log = logging.getLogger(__name__)


def create_app(settings: CatalogSettings) -> FastAPI:
    """Build the catalog app; its API is served at `/` and, for the Ingress, at `/catalog`."""

    @asynccontextmanager
    async def purge_lifespan(app: FastAPI) -> AsyncIterator[None]:
        purger = asyncio.create_task(purge_released_periodically(app.state.engine, settings))
        try:
            yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger

    app = create_service_app(
        settings,
        component="catalog",
        title="Bookstore catalog",
        version=VERSION,
        description="Books and their stock. Writes need `X-API-Key`; reads are public.",
        lifespan=purge_lifespan,
        raw_pool=True,
    )
    if not settings.uses_sqlite:
        event.listen(app.state.engine.sync_engine, "connect", plan_each_search)
    app.state.book_reader = batches.BookReader(app.state.database)
    app.state.stock_reserver = batches.StockReserver(app.state.database)
    install_schema_check(app, SCHEMA)
    app.include_router(router)
    app.include_router(router, prefix="/catalog", include_in_schema=False)
    return app


def plan_each_search(dbapi_connection: Any, _: Any) -> None:
    """Give each new connection of the engine the session searches need (search.SEARCH_SESSION:
    every statement planned for its own values, no parallel workers).

    The engine serves the searches (the hot single-book reads and reservations run on the
    raw pool): a search's best plan depends on how many books its words match.
    """
    # On the asyncpg connection itself: a DBAPI cursor would SET inside a transaction that
    # the pool's reset rolls back.
    dbapi_connection.run_async(lambda connection: connection.execute(SEARCH_SESSION))


async def purge_released_periodically(engine: AsyncEngine, settings: CatalogSettings) -> None:
    """Per-worker upkeep: forget released reservations (tombstones) past their retention."""
    retention = timedelta(hours=settings.released_retention_hours)
    while True:
        await asyncio.sleep(settings.released_purge_interval)
        try:
            purged = await service.purge_released(engine, retention)
        except Exception:
            log.exception("purging released reservations failed")
        else:
            log.info("purged released reservations", extra={"purged": purged})


def create_app_from_env() -> FastAPI:
    """uvicorn factory: the catalog app configured from the environment."""
    app = create_app(CatalogSettings())
    freeze_startup_heap()
    return app
