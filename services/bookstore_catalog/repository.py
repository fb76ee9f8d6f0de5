"""Every SQL statement of the catalog (SQLAlchemy Core on the request's session).

A failed statement aborts the transaction; the session dependency then rolls it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy import (
    ColumnElement,
    Integer,
    RowMapping,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from bookstore_catalog.isbn import clean_isbn
from bookstore_catalog.models import Book, Reservation
from bookstore_catalog.schemas import BookFilters

BOOK_COLUMNS = (
    Book.id,
    Book.title,
    Book.author,
    Book.isbn,
    Book.price,
    Book.quantity,
    Book.description,
    Book.created_at,
    Book.updated_at,
)


_SELECT_BOOK = select(*BOOK_COLUMNS).where(Book.id == bindparam("book_id"))
_SELECT_BOOK_ASYNCPG = str(
    _SELECT_BOOK.compile(dialect=PGDialect_asyncpg())  # type: ignore[no-untyped-call]
)

# Stock statements, built once (they run on every order).
_BOOK_ID = bindparam("book_id", type_=Integer)
_QUANTITY = bindparam("quantity", type_=Integer)
_TAKE_STOCK = (
    update(Book)
    .where(Book.id == _BOOK_ID, Book.quantity >= _QUANTITY)
    .values(quantity=Book.quantity - _QUANTITY, updated_at=func.now())
    .returning(Book.id, Book.price)
)
_INSERT_RESERVATION = (
    insert(Reservation).values(book_id=_BOOK_ID, quantity=_QUANTITY).returning(Reservation.id)
)
_TAKEN = _TAKE_STOCK.cte("taken")
_MADE = (
    insert(Reservation)
    .from_select(["book_id", "quantity"], select(_TAKEN.c.id, _QUANTITY))
    .returning(Reservation.id, Reservation.book_id)
    .cte("made")
)
_RESERVE = select(_MADE.c.id, _TAKEN.c.price).join_from(
    _MADE, _TAKEN, _MADE.c.book_id == _TAKEN.c.id
)
_DELETE_RESERVATION = (
    delete(Reservation)
    .where(Reservation.id == bindparam("reservation_id", type_=Integer))
    .returning(Reservation.book_id, Reservation.quantity)
)
_GIVE_BACK = (
    update(Book)
    .where(Book.id == _BOOK_ID)
    .values(quantity=Book.quantity + _QUANTITY, updated_at=func.now())
)
_RELEASED = _DELETE_RESERVATION.cte("released")
_RELEASE = (
    update(Book)
    .where(Book.id == _RELEASED.c.book_id)
    .values(quantity=Book.quantity + _RELEASED.c.quantity, updated_at=func.now())
    .returning(Book.id)
)


class DuplicateIsbnError(Exception):
    """Another book already has this ISBN (unique constraint)."""


class BookInUseError(Exception):
    """The book still has reservations, so it cannot be deleted (foreign key)."""


def _contains(value: str) -> str:
    """A LIKE pattern matching `value` anywhere, with LIKE wildcards escaped."""
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _is_unique_violation(exc: IntegrityError) -> bool:
    """Whether the error is the ISBN unique constraint (PostgreSQL or SQLite wording)."""
    text = str(exc.orig).lower()
    return "uq_books_isbn" in text or "unique constraint failed: books.isbn" in text


def _filter_clauses(filters: BookFilters) -> list[ColumnElement[bool]]:
    """Translate search criteria into WHERE clauses."""
    clauses: list[ColumnElement[bool]] = []
    if filters.q:
        pattern = _contains(filters.q)
        clauses.append(
            or_(
                Book.title.ilike(pattern, escape="\\"),
                Book.author.ilike(pattern, escape="\\"),
                Book.isbn.ilike(_contains(clean_isbn(filters.q)), escape="\\"),
            )
        )
    if filters.title:
        clauses.append(Book.title.ilike(_contains(filters.title), escape="\\"))
    if filters.author:
        clauses.append(Book.author.ilike(_contains(filters.author), escape="\\"))
    if filters.isbn:
        clauses.append(Book.isbn == clean_isbn(filters.isbn))
    if filters.min_price is not None:
        clauses.append(Book.price >= filters.min_price)
    if filters.max_price is not None:
        clauses.append(Book.price <= filters.max_price)
    if filters.in_stock is True:
        clauses.append(Book.quantity > 0)
    elif filters.in_stock is False:
        clauses.append(Book.quantity == 0)
    return clauses


async def get_book(session: AsyncSession, book_id: int) -> RowMapping | None:
    """One book's columns, or None (inside a write transaction)."""
    result = await session.execute(_SELECT_BOOK, {"book_id": book_id})
    return result.mappings().first()


