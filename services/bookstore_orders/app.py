"""The orders FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bookstore_common.app import create_service_app
from fastapi import FastAPI

from bookstore_orders import __version__
from bookstore_orders.catalog_client import (
    CatalogClient,
    RetryPolicy,
    Timeouts,
    build_http_session,
)
from bookstore_orders.circuit_breaker import CircuitBreaker
from bookstore_orders.config import OrdersSettings
from bookstore_orders.metrics import observe_circuit_state
from bookstore_orders.releases import ReservationReleaser
from bookstore_orders.routes import router
from bookstore_orders.service import OrdersService


def create_app(settings: OrdersSettings) -> FastAPI:
    """Build the orders app; its catalog client lives as long as the app (one per process)."""

    @asynccontextmanager
    async def catalog_lifespan(app: FastAPI) -> AsyncIterator[None]:
        api_key = settings.api_key.get_secret_value() if settings.api_key else ""
        http = build_http_session(api_key, max_connections=settings.catalog_max_connections)
        breaker = CircuitBreaker(
            failure_threshold=settings.circuit_failure_threshold,
            reset_timeout=settings.circuit_reset_timeout,
            on_state_change=observe_circuit_state,
        )
        retry = RetryPolicy(
            attempts=settings.catalog_retry_attempts, deadline=settings.catalog_deadline
        )
        timeouts = Timeouts(
            connect=settings.catalog_connect_timeout, read=settings.catalog_read_timeout
        )
        catalog = CatalogClient(http, settings.catalog_url, breaker, retry, timeouts)
        releaser = ReservationReleaser(app.state.sessionmaker, catalog)
        app.state.releaser = releaser
        app.state.orders_service = OrdersService(
            app.state.sessionmaker, catalog, releaser, settings.idempotency_lease_seconds
        )
        retrier = asyncio.create_task(releaser.run(settings.release_retry_interval))
        try:
            yield
        finally:
            retrier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await retrier
            await http.close()

    app = create_service_app(
        settings,
        title="Bookstore orders",
        version=__version__,
        description="Customer orders; stock is reserved at catalog over HTTP.",
        lifespan=catalog_lifespan,
    )
    app.include_router(router)
    return app


def create_app_from_env() -> FastAPI:
    """Uvicorn factory: every worker reads its settings from the environment."""
    return create_app(OrdersSettings())
