"""HTTP routes of the catalog: validate, call the service, declare the response."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from bookstore_common.db import SessionDep
from bookstore_common.problems import PROBLEM_CONTENT_TYPE
from bookstore_common.query_models import query_parameters, read_query
from bookstore_common.rawpool import database_of
from bookstore_common.security import ApiKeyDep
from fastapi import APIRouter, Header, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field

from bookstore_catalog import service
from bookstore_catalog.config import CatalogSettings
from bookstore_catalog.cursors import CURSOR_MAX_LENGTH, InvalidCursorError, Sort, decode_cursor
from bookstore_catalog.models import REFERENCE_MAX
from bookstore_catalog.schemas import (
    PRICE_MAX,
    BookCreate,
    BookFilters,
    BookPage,
    BookRead,
    BookUpdate,
    ReservationCreate,
    ReservationRead,
    StorableText,
)
from bookstore_catalog.search import SearchRequest

INT32_MAX = 2_147_483_647

BookId = Annotated[int, Path(ge=1, le=INT32_MAX, description="book id")]
ReservationId = Annotated[int, Path(ge=1, le=INT32_MAX, description="reservation id")]
Reference = Annotated[
    str,
    Path(
        min_length=1,
        max_length=REFERENCE_MAX,
        pattern=r"^[\x21-\x7e]+$",
        description="the Idempotency-Key the reservation was made with",
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=REFERENCE_MAX,
        pattern=r"^[\x21-\x7e]+$",
        description="A retry with the same key returns the same reservation, never takes "
        "stock twice; after the key was released the answer is 409.",
    ),
]
SEARCH_TEXT_MAX = 300


def _problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI declarations of the problem+json answers an operation can give."""
    return {code: {"content": {PROBLEM_CONTENT_TYPE: {}}} for code in (422, *codes)}


router = APIRouter(tags=["catalog"])
writes = APIRouter(tags=["catalog"], dependencies=[ApiKeyDep])


def _invalid_query(field: str, message: str) -> RequestValidationError:
    """A 422 naming one query parameter, as FastAPI's own validation gives."""
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error"}]
    )


class BookQuery(BaseModel):
    """The query parameters of `GET /books` (read by `read_query`, see
    bookstore_common.query_models: one validation instead of eleven)."""

    model_config = ConfigDict(extra="ignore")

    sort: Sort = Field(
        "id", description="`id` (stable, the default) or `relevance` (needs `q`; then by id)"
    )
    limit: int = Field(20, ge=1, le=100)
    offset: int | None = Field(
        None, ge=0, le=INT32_MAX, description="books to skip (not with `cursor`)"
    )
    cursor: str | None = Field(
        None,
        max_length=CURSOR_MAX_LENGTH,
        description="the `next_cursor` of the previous page, with the same filters and sort",
    )
    q: StorableText | None = Field(
        None,
        max_length=SEARCH_TEXT_MAX,
        description="full-text search of title, author and description (English stemming; "
        'web search syntax: "a phrase", -word, or), or part of an ISBN',
    )
    title: StorableText | None = Field(
        None, max_length=SEARCH_TEXT_MAX, description="part of the title (any case)"
    )
    author: StorableText | None = Field(
        None, max_length=SEARCH_TEXT_MAX, description="part of the author (any case)"
    )
    isbn: StorableText | None = Field(None, max_length=20)
    min_price: Decimal | None = Field(None, ge=0, le=PRICE_MAX)
    max_price: Decimal | None = Field(None, ge=0, le=PRICE_MAX)
    in_stock: bool | None = None


@router.get(
    "/books",
    response_model=BookPage,
    responses=_problems(),
    openapi_extra={"parameters": query_parameters(BookQuery)},
)
async def list_books(request: Request) -> Response:
    """Search books; pages by `cursor` (any depth, constant cost) or `limit`/`offset`.

    `total` is exact up to SEARCH_COUNT_LIMIT matches; past it, it is that limit and
    `total_exact` is false.
    """
    query = read_query(BookQuery, request)
    # Validated by BookQuery; BookFilters holds its filters as they are.
    filters = BookFilters.model_construct(
        **{name: getattr(query, name) for name in BookFilters.model_fields}
    )
    if query.sort == "relevance" and not filters.q:
        raise _invalid_query("sort", "sort=relevance ranks matches of q: give q, or sort=id")
    after = None
    if query.cursor is not None:
        if query.offset is not None:
            raise _invalid_query("cursor", "give cursor or offset, not both")
        try:
            after = decode_cursor(query.cursor, filters, query.sort)
        except InvalidCursorError as error:
            raise _invalid_query("cursor", f"cursor {error}") from None
    settings: CatalogSettings = request.app.state.settings
    search_request = SearchRequest(
        filters=filters,
        sort=query.sort,
        limit=query.limit,
        offset=query.offset or 0,
        after=after,
        count_limit=settings.search_count_limit,
    )
    page = await service.search_books(database_of(request), search_request)
    return Response(page, media_type="application/json")  # rendered by the service


@router.get("/books/{book_id}", responses=_problems(404))
async def get_book(request: Request, book_id: BookId) -> BookRead:
    """One book."""
    return await service.get_book(request.app.state.book_reader, book_id)


@writes.post("/books", status_code=status.HTTP_201_CREATED, responses=_problems(400, 401, 409, 415))
async def create_book(
    session: SessionDep, book: BookCreate, request: Request, response: Response
) -> BookRead:
    """Add a book (ISBN checked and unique); `Location` names the new book."""
    created = await service.create_book(session, book)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{created.id}"
    return created


@writes.put("/books/{book_id}", responses=_problems(400, 401, 404, 409, 415))
async def update_book(session: SessionDep, book_id: BookId, change: BookUpdate) -> BookRead:
    """Change a book: the fields sent replace the stored ones."""
    return await service.update_book(session, book_id, change)


@writes.delete(
    "/books/{book_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_problems(401, 404, 409)
)
async def delete_book(session: SessionDep, book_id: BookId) -> None:
    """Remove a book; 409 while reservations still hold some of its copies."""
    await service.delete_book(session, book_id)


@writes.post(
    "/books/{book_id}/reservations",
    status_code=status.HTTP_201_CREATED,
    responses=_problems(400, 401, 404, 409, 415),
)
async def reserve(
    request: Request,
    book_id: BookId,
    reservation: ReservationCreate,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> ReservationRead:
    """Take copies out of stock atomically; 409 when not enough are left.

    With an `Idempotency-Key`, a repeat answers 201 with the same reservation and
    `Idempotent-Replayed: true`; once that key was released, 409.
    """
    reserved, replayed = await service.reserve(
        database_of(request),
        request.app.state.stock_reserver,
        book_id,
        reservation.quantity,
        idempotency_key,
    )
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return reserved


@writes.delete(
    "/reservations/by-reference/{reference:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_problems(401),
)
async def release_by_reference(request: Request, reference: Reference) -> None:
    """Give back the reservation made with this Idempotency-Key; always 204 (idempotent).

    When none was made yet, a tombstone is kept so a late POST with the key takes nothing.
    """
    await service.release_by_reference(database_of(request), reference)


@writes.delete(
    "/reservations/{reservation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=_problems(401, 404),
)
async def release(request: Request, reservation_id: ReservationId) -> None:
    """Give a reservation's copies back (exactly once; a second call is 404)."""
    await service.release(database_of(request), reservation_id)


router.include_router(writes)
