"""Every stock statement of the catalog: reservations taken, released and purged.

Each stock change is ONE statement on PostgreSQL (data-modifying CTEs), atomic by itself:
on the raw asyncpg pool when there is one (batches.py batches the reservations), else
autocommitted on the engine. SQLite (dev mode) lacks DML in CTEs, so there each change is
two statements in a real transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from bookstore_common.rawpool import Database, RawStatement
from sqlalchemy import Integer, Numeric, String, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bookstore_catalog.models import Book, Reservation

# Stock statements, built once (they run on every order).
_BOOK_ID = bindparam("book_id", type_=Integer)
_QUANTITY = bindparam("quantity", type_=Integer)
_REFERENCE = bindparam("key", type_=String)
_TAKE_STOCK = (
    update(Book)
    .where(Book.id == _BOOK_ID, Book.quantity >= _QUANTITY)
    .values(quantity=Book.quantity - _QUANTITY, updated_at=func.now())
    .returning(Book.id, Book.price)
)
_INSERT_RESERVATION = (
    insert(Reservation)
    .values(
        book_id=_BOOK_ID,
        quantity=_QUANTITY,
        reference=_REFERENCE,
        unit_price=bindparam("unit_price", type_=Numeric(10, 2)),
    )
    .returning(Reservation.id)
)
_TAKEN = _TAKE_STOCK.cte("taken")
_MADE = (
    insert(Reservation)
    .from_select(
        ["book_id", "quantity", "reference", "unit_price"],
        select(_TAKEN.c.id, _QUANTITY, _REFERENCE, _TAKEN.c.price),
    )
    .returning(Reservation.id, Reservation.unit_price)
    .cte("made")
)
_RESERVE = select(_MADE.c.id, _MADE.c.unit_price.label("price"))
_FIND_BY_REFERENCE = select(
    Reservation.id,
    Reservation.book_id,
    Reservation.quantity,
    Reservation.unit_price,
    Reservation.released_at,
).where(Reservation.reference == _REFERENCE)
_GIVE_BACK = (
    update(Book)
    .where(Book.id == _BOOK_ID)
    .values(quantity=Book.quantity + _QUANTITY, updated_at=func.now())
)
# Releasing marks the row (a tombstone keeps its reference); only an active row matches,
# and the row lock makes concurrent releases see each other: stock comes back once.
_MARK_RELEASED = (
    update(Reservation)
    .where(
        Reservation.id == bindparam("reservation_id", type_=Integer),
        Reservation.released_at.is_(None),
    )
    .values(released_at=func.now())
    .returning(Reservation.book_id, Reservation.quantity)
)
_MARK_RELEASED_BY_REFERENCE = (
    update(Reservation)
    .where(Reservation.reference == _REFERENCE, Reservation.released_at.is_(None))
    .values(released_at=func.now())
    .returning(Reservation.book_id, Reservation.quantity)
)
_INSERT_TOMBSTONE = insert(Reservation).values(
    reference=_REFERENCE, quantity=0, released_at=func.now()
)
# By reference in ONE statement: a tombstone when the reference is new, else release the
# row if still active. ON CONFLICT waits for a concurrent POST of the same reference, so
# either the POST sees the tombstone (409) or this sees and releases its reservation.
_TOMBSTONE_OR_RELEASE = (
    postgresql.insert(Reservation)
    .values(reference=_REFERENCE, quantity=0, released_at=func.now())
    .on_conflict_do_update(
        index_elements=[Reservation.reference],
        set_={"released_at": func.now()},
        where=Reservation.released_at.is_(None),
    )
    .returning(Reservation.book_id, Reservation.quantity)
)


def _give_back_from(released: Any) -> Any:
    """One statement: a data-modifying CTE marks the reservation, this returns its stock."""
    cte = released.cte("released")
    return (
        update(Book)
        .where(Book.id == cte.c.book_id)
        .values(quantity=Book.quantity + cte.c.quantity, updated_at=func.now())
        .returning(Book.id)
    )


_RELEASE = _give_back_from(_MARK_RELEASED)
_RELEASE_BY_REFERENCE = _give_back_from(_TOMBSTONE_OR_RELEASE)
_RELEASE_RAW = RawStatement.compile(_RELEASE)
_RELEASE_BY_REFERENCE_RAW = RawStatement.compile(_RELEASE_BY_REFERENCE)
_PURGE_BATCH = 1000
DEADLOCK_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class StoredReservation:
    """A reservation found by its reference (active, or a released tombstone)."""

    id: int
    book_id: int | None
    quantity: int
    unit_price: Decimal | None
    released: bool


class DuplicateReferenceError(Exception):
    """Another request stored a reservation with this reference first (unique index)."""


def is_reference_violation(error: BaseException) -> bool:
    """Whether the error is the reservation reference's unique index (any driver)."""
    text = str(getattr(error, "orig", error)).lower()
    return "uq_reservations_reference" in text or "reservations.reference" in text


