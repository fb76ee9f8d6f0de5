"""Liveness and readiness endpoints.

Ready means the database answers and its schema is one this code can serve: at its Alembic
head, or ahead of it (a newer version migrated it; by the expand-then-contract policy the
previous version's code reads it). A schema behind head is not ready, so traffic never reaches
code whose tables are not there yet.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookstore_common.problems import UnavailableError
from bookstore_common.schema_state import SchemaState, ServiceSchema
from bookstore_common.settings import ServiceSettings

log = logging.getLogger(__name__)

health_router = APIRouter(prefix="/health", tags=["health"])

SCHEMA_RETRY_AFTER_SECONDS = 10


class HealthStatus(BaseModel):
    """A health probe's answer."""

    status: str


@dataclass
class SchemaCheck:
    """The service's schema, and whether this process has seen it servable (then it stays
    so: schemas only move forward, so later probes only ping the database)."""

    schema: ServiceSchema
    servable: bool = False


def install_schema_check(app: FastAPI, schema: ServiceSchema) -> None:
    """Make /health/ready also require the database schema to be servable by this code."""
    app.state.schema_check = SchemaCheck(schema)


async def ping_database(engine: AsyncEngine) -> None:
    """Run `SELECT 1` on a pooled connection; raises when the database is unreachable."""
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


async def _probe(engine: AsyncEngine, check: SchemaCheck | None) -> tuple[str, ...] | None:
    """Ping the database; while the schema is not yet known servable, read its revisions."""
    connection: AsyncConnection
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
        if check is None or check.servable:
            return None
        return await check.schema.read_revisions(connection)


@health_router.get("/live")
async def live() -> HealthStatus:
    """The process is up and serving (no dependency checked)."""
    return HealthStatus(status="ok")


@health_router.get(
    "/ready",
    responses={
        503: {"description": "The database is unreachable, or its schema is older than needed"}
    },
)
async def ready(request: Request) -> HealthStatus:
    """The database answers within READY_TIMEOUT seconds and its schema is at (or past) this
    code's head; 503 problem otherwise, saying which revision is there and what to run."""
    settings: ServiceSettings = request.app.state.settings
    check: SchemaCheck | None = getattr(request.app.state, "schema_check", None)
    try:
        async with asyncio.timeout(settings.ready_timeout):
            revisions = await _probe(request.app.state.autocommit_engine, check)
    except Exception as exc:  # any failure (timeout, refused, auth) means not ready
        log.warning("readiness check failed", extra={"error": type(exc).__name__})
        raise UnavailableError("The database is unreachable.", retry_after=5) from exc
    if check is not None and revisions is not None:
        state = check.schema.state_of(revisions)
        if not state.servable:
            detail = check.schema.not_ready_detail(revisions)
            log.warning(
                "not ready: the schema is not at this version's head yet",
                extra={"revisions": list(revisions), "head": check.schema.head},
            )
            raise UnavailableError(detail, retry_after=SCHEMA_RETRY_AFTER_SECONDS)
        if state is SchemaState.AHEAD:
            log.info(
                "serving on a newer schema (expand-then-contract keeps it readable)",
                extra={"revisions": list(revisions), "head": check.schema.head},
            )
        check.servable = True
    return HealthStatus(status="ok")
