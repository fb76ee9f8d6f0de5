"""Every book statement of the catalog (SQLAlchemy Core on the request's session).

A failed statement aborts the transaction; the session dependency then rolls it back.
Reading one book runs on the raw asyncpg pool when there is one (PostgreSQL), from a
statement compiled once (batches.py batches it); else on the engine. Stock changes are
in stock.py, the search statement in search.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bookstore_common.rawpool import Database, RawStatement
from sqlalchemy import RowMapping, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_catalog.models import Book, Reservation

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
_SELECT_BOOK_RAW = RawStatement.compile(_SELECT_BOOK)


class DuplicateIsbnError(Exception):
    """Another book already has this ISBN (unique constraint)."""


class BookInUseError(Exception):
    """The book still has reservations, so it cannot be deleted (foreign key)."""


def _is_unique_violation(exc: IntegrityError) -> bool:
    """Whether the error is the ISBN unique constraint (PostgreSQL or SQLite wording)."""
    text = str(exc.orig).lower()
    return "uq_books_isbn" in text or "unique constraint failed: books.isbn" in text


async def get_book(session: AsyncSession, book_id: int) -> RowMapping | None:
    """One book's columns, or None (inside a write transaction)."""
    result = await session.execute(_SELECT_BOOK, {"book_id": book_id})
    return result.mappings().first()


async def read_book(database: Database, book_id: int) -> Mapping[Any, Any] | None:
    """One book's columns, or None (one statement of its own; see BookReader)."""
    if database.pool is not None:
        async with database.connection() as connection:
            record = await connection.fetchrow(_SELECT_BOOK_RAW.sql, book_id)
        return None if record is None else dict(record)
    async with database.engine.connect() as connection:
        result = await connection.execute(_SELECT_BOOK, {"book_id": book_id})
        return result.mappings().first()


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
    """Delete a book; False when it does not exist, BookInUseError when it has reservations.

    Released reservations (tombstones) of the book go with it; active ones block it.
    """
    await session.execute(
        delete(Reservation).where(
            Reservation.book_id == book_id, Reservation.released_at.is_not(None)
        )
    )
    try:
        result = await session.execute(delete(Book).where(Book.id == book_id).returning(Book.id))
        return result.first() is not None
    except IntegrityError as exc:
        raise BookInUseError from exc
