"""Catalog business rules: turn repository results into API models or domain errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from bookstore_common.problems import ConflictError, NotFoundError, UnprocessableError
from bookstore_common.rawpool import Database
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bookstore_catalog import batches, cursors, repository, search, stock
from bookstore_catalog.metrics import (
    RESERVATIONS_MADE,
    RESERVATIONS_REJECTED,
    RESERVATIONS_RELEASED,
)
from bookstore_catalog.schemas import (
    BookCreate,
    BookRead,
    BookUpdate,
    ReservationRead,
)


def _book(row: Mapping[Any, Any]) -> BookRead:
    """A BookRead from a row of repository.BOOK_COLUMNS."""
    return BookRead.model_validate(row)


def _book_not_found(book_id: int) -> NotFoundError:
    return NotFoundError(f"Book {book_id} does not exist.")


def _duplicate_isbn(isbn: str) -> ConflictError:
    return ConflictError(f"A book with ISBN {isbn} already exists.")


async def get_book(read_book: batches.BookReader, book_id: int) -> BookRead:
    """The book with this id; NotFoundError otherwise."""
    row = await read_book(book_id)
    if row is None:
        raise _book_not_found(book_id)
    return _book(row)


_BOOK_FIELDS = tuple(BookRead.model_fields)


async def search_books(database: Database, request: search.SearchRequest) -> bytes:
    """A page of matching books (BookPage as JSON), the bounded total, the next cursor.

    Rendered straight from the rows, as pydantic renders a BookPage (prices as decimal
    strings, UTC times with Z): the rows come from the database's typed columns, and
    validating each book again cost more CPU than the search statement.
    """
    result = await search.search_books(database, request)
    rows = result.rows[: request.limit]
    next_cursor = None
    if len(result.rows) > request.limit:
        last = rows[-1]
        rank = float(last["rank"]) if request.sort == "relevance" else None
        position = cursors.Position(int(last["id"]), rank)
        next_cursor = cursors.encode_cursor(position, request.filters, request.sort)
    page = {
        "items": [{field: row[field] for field in _BOOK_FIELDS} for row in rows],
        "total": min(result.matches, request.count_limit),
        "total_exact": result.matches <= request.count_limit,
        "limit": request.limit,
        "offset": None if request.after is not None else request.offset,
        "next_cursor": next_cursor,
    }
    return orjson.dumps(page, default=_decimal_text, option=orjson.OPT_UTC_Z)


def _decimal_text(value: object) -> str:
    """JSON for what orjson leaves to us: a Decimal price, as pydantic writes it ("12.50")."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


async def create_book(session: AsyncSession, book: BookCreate) -> BookRead:
    """Add a book; ConflictError when its ISBN is already in the catalog."""
    try:
        row = await repository.insert_book(session, book.model_dump())
    except repository.DuplicateIsbnError:
        raise _duplicate_isbn(book.isbn) from None
    return _book(row)


async def update_book(session: AsyncSession, book_id: int, change: BookUpdate) -> BookRead:
    """Apply a change; NotFoundError for an unknown book, ConflictError for a taken ISBN."""
    values = change.changes()
    try:
        row = (
            await repository.update_book(session, book_id, values)
            if values
            else await repository.get_book(session, book_id)
        )
    except repository.DuplicateIsbnError:
        raise _duplicate_isbn(str(values.get("isbn"))) from None
    if row is None:
        raise _book_not_found(book_id)
    return _book(row)


async def delete_book(session: AsyncSession, book_id: int) -> None:
    """Remove a book; ConflictError while reservations still hold some of its copies."""
    try:
        deleted = await repository.delete_book(session, book_id)
    except repository.BookInUseError:
        raise ConflictError(
            f"Book {book_id} has active reservations; release them before deleting it."
        ) from None
    if not deleted:
        raise _book_not_found(book_id)


async def reserve(
    database: Database,
    reserve_stock: batches.StockReserver,
    book_id: int,
    quantity: int,
    reference: str | None = None,
) -> tuple[ReservationRead, bool]:
    """Take `quantity` copies atomically, once per reference: (reservation, replayed).

    ConflictError when fewer are in stock, or when the reference was released (a late
    retry must not take stock its caller has already given up on).
    """
    try:
        reserved = await reserve_stock(book_id, quantity, reference)
    except stock.DuplicateReferenceError:
        reserved = None
    if reserved is None and reference is not None:
        stored = await stock.find_reservation(database.engine, reference)
        if stored is not None:
            return _replay(stored, book_id, quantity), True
    if reserved is None:
        if await repository.read_book(database, book_id) is None:
            RESERVATIONS_REJECTED.labels("unknown_book").inc()
            raise _book_not_found(book_id)
        RESERVATIONS_REJECTED.labels("insufficient_stock").inc()
        raise ConflictError(f"Book {book_id} has fewer than {quantity} copies in stock.")
    reservation_id, unit_price = reserved
    RESERVATIONS_MADE.inc()
    reservation = ReservationRead(
        id=reservation_id, book_id=book_id, quantity=quantity, unit_price=unit_price
    )
    return reservation, False


def _replay(stored: stock.StoredReservation, book_id: int, quantity: int) -> ReservationRead:
    """The reservation a repeated reference names; errors when it cannot be handed out."""
    if stored.released:
        RESERVATIONS_REJECTED.labels("released").inc()
        raise ConflictError(
            "This reservation was released (its Idempotency-Key was given up on); "
            "no stock was taken. Use a new key."
        )
    if stored.book_id != book_id or stored.quantity != quantity or stored.unit_price is None:
        raise UnprocessableError(
            "This Idempotency-Key was already used for a different reservation; "
            "use a new key for a new reservation."
        )
    return ReservationRead(
        id=stored.id, book_id=book_id, quantity=quantity, unit_price=stored.unit_price
    )


async def release(database: Database, reservation_id: int) -> None:
    """Give a reservation's copies back, exactly once; NotFoundError when already gone."""
    if not await stock.release_reservation(database, reservation_id):
        raise NotFoundError(f"Reservation {reservation_id} does not exist.")
    RESERVATIONS_RELEASED.inc()


async def release_by_reference(database: Database, reference: str) -> None:
    """Give back the stock held under `reference` (idempotent; tombstones the reference)."""
    if await stock.release_by_reference(database, reference):
        RESERVATIONS_RELEASED.inc()


async def purge_released(engine: AsyncEngine, retention: timedelta) -> int:
    """Forget reservations released longer than `retention` ago, batch by batch."""
    cutoff = datetime.now(UTC) - retention
    purged = 0
    while (batch := await stock.purge_released_before(engine, cutoff)) > 0:
        purged += batch
    return purged
