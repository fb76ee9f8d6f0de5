"""A stock statement PostgreSQL picked as a deadlock victim runs again (it was rolled back whole).

Seen for real: a reservation and a release by reference racing on one key deadlock now and then
(book row, then reference; reservation, then book). The race itself is covered in
test_reservation_references.py; this pins the retry on the raw pool deterministically.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from bookstore_catalog import stock
from bookstore_catalog.batches import StockReserver


class DeadlockingDatabase:
    """A raw-pool stand-in whose first `deadlocks` statements lose a deadlock."""

    def __init__(self, deadlocks: int) -> None:
        self.deadlocks = deadlocks
        self.statements = 0
        self.pool = object()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[DeadlockingDatabase]:
        yield self

    async def fetchrow(self, sql: str, *args: Any) -> dict[str, Any]:
        self.statements += 1
        if self.statements <= self.deadlocks:
            raise asyncpg.DeadlockDetectedError("deadlock detected")
        return {"id": 7}

    async def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        row = await self.fetchrow(sql, *args)
        return [
            row | {"book_id": 1, "quantity": 1, "reference": "key", "unit_price": Decimal("9.99")}
        ]


async def test_a_release_that_lost_a_deadlock_runs_again_and_gives_stock_back() -> None:
    database = DeadlockingDatabase(deadlocks=stock.DEADLOCK_ATTEMPTS - 1)
    assert await stock.release_by_reference(database, "order-1-x-0") is True  # type: ignore[arg-type]
    assert database.statements == stock.DEADLOCK_ATTEMPTS


async def test_a_reservation_that_keeps_losing_deadlocks_fails_after_bounded_attempts() -> None:
    database = DeadlockingDatabase(deadlocks=stock.DEADLOCK_ATTEMPTS)
    with pytest.raises(asyncpg.DeadlockDetectedError):
        await StockReserver(database)(1, 1, "key")  # type: ignore[arg-type]
    assert database.statements == stock.DEADLOCK_ATTEMPTS


async def test_a_reservation_batch_that_lost_a_deadlock_runs_again_and_takes_the_stock() -> None:
    database = DeadlockingDatabase(deadlocks=stock.DEADLOCK_ATTEMPTS - 1)
    assert await StockReserver(database)(1, 1, "key") == (7, Decimal("9.99"))  # type: ignore[arg-type]
    assert database.statements == stock.DEADLOCK_ATTEMPTS
