"""Request and response models of the catalog API (pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from bookstore_catalog.isbn import normalize_isbn
from bookstore_catalog.models import AUTHOR_MAX, DESCRIPTION_MAX, QUANTITY_MAX, TITLE_MAX

PRICE_MAX = Decimal("99999999.99")


def storable_text(value: str) -> str:
    """Reject text PostgreSQL cannot store: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid UTF-8 text") from exc
    return value


StorableText = Annotated[str, AfterValidator(storable_text)]
Title = Annotated[StorableText, Field(min_length=1, max_length=TITLE_MAX)]
Author = Annotated[StorableText, Field(min_length=1, max_length=AUTHOR_MAX)]
Description = Annotated[StorableText, Field(max_length=DESCRIPTION_MAX)]
Isbn = Annotated[
    str,
    Field(
        min_length=10,
        max_length=20,
        description="ISBN-10 or ISBN-13; hyphens and spaces allowed, stored without them",
        examples=["978-0-13-235088-4"],
    ),
    AfterValidator(normalize_isbn),
]
Price = Annotated[
    Decimal,
    Field(gt=0, le=PRICE_MAX, max_digits=10, decimal_places=2, examples=["12.50"]),
]
Quantity = Annotated[int, Field(ge=0, le=QUANTITY_MAX, description="copies in stock")]


class _Input(BaseModel):
    """Input models strip surrounding whitespace and ignore unknown fields."""

    model_config = ConfigDict(str_strip_whitespace=True, extra="ignore")


class BookCreate(_Input):
    """A new book."""

    title: Title
    author: Author
    isbn: Isbn
    price: Price
    quantity: Quantity = 0
    description: Description = ""


class BookUpdate(_Input):
    """A change to a book: the fields given replace the stored ones (null is not allowed)."""

    title: Title | None = None
    author: Author | None = None
    isbn: Isbn | None = None
    price: Price | None = None
    quantity: Quantity | None = None
    description: Description | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        """A field that is present must have a value (omit it to keep the stored one)."""
        if value is None:
            raise ValueError("must not be null; omit the field to keep its value")
        return value

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, ready to write."""
        return self.model_dump(exclude_unset=True)


class BookRead(BaseModel):
    """A book as the API returns it; `price` is a decimal string with two places."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    author: str
    isbn: str
    price: Decimal
    quantity: int
    description: str
    created_at: datetime
    updated_at: datetime


class BookPage(BaseModel):
    """One page of a book search, with the number of matches (exact up to a bound)."""

    items: list[BookRead]
    total: int = Field(
        description="matches in all, counted up to SEARCH_COUNT_LIMIT; past it, the limit"
    )
    total_exact: bool = Field(
        description="false when `total` is the count limit: there are at least that many"
    )
    limit: int
    offset: int | None = Field(description="null when the page was asked for by `cursor`")
    next_cursor: str | None = Field(
        description="pass as `cursor` (with the same filters and sort) for the next page; "
        "null on the last page"
    )


class ReservationCreate(_Input):
    """How many copies to take from stock."""

    quantity: Annotated[int, Field(ge=1, le=QUANTITY_MAX)]


class ReservationRead(BaseModel):
    """A reservation; `unit_price` is the book's price when it was taken."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    book_id: int
    quantity: int
    unit_price: Decimal


class BookFilters(BaseModel):
    """Search criteria for `GET /books` (all optional, combined with AND)."""

    q: str | None = None
    title: str | None = None
    author: str | None = None
    isbn: str | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None
    in_stock: bool | None = None
