"""The raw asyncpg pool: it shares DATABASE_POOL_SIZE with the engine and uses its DSN."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bookstore_common.app import create_service_app
from bookstore_common.rawpool import Database, RawCheckout, RawStatement, pool_sizes
from bookstore_common.settings import ServiceSettings
from sqlalchemy import bindparam, column, literal, select, table


@pytest.mark.parametrize("total", [1, 2, 3, 5, 10, 200])
def test_pool_split_keeps_the_configured_connections_per_worker(total: int) -> None:
    engine, raw = pool_sizes(total)
    assert engine + raw == total
    assert engine >= 1
    assert raw >= 1 or total == 1


def test_raw_statement_orders_named_parameters_and_keeps_its_own_literals() -> None:
    books = table("books", column("id"), column("quantity"))
    statement = select(books.c.id, literal(7).label("seven")).where(
        books.c.quantity >= bindparam("quantity"), books.c.id == bindparam("book_id")
    )
    raw = RawStatement.compile(statement)
    assert "$1" in raw.sql
    assert "$3" in raw.sql
    arguments = raw.arguments({"book_id": 4, "quantity": 2})
    assert sorted(arguments) == [2, 4, 7]
    assert arguments[raw.names.index("book_id")] == 4


async def test_raw_pool_opens_in_the_lifespan_with_sslmode_and_takes_a_share_of_the_pool(
    make_database: Callable[[str], str],
) -> None:
    url = make_database("rawpool") + "?sslmode=disable"
    settings = ServiceSettings(
        database_url=url, database_password="ignored-by-trust-auth", database_pool_size=5
    )
    app = create_service_app(settings, component="test", title="t", version="0", raw_pool=True)
    async with app.router.lifespan_context(app):
        database = app.state.database
        assert await database.pool.fetchval("SELECT 1") == 1
        assert app.state.engine.pool.size() + database.pool.get_max_size() == 5
    assert app.state.database.pool is None


async def test_sqlite_dev_mode_has_no_raw_pool(tmp_path: Path) -> None:
    settings = ServiceSettings(sqlite_path=tmp_path / "dev.db")
    app = create_service_app(settings, component="test", title="t", version="0", raw_pool=True)
    async with app.router.lifespan_context(app):
        assert app.state.database.pool is None


CHECKOUTS = ["raw pool", "engine"]


def checkout(database: Database, kind: str) -> RawCheckout:
    """A checkout of the raw pool, or of the engine's pool (what searches use)."""
    return database.connection() if kind == "raw pool" else database.engine_connection()


async def select_on(held: Any, kind: str, value: int) -> int:
    """SELECT `value` on a checked-out connection (the engine's: its asyncpg connection)."""
    connection = held if kind == "raw pool" else held.driver_connection
    return int(await connection.fetchval(f"SELECT {value}"))


@pytest.mark.parametrize("kind", CHECKOUTS)
async def test_a_checkout_times_out_when_every_connection_stays_busy(
    make_database: Callable[[str], str], kind: str
) -> None:
    settings = ServiceSettings(
        database_url=make_database("rawpool_full"), database_pool_size=2, database_pool_timeout=0.2
    )
    app = create_service_app(settings, component="test", title="t", version="0", raw_pool=True)
    async with app.router.lifespan_context(app):
        database = app.state.database
        async with checkout(database, kind) as held:
            assert await select_on(held, kind, 1) == 1
            with pytest.raises(TimeoutError):
                async with checkout(database, kind):
                    pass
        async with checkout(database, kind) as again:
            assert await select_on(again, kind, 2) == 2


@pytest.mark.parametrize("kind", CHECKOUTS)
async def test_checkouts_waiting_for_a_busy_pool_are_served_in_arrival_order(
    make_database: Callable[[str], str], kind: str
) -> None:
    settings = ServiceSettings(database_url=make_database("rawpool_fifo"), database_pool_size=2)
    app = create_service_app(settings, component="test", title="t", version="0", raw_pool=True)
    served: list[str] = []
    async with app.router.lifespan_context(app):
        database = app.state.database

        async def take(name: str) -> None:
            async with checkout(database, kind) as held:
                served.append(name)
                await select_on(held, kind, 1)

        async with checkout(database, kind):  # the pool's only connection
            waiting = [asyncio.create_task(take(f"waiter {n}")) for n in range(5)]
            await asyncio.sleep(0.05)
        # arrives while the five still queue: it must not overtake any of them
        late = asyncio.create_task(take("late"))
        await asyncio.gather(*waiting, late)
    assert served == [*(f"waiter {n}" for n in range(5)), "late"]


async def test_a_checkout_cancelled_while_waiting_gives_its_turn_to_the_next(
    make_database: Callable[[str], str],
) -> None:
    settings = ServiceSettings(database_url=make_database("rawpool_cancel"), database_pool_size=2)
    app = create_service_app(settings, component="test", title="t", version="0", raw_pool=True)
    async with app.router.lifespan_context(app):
        database = app.state.database

        async def hold_once() -> int:
            async with database.connection() as connection:
                return int(await connection.fetchval("SELECT 7"))

        async with database.connection():
            abandoned = asyncio.create_task(hold_once())
            patient = asyncio.create_task(hold_once())
            await asyncio.sleep(0.05)
            abandoned.cancel()
        assert await asyncio.wait_for(patient, 5) == 7
        assert abandoned.cancelled()
        assert await asyncio.wait_for(hold_once(), 5) == 7  # no slot was lost
