"""The FastAPI application skeleton both services build on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from bookstore_common.db import create_autocommit_engine, create_engine, create_sessionmaker
from bookstore_common.health import health_router
from bookstore_common.metrics import metrics_router
from bookstore_common.middleware import RequestContextMiddleware
from bookstore_common.problems import install_problem_handlers
from bookstore_common.settings import ServiceSettings

ExtraLifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

# FastAPI's built-in OpenTelemetry hooks, all off: we export Prometheus metrics, and the
# hooks cost CPU on every request (provider lookups) even with no provider configured.
TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    version: str,
    description: str = "",
    lifespan: ExtraLifespan | None = None,
) -> FastAPI:
    """Build a FastAPI app with the shared parts wired in; the service adds its routers.

    Sets `app.state.settings`, `app.state.engine`, `app.state.sessionmaker` (transactional)
    and `app.state.autocommit_engine` (reads, single-statement writes); installs
    problem+json handlers, the request-id/metrics middleware, `/health/*` and `/metrics`.
    `lifespan` (optional) runs inside the app's lifespan, e.g. to open an httpx client.
    The engine is disposed when the app shuts down.
    """
    engine = create_engine(settings)

    @asynccontextmanager
    async def app_lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=app_lifespan,
        telemetry=TELEMETRY_OFF,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    app.state.autocommit_engine = create_autocommit_engine(engine)
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(health_router)
    app.include_router(metrics_router)
    return app