async def read_book(engine: AsyncEngine, book_id: int) -> Mapping[Any, Any] | None:
    """One book's columns, or None, on an autocommit connection (the hottest query).

    On asyncpg the precompiled SQL goes straight to the driver connection from
    SQLAlchemy's pool: measured ~30% less CPU per request than a Core execute. A failure
    there invalidates the connection (so the pool replaces it) and surfaces as
    OperationalError (a 503), as SQLAlchemy itself would do.
    """
    async with engine.connect() as connection:
        if connection.dialect.driver != "asyncpg":
            result = await connection.execute(_SELECT_BOOK, {"book_id": book_id})
            return result.mappings().first()
        driver = (await connection.get_raw_connection()).driver_connection
        assert driver is not None
        try:
            record = await driver.fetchrow(_SELECT_BOOK_ASYNCPG, book_id)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            await connection.invalidate(exc)
            raise OperationalError(_SELECT_BOOK_ASYNCPG, (book_id,), exc) from exc
        return None if record is None else dict(record)


async def search_books(
    engine: AsyncEngine, filters: BookFilters, limit: int, offset: int
) -> tuple[Sequence[RowMapping], int]:
    """A page of matching books ordered by id, and the number of matches in all.

    The total rides along as a window count (one round trip); only a page past the end
    needs a separate COUNT.
    """
    where = _filter_clauses(filters)
    async with engine.connect() as connection:
        result = await connection.execute(
            select(*BOOK_COLUMNS, func.count().over().label("total"))
            .where(*where)
            .order_by(Book.id)
            .limit(limit)
            .offset(offset)
        )
        rows = result.mappings().all()
        if rows:
            return rows, int(rows[0]["total"])
        if offset == 0:
            return rows, 0
        total = await connection.scalar(select(func.count()).select_from(Book).where(*where))
    return rows, total or 0


async def insert_book(session: AsyncSession, values: dict[str, Any]) -> RowMapping:
    """Insert a book and return it; DuplicateIsbnError when the ISBN is taken."""
    try:
        result = await session.execute(insert(Book).values(**values).returning(*BOOK_COLUMNS))
        return result.mappings().one()
    except IntegrityError as exc:
        if _is_unique_violation(exc):
            raise DuplicateIsbnError from exc
        raise


async def update_book(
    session: AsyncSession, book_id: int, values: dict[str, Any]
) -> RowMapping | None:
    """Apply `values` to a book and return it (None when it does not exist)."""
    statement = (
        update(Book)
        .where(Book.id == book_id)
        .values(**values, updated_at=func.now())
        .returning(*BOOK_COLUMNS)
    )
    try:
        result = await session.execute(statement)
        return result.mappings().first()
    except IntegrityError as exc:
        if _is_unique_violation(exc):
            raise DuplicateIsbnError from exc
        raise


async def delete_book(session: AsyncSession, book_id: int) -> bool:
    """Delete a book; False when it does not exist, BookInUseError when it has reservations."""
    try:
        result = await session.execute(delete(Book).where(Book.id == book_id).returning(Book.id))
        return result.first() is not None
    except IntegrityError as exc:
        raise BookInUseError from exc


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
    engine: AsyncEngine, book_id: int, quantity: int
) -> tuple[int, Decimal] | None:
    """Take `quantity` copies and record a reservation: (reservation id, unit price).

    None when the book has fewer copies (or does not exist); nothing is taken then. One
    conditional UPDATE takes the stock: the row lock serializes concurrent takers and
    `quantity >= n` is re-checked on the locked row, so stock never goes negative.
    """
    params = {"book_id": book_id, "quantity": quantity}
    async with _stock_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            row = (await connection.execute(_RESERVE, params)).first()
            return None if row is None else (int(row.id), row.price)
        taken = (await connection.execute(_TAKE_STOCK, params)).first()
        if taken is None:
            return None
        reservation_id = (await connection.execute(_INSERT_RESERVATION, params)).scalar_one()
        return int(reservation_id), taken.price


async def release_reservation(engine: AsyncEngine, reservation_id: int) -> bool:
    """Delete a reservation and give its copies back; False when it was already gone.

    DELETE ... RETURNING hands the row to exactly one caller, so concurrent releases give
    the stock back once; the UPDATE runs in the same statement (PostgreSQL) or transaction.
    """
    params = {"reservation_id": reservation_id}
    async with _stock_transaction(engine) as connection:
        if connection.dialect.name == "postgresql":
            return (await connection.execute(_RELEASE, params)).first() is not None
        row = (await connection.execute(_DELETE_RESERVATION, params)).first()
        if row is None:
            return False
        await connection.execute(_GIVE_BACK, {"book_id": row.book_id, "quantity": row.quantity})
        return True
