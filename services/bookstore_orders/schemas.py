"""Request and response bodies of the orders API (pydantic v2)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

from bookstore_orders.models import Order, OrderStatus

MAX_ITEMS = 50
MAX_QUANTITY = 1000
MAX_BOOK_ID = 2**31 - 1


def _printable(value: str) -> str:
    """Refuse control characters (PostgreSQL cannot even store NUL)."""
    if not value.isprintable():
        raise ValueError("must not contain control characters")
    return value


CustomerName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_printable),
]


class OrderItemCreate(BaseModel):
    """One order line as the client sends it; the price always comes from catalog."""

    model_config = ConfigDict(extra="forbid")

    book_id: int = Field(ge=1, le=MAX_BOOK_ID, description="Catalog id of the book.")
    quantity: int = Field(ge=1, le=MAX_QUANTITY, description="Copies to order.")


class OrderCreate(BaseModel):
    """A new order; unknown fields (such as a price) are rejected, not trusted."""

    model_config = ConfigDict(extra="forbid")

    customer_name: CustomerName
    customer_email: Annotated[EmailStr, Field(max_length=320)]
    items: list[OrderItemCreate] = Field(min_length=1, max_length=MAX_ITEMS)

    @field_validator("items")
    @classmethod
    def _one_line_per_book(cls, items: list[OrderItemCreate]) -> list[OrderItemCreate]:
        """Reject a book listed twice, so each line maps to exactly one reservation."""
        seen: set[int] = set()
        for item in items:
            if item.book_id in seen:
                raise ValueError(f"book {item.book_id} is listed more than once; list it once")
            seen.add(item.book_id)
        return items


class OrderItemRead(BaseModel):
    """One order line with the unit price catalog quoted when it was reserved."""

    model_config = ConfigDict(from_attributes=True)

    book_id: int
    quantity: int
    unit_price: Decimal | None = Field(
        description="Catalog's price when the line was reserved; null on a line that was "
        "never priced (a failed or pending order's lines, as the customer asked for them)."
    )


class OrderRead(BaseModel):
    """An order as the API returns it."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    status: OrderStatus
    customer_name: str
    customer_email: str
    items: list[OrderItemRead] = Field(
        description="A placed order's priced lines; a failed or pending order's lines as "
        "requested (unit_price null)."
    )
    total_price: Decimal = Field(description="The sum of the priced lines; 0.00 when none.")
    created_at: datetime

    @classmethod
    def from_order(cls, order: Order) -> OrderRead:
        """The API view of a stored order: its priced lines, or else the requested ones."""
        read = cls.model_validate(order)
        if not order.items and order.requested_items:
            read.items = [
                OrderItemRead(book_id=line["book_id"], quantity=line["quantity"], unit_price=None)
                for line in order.requested_items
            ]
        return read


class OrderPage(BaseModel):
    """One page of orders with the total count for pagination."""

    items: list[OrderRead]
    total: int
    limit: int
    offset: int
