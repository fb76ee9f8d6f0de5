"""Dev mode (SQLite): a transaction is all or nothing, as on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from bookstore_common.db import create_autocommit_engine, create_engine
from bookstore_common.settings import ServiceSettings
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(ServiceSettings(sqlite_path=tmp_path / "dev.db"))
    async with engine.begin() as connection:
        await connection.execute(
            text("CREATE TABLE stock (id integer PRIMARY KEY, copies integer CHECK (copies >= 0))")
        )
    yield engine
    await engine.dispose()


async def count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM stock"))).scalar_one())


async def write_then_break_a_rule(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("SELECT count(*) FROM stock"))
        await connection.execute(text("INSERT INTO stock (copies) VALUES (1)"))
        await connection.execute(text("INSERT INTO stock (copies) VALUES (-1)"))


async def fail_after_a_write(engine: AsyncEngine) -> None:
    with pytest.raises(IntegrityError):
        await write_then_break_a_rule(engine)


async def test_a_failed_transaction_keeps_none_of_its_writes(engine: AsyncEngine) -> None:
    await fail_after_a_write(engine)
    assert await count(engine) == 0


async def test_a_transaction_on_a_connection_the_autocommit_engine_used_is_still_atomic(
    engine: AsyncEngine,
) -> None:
    autocommit = create_autocommit_engine(engine)
    async with autocommit.connect() as connection:
        await connection.execute(text("INSERT INTO stock (copies) VALUES (5)"))
    assert await count(engine) == 1  # autocommitted, no COMMIT needed
    await fail_after_a_write(autocommit.execution_options(isolation_level="SERIALIZABLE"))
    assert await count(engine) == 1
