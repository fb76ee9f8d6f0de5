"""The raw asyncpg pool: it shares DATABASE_POOL_SIZE with the engine and uses its DSN."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from bookstore_common.app import create_service_app
from bookstore_common.rawpool import RawStatement, pool_sizes
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
    app = create_service_app(settings, title="t", version="0", raw_pool=True)
    async with app.router.lifespan_context(app):
        database = app.state.database
        assert await database.pool.fetchval("SELECT 1") == 1
        assert app.state.engine.pool.size() + database.pool.get_max_size() == 5
    assert app.state.database.pool is None


async def test_sqlite_dev_mode_has_no_raw_pool(tmp_path: Path) -> None:
    settings = ServiceSettings(sqlite_path=tmp_path / "dev.db")
    app = create_service_app(settings, title="t", version="0", raw_pool=True)
    async with app.router.lifespan_context(app):
        assert app.state.database.pool is None


async def test_a_checkout_from_a_full_raw_pool_times_out(
    make_database: Callable[[str], str],
) -> None:
    settings = ServiceSettings(
        database_url=make_database("rawpool_full"), database_pool_size=2, database_pool_timeout=0.2
    )
    app = create_service_app(settings, title="t", version="0", raw_pool=True)
    async with app.router.lifespan_context(app):
        database = app.state.database
        async with database.connection() as held:
            assert await held.fetchval("SELECT 1") == 1
            with pytest.raises(TimeoutError):
                async with database.connection():
                    pass
        async with database.connection() as again:
            assert await again.fetchval("SELECT 2") == 2
