"""How the place-order saga's failures become answers: catalog's and the database's."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from bookstore_common.problems import (
    BadGatewayError,
    ConflictError,
    DomainError,
    ProblemResponse,
    UnavailableError,
    UnprocessableError,
    problem_response,
)

from bookstore_orders.catalog_client import (
    BookNotFoundError,
    CatalogError,
    CatalogRejectedError,
    CatalogUnavailableError,
    InsufficientStockError,
    ReservationReleasedError,
)
from bookstore_orders.metrics import ORDERS_REJECTED


class UnknownBookError(UnprocessableError):
    """An order names books catalog does not have; 422 naming each offending field."""

    def __init__(self, lines: Sequence[tuple[int, int]]) -> None:
        books = ", ".join(str(book_id) for _, book_id in lines)
        super().__init__(f"No such book in the catalog: {books}.")
        self.lines = lines

    def to_response(self) -> ProblemResponse:
        """Problem with an `errors` entry per unknown book_id, like schema validation."""
        errors = [
            {
                "loc": ["body", "items", index, "book_id"],
                "msg": f"book {book_id} does not exist",
                "type": "unknown_book",
            }
            for index, book_id in self.lines
        ]
        return problem_response(self.status, self.detail, errors=errors)


# SQLSTATE classes meaning "cannot serve now": connection exception, insufficient
# resources (e.g. too many clients), operator intervention (e.g. shutting down).
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})


def database_unavailable(exc: BaseException) -> bool:
    """Whether a failure means the database could not serve us (503), not a bug (500)."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError | OSError):  # pool wait, refused socket
        return True
    if isinstance(exc, asyncpg.InterfaceError):  # the raw pool's connection is gone
        return True
    if isinstance(exc, asyncpg.PostgresError):  # the raw pool: the server's own answer
        return str(exc.sqlstate)[:2] in _UNAVAILABLE_SQLSTATE_CLASSES
    if not isinstance(exc, sqlalchemy.exc.DBAPIError):
        return False
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if exc.connection_invalidated or sqlstate is None:
        return True  # no answer from the server at all
    return str(sqlstate)[:2] in _UNAVAILABLE_SQLSTATE_CLASSES


def rejection(failures: Sequence[tuple[int, CatalogError]]) -> DomainError:
    """The one answer for a failed reservation round; a passing outage wins (retryable)."""
    errors = [failure for _, failure in failures]
    if any(isinstance(e, ReservationReleasedError) for e in errors):
        return given_up()
    unavailable = [e for e in errors if isinstance(e, CatalogUnavailableError)]
    if unavailable:
        ORDERS_REJECTED.labels("catalog_unavailable").inc()
        return UnavailableError(
            f"{unavailable[0].detail}; no order was placed and no stock is held.",
            retry_after=max(e.retry_after for e in unavailable),
        )
    rejected = [e for e in errors if isinstance(e, CatalogRejectedError)]
    if rejected:
        ORDERS_REJECTED.labels("error").inc()
        return BadGatewayError(f"Catalog refused the reservation: {rejected[0]}.")
    unknown = [(i, e.book_id) for i, e in failures if isinstance(e, BookNotFoundError)]
    if unknown:
        ORDERS_REJECTED.labels("unknown_book").inc()
        return UnknownBookError(unknown)
    short = [e for e in errors if isinstance(e, InsufficientStockError)]
    ORDERS_REJECTED.labels("out_of_stock").inc()
    books = ", ".join(f"book {e.book_id} (asked {e.quantity})" for e in short)
    return ConflictError(f"Not enough copies in stock for {books}; no order was placed.")


def given_up() -> UnavailableError:
    """The answer when the sweeper gave the order up (it took too long) before it confirmed."""
    ORDERS_REJECTED.labels("given_up").inc()
    return UnavailableError(
        "Placing the order took too long and it was given up; no order was placed and no "
        "stock is held. Retry.",
        retry_after=1,
    )


def cancel_failure(order_id: int, failures: Sequence[BaseException]) -> BaseException:
    """The answer when catalog could not release an order's reservations."""
    for failure in failures:
        if not isinstance(failure, CatalogError):
            return failure
    unavailable = [f for f in failures if isinstance(f, CatalogUnavailableError)]
    if unavailable:
        return UnavailableError(
            f"Catalog is unavailable; order {order_id} stays confirmed, retry the cancel.",
            retry_after=max(f.retry_after for f in unavailable),
        )
    return BadGatewayError(f"Catalog refused to release order {order_id}'s stock: {failures[0]}.")
