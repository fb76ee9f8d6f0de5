"""Liveness and readiness endpoints."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bookstore_common.problems import UnavailableError
from bookstore_common.settings import ServiceSettings

log = logging.getLogger(__name__)

health_router = APIRouter(prefix="/health", tags=["health"])


class HealthStatus(BaseModel):
    """A health probe's answer."""

    status: str


async def ping_database(engine: AsyncEngine) -> None:
    """Run `SELECT 1` on a pooled connection; raises when the database is unreachable."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


@health_router.get("/live")
async def live() -> HealthStatus:
    """The process is up and serving (no dependency checked)."""
    return HealthStatus(status="ok")


@health_router.get("/ready", responses={503: {"description": "The database is unreachable"}})
async def ready(request: Request) -> HealthStatus:
    """The database answers within READY_TIMEOUT seconds; 503 problem otherwise."""
    settings: ServiceSettings = request.app.state.settings
    try:
        async with asyncio.timeout(settings.ready_timeout):
            await ping_database(request.app.state.autocommit_engine)
    except Exception as exc:  # any failure (timeout, refused, auth) means not ready
        log.warning("readiness check failed", extra={"error": type(exc).__name__})
        raise UnavailableError("The database is unreachable.", retry_after=5) from exc
    return HealthStatus(status="ok")