@asynccontextmanager
async def _stock_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for one stock change, given the autocommit engine.

    PostgreSQL: autocommit, as each stock change there is ONE statement (data-modifying
    CTEs), atomic by itself: one round trip, no BEGIN/COMMIT. SQLite (dev mode) lacks DML
    in CTEs, so its two statements run in a real transaction, committed here.
    """
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            yield connection
    else:
        async with engine.execution_options(isolation_level="SERIALIZABLE").begin() as connection:
            yield connection


async def reserve_stock(
    database: Database, book_id: int, quantity: int, reference: str | None = None
) -> tuple[int, Decimal] | None:
    """Take `quantity` copies and record a reservation: (reservation id, unit price).

    None when the book has fewer copies (or does not exist); nothing is taken then. One
    conditional UPDATE takes the stock: the row lock serializes concurrent takers and
    `quantity >= n` is re-checked on the locked row, so stock never goes negative.
    DuplicateReferenceError when `reference` is already stored: nothing is taken (on
    PostgreSQL the unique index fails the one statement, its stock take included). This
    runs on the engine; on the raw pool, batches.StockReserver batches the same statement.
    """
    params = {"book_id": book_id, "quantity": quantity, "key": reference}
    try:
        async with _stock_transaction(database.engine) as connection:
            if connection.dialect.name == "postgresql":
                row = (await connection.execute(_RESERVE, params)).first()
                return None if row is None else (int(row.id), row.price)
            known = reference is not None and await connection.scalar(_FIND_BY_REFERENCE, params)
            if known:
                raise DuplicateReferenceError
            taken = (await connection.execute(_TAKE_STOCK, params)).first()
            if taken is None:
                return None
            insert_params = params | {"unit_price": taken.price}
            reservation_id = (
                await connection.execute(_INSERT_RESERVATION, insert_params)
            ).scalar_one()
            return int(reservation_id), taken.price
    except IntegrityError as exc:
        if is_reference_violation(exc):
            raise DuplicateReferenceError from exc
        raise


async def _release_on_raw_pool(
    database: Database, statement: RawStatement, params: dict[str, Any]
) -> bool:
    """Run a one-statement release on the raw pool; True when stock came back."""
    return await run_stock_statement(database, statement, params) is not None


async def run_stock_statement(
    database: Database, statement: RawStatement, params: dict[str, Any], *, rows: bool = False
) -> Any:
    """Run one atomic stock statement on the raw pool (its first row, or all `rows`); again
    if PostgreSQL broke a deadlock.

    A reservation locks its book, then its reference's index entry; a release by reference
    locks the reservation, then its book: racing on one reference they can deadlock, and
    PostgreSQL rolls one statement back whole, so running it again is safe (its advice).
    """
    arguments = statement.arguments(params)
    for _ in range(DEADLOCK_ATTEMPTS - 1):
        with suppress(asyncpg.DeadlockDetectedError):
            async with database.connection() as connection:
                run = connection.fetch if rows else connection.fetchrow
                return await run(statement.sql, *arguments)
    async with database.connection() as connection:  # the last attempt's error propagates
        run = connection.fetch if rows else connection.fetchrow
        return await run(statement.sql, *arguments)


async def find_reservation(engine: AsyncEngine, reference: str) -> StoredReservation | None:
    """The reservation (or tombstone) stored under `reference`, if any."""
    async with engine.connect() as connection:
        row = (await connection.execute(_FIND_BY_REFERENCE, {"key": reference})).first()
    if row is None:
        return None
    return StoredReservation(
        id=int(row.id),
        book_id=row.book_id,
        quantity=int(row.quantity),
        unit_price=row.unit_price,
        released=row.released_at is not None,
    )


async def release_reservation(database: Database, reservation_id: int) -> bool:
    """Mark a reservation released and give its copies back; False when already released.

    Only an active row matches the UPDATE and its row lock orders concurrent releases, so
    the stock comes back exactly once; the row stays (with its reference) as a tombstone.
    """
    params = {"reservation_id": reservation_id}
    if database.pool is not None:
        return await _release_on_raw_pool(database, _RELEASE_RAW, params)
    async with _stock_transaction(database.engine) as connection:
        if connection.dialect.name == "postgresql":
            return (await connection.execute(_RELEASE, params)).first() is not None
        row = (await connection.execute(_MARK_RELEASED, params)).first()
        return await _give_back(connection, row)


async def release_by_reference(database: Database, reference: str) -> bool:
    """Release the reservation stored under `reference`; True when stock came back.

    A reference never reserved gets a tombstone (so a late POST with it takes nothing);
    one already released stays as it is.
    """
    params = {"key": reference}
    if database.pool is not None:
        return await _release_on_raw_pool(database, _RELEASE_BY_REFERENCE_RAW, params)
    async with _stock_transaction(database.engine) as connection:
        if connection.dialect.name == "postgresql":
            return (await connection.execute(_RELEASE_BY_REFERENCE, params)).first() is not None
        row = (await connection.execute(_MARK_RELEASED_BY_REFERENCE, params)).first()
        if row is None and (await connection.execute(_FIND_BY_REFERENCE, params)).first() is None:
            await connection.execute(_INSERT_TOMBSTONE, params)
        return await _give_back(connection, row)


async def _give_back(connection: AsyncConnection, released: Any) -> bool:
    """SQLite path: return a released row's copies to its book (False for no row)."""
    if released is None or released.book_id is None:
        return False
    params = {"book_id": released.book_id, "quantity": released.quantity}
    await connection.execute(_GIVE_BACK, params)
    return True


async def purge_released_before(engine: AsyncEngine, cutoff: datetime) -> int:
    """Delete up to a batch of reservations released before `cutoff`; return how many."""
    oldest = (
        select(Reservation.id)
        .where(Reservation.released_at < cutoff)
        .order_by(Reservation.released_at)
        .limit(_PURGE_BATCH)
    )
    async with engine.begin() as connection:
        result = await connection.execute(delete(Reservation).where(Reservation.id.in_(oldest)))
    return int(result.rowcount)
