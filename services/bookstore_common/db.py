"""Async SQLAlchemy engine and the request session whose dependency commits or rolls back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from bookstore_common.settings import ServiceSettings


def _prepare_sqlite_connection(dbapi_connection: Any, _: Any) -> None:
    """Enforce foreign keys (SQLite does only when asked) and leave BEGIN to us.

    pysqlite begins a transaction on its own only before an INSERT/UPDATE/DELETE, so the
    reads of a transaction ran outside it, and on a connection that had served the
    autocommit engine a failed transaction kept its earlier writes. SQLAlchemy's recipe
    for pysqlite: turn the driver's own BEGIN off, emit BEGIN at SQLAlchemy's begin.
    """
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    """BEGIN for every transaction but the autocommit engine's (its statements stand alone)."""
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN")


def create_engine(settings: ServiceSettings, pool_size: int | None = None) -> AsyncEngine:
    """Create the process's engine: a fixed-size pool (no overflow) on PostgreSQL.

    `pool_size` (default DATABASE_POOL_SIZE) connections per worker process, opened lazily
    and kept: overflow connections would be opened and closed on every burst, which costs
    more than it serves.
    """
    url, connect_args = settings.async_engine_args()
    if settings.uses_sqlite:
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args=connect_args)
        event.listen(engine.sync_engine, "connect", _prepare_sqlite_connection)
        event.listen(engine.sync_engine, "begin", _begin_sqlite_transaction)
        return engine
    return create_async_engine(
        url,
        connect_args=connect_args,
        pool_size=pool_size or settings.database_pool_size,
        max_overflow=0,
        pool_timeout=settings.database_pool_timeout,
        pool_pre_ping=False,
        pool_recycle=1800,
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no lazy reloads)."""
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def create_autocommit_engine(engine: AsyncEngine) -> AsyncEngine:
    """The same engine and pool in autocommit mode: no BEGIN/COMMIT round trips.

    For reads and for writes that are ONE statement (its own transaction).
    """
    return engine.execution_options(isolation_level="AUTOCOMMIT")


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one session per request, committed here and only here.

    The session is committed when the endpoint returns (before the response is sent) and
    rolled back when it raises.
    Needs `app.state.sessionmaker` (set by `create_service_app`).
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def get_autocommit_engine(request: Request) -> AsyncEngine:
    """FastAPI dependency: the autocommit engine (`app.state.autocommit_engine`).

    Use `async with engine.connect() as connection:` for reads and single-statement
    writes: a pooled Core connection, far cheaper than a session (no ORM unit of work, no
    BEGIN/COMMIT, no generator dependency). Each statement is its own transaction, so a
    multi-statement write must use `SessionDep`. (async: a sync dependency would cost a
    thread hop per request.)
    """
    engine: AsyncEngine = request.app.state.autocommit_engine
    return engine


# scope="function": commit before the response is sent, so a failed commit is the answer.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
AutocommitEngineDep = Annotated[AsyncEngine, Depends(get_autocommit_engine)]
