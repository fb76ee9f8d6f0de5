"""A raw asyncpg pool for PostgreSQL hot paths: one prebuilt statement, no SQLAlchemy pool.

Checking a connection out of SQLAlchemy's async pool costs ~0.15 ms CPU more per request
than asyncpg's own pool, so a service's hottest single-statement requests run here. The
pool takes a share of DATABASE_POOL_SIZE (the engine keeps the rest): the connections per
worker stay as configured. SQLite (dev mode), a pool size of 1, or an app whose lifespan
did not run have no raw pool: callers then use the autocommit engine as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from fastapi import Request
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.util import greenlet_spawn

from bookstore_common.settings import ServiceSettings
from bookstore_common.turns import take_turn

_DIALECT = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


def pool_sizes(total: int) -> tuple[int, int]:
    """Split DATABASE_POOL_SIZE into (engine, raw pool); no raw pool below 2 connections."""
    if total < 2:
        return total, 0
    raw = total - total // 2
    return total - raw, raw


async def _keep_session(_: Any) -> None:
    """Pool reset hook: nothing to undo (no LISTEN, advisory lock or SET on this pool).

    asyncpg's default reset sends `RESET ALL; UNLISTEN *; ...`: a round trip per request.
    """


async def open_raw_pool(settings: ServiceSettings, size: int) -> Any:
    """An asyncpg pool of up to `size` connections, opened lazily, with the engine's DSN.

    The connect arguments come from SQLAlchemy's asyncpg dialect and the settings (so
    DATABASE_PASSWORD and sslmode apply exactly as for the engine).
    """
    url, connect_args = settings.async_engine_args()
    _, params = _DIALECT.create_connect_args(url)  # type: ignore[no-untyped-call]
    return await asyncpg.create_pool(
        **params,
        **connect_args,
        timeout=settings.database_pool_timeout,
        min_size=0,
        max_size=size,
        reset=_keep_session,
    )


@dataclass(frozen=True, slots=True)
class RawStatement:
    """A Core statement compiled once for asyncpg: its SQL and its parameters in order."""

    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]  # the values bound in the statement itself (literals)

    @classmethod
    def compile(cls, statement: ClauseElement) -> RawStatement:
        """Compile `statement` with SQLAlchemy's asyncpg dialect ($1, $2, ... parameters)."""
        compiled = statement.compile(dialect=_DIALECT)
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        bound = compiled.params
        return cls(str(compiled), names, tuple(bound.get(name) for name in names))

    def arguments(self, params: Mapping[str, Any]) -> Sequence[Any]:
        """The positional arguments: `params` by name, else the statement's own value."""
        return [
            params.get(name, default)
            for name, default in zip(self.names, self.defaults, strict=True)
        ]


@dataclass(slots=True)
class Database:
    """A service's database handles: the autocommit engine and, when open, the raw pool."""

    engine: AsyncEngine
    pool: Any = None  # asyncpg.Pool | None (asyncpg has no type hints)
    acquire_timeout: float = 10.0
    gate: asyncio.Semaphore | None = None
    engine_gate: asyncio.Semaphore | None = None

    def open(self, pool: Any) -> None:
        """Serve checkouts from `pool`, first come first served (see `RawCheckout`)."""
        self.pool = pool
        self.gate = asyncio.Semaphore(pool.get_max_size())

    def connection(self) -> RawCheckout:
        """Check out a raw pool connection: `async with database.connection() as conn:`.

        Waits up to the pool timeout (then TimeoutError, a 503). A dropped connection
        raises asyncpg's connection error (a 503) and is replaced at the next checkout.
        """
        assert self.gate is not None, "Database.open() was not called"
        return RawCheckout(self.pool, self.gate, self.acquire_timeout)

    def engine_connection(self) -> RawCheckout:
        """Check out a connection of the engine's pool, first come first served like
        `connection()`: `async with database.engine_connection() as pooled:`.

        `pooled` is SQLAlchemy's pooled DBAPI connection (`pooled.driver_connection` is the
        asyncpg one), for a statement sent past SQLAlchemy's Connection; after an error,
        `await greenlet_spawn(pooled.invalidate)` so it serves no other request. The
        engine's own pool queue is unfair the same way as asyncpg's: under load most of a
        search's p99 (~680 ms of 64 connections, ~130 ms through the gate) was the wait.
        """
        if self.engine_gate is None:  # made on first use: bound to the serving loop
            pool = self.engine.pool
            assert isinstance(pool, QueuePool), "a PostgreSQL engine has a fixed-size pool"
            self.engine_gate = asyncio.Semaphore(pool.size())
        return RawCheckout(_EnginePool(self.engine), self.engine_gate, self.acquire_timeout)


class _EnginePool:
    """The engine's pool with asyncpg's pool interface (`acquire`, `release`), for RawCheckout."""

    __slots__ = ("_engine",)

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def acquire(self) -> Any:
        """A pooled DBAPI connection of the engine (waits in the pool's own queue)."""
        return await self._engine.raw_connection()

    async def release(self, pooled: Any) -> None:
        """Back to the pool (or discarded, when it was invalidated)."""
        await greenlet_spawn(pooled.close)


class RawCheckout:
    """One checkout from a pool, in arrival order; only a wait runs under a timer.

    A semaphore sized to the pool queues the checkouts: asyncpg's own queue lets a new
    request take a connection just given back ahead of the ones already waiting (a woken
    waiter that finds the queue empty again goes to the back), and under load that made
    half the requests wait 5-100 ms for a connection while the other half never waited.
    asyncio.Semaphore hands a released slot to the longest waiter, so once through the
    gate a free holder is always there (opening its connection is bounded by the connect
    timeout). asyncpg's `acquire(timeout=)` would also wrap every checkout in a task
    (~7 us a request), so only a wait at the gate runs under a timer.
    """

    __slots__ = ("_connection", "_gate", "_pool", "_timeout")

    def __init__(self, pool: Any, gate: asyncio.Semaphore, timeout: float) -> None:
        self._pool = pool
        self._gate = gate
        self._timeout = timeout
        self._connection: Any = None

    async def __aenter__(self) -> Any:
        """Take a free connection, or wait for one (TimeoutError after the pool timeout)."""
        gate = self._gate
        await take_turn(gate, self._timeout)
        try:
            self._connection = await self._pool.acquire()
        except BaseException:
            gate.release()
            raise
        return self._connection

    async def __aexit__(self, *_: object) -> None:
        """Give the connection back (a dropped one is discarded by the pool), then the slot."""
        try:
            await self._pool.release(self._connection)
        finally:
            self._gate.release()


def database_of(request: Request) -> Database:
    """The app's `Database` (`app.state.database`).

    Read in the endpoint (`request: Request`) rather than through a FastAPI dependency:
    solving an async dependency costs ~7 us a request, ~2% of a GET /books/{id}.
    """
    database: Database = request.app.state.database
    return database
