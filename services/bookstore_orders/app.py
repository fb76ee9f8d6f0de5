"""The orders FastAPI application."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from bookstore_common.app import create_service_app, freeze_startup_heap
from bookstore_common.health import install_schema_check
from fastapi import FastAPI

from bookstore_orders import __version__
from bookstore_orders.bulkhead import Bulkhead
from bookstore_orders.catalog_client import (
    CatalogClient,
    RetryPolicy,
    Timeouts,
    build_http_session,
)
from bookstore_orders.circuit_breaker import CircuitBreaker
from bookstore_orders.compensation import OrderCompensator
from bookstore_orders.config import SCHEMA, OrdersSettings
from bookstore_orders.metrics import observe_circuit_state
from bookstore_orders.routes import router
from bookstore_orders.service import OrdersService

log = logging.getLogger(__name__)


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
        catalog = CatalogClient(
            http,
            settings.catalog_url,
            breaker,
            retry,
            timeouts,
            bulkhead=Bulkhead(settings.catalog_max_connections),
        )
        compensator = OrderCompensator(app.state.sessionmaker, catalog)
        app.state.orders_service = OrdersService(
            app.state.sessionmaker,
            catalog,
            compensator,
            settings.idempotency_lease_seconds,
            app.state.database,
        )
        upkeep = asyncio.create_task(housekeeping(compensator, app.state.orders_service, settings))
        try:
            yield
        finally:
            upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upkeep
            await http.close()

    app = create_service_app(
        settings,
        component="orders",
        title="Bookstore orders",
        version=__version__,
        description="Customer orders; stock is reserved at catalog over HTTP.",
        lifespan=catalog_lifespan,
        raw_pool=True,
    )
    install_schema_check(app, SCHEMA)
    app.include_router(router)
    return app


async def housekeeping(
    compensator: OrderCompensator, service: OrdersService, settings: OrdersSettings
) -> None:
    """Background upkeep in every worker: compensate stale pending orders, forget old keys."""
    retention = timedelta(hours=settings.idempotency_retention_hours)
    grace = timedelta(seconds=settings.pending_grace_seconds)
    last_purge = time.monotonic()
    while True:
        await asyncio.sleep(settings.pending_sweep_interval)
        try:
            await compensator.sweep_all(grace)
        except Exception:
            log.exception("sweeping stale pending orders failed")
        if time.monotonic() - last_purge < settings.idempotency_purge_interval:
            continue
        last_purge = time.monotonic()
        try:
            purged = await service.purge_idempotency_keys(retention)
        except Exception:
            log.exception("purging old idempotency keys failed")
        else:
            log.info("purged old idempotency keys", extra={"purged": purged})


def create_app_from_env() -> FastAPI:
    """Uvicorn factory: every worker reads its settings from the environment."""
    app = create_app(OrdersSettings())
    freeze_startup_heap()
    return app
