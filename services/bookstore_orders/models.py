"""SQLAlchemy tables of the orders service: orders, their lines, idempotency keys."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """Timezone-aware now, so SQLite and PostgreSQL rows compare alike."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base whose constraint names are stable across databases."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class OrderStatus(enum.StrEnum):
    """Lifecycle of an order: pending while its stock is reserved, then confirmed (until
    cancelled) or failed (every reservation given back)."""

    PENDING = "pending"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    FAILED = "failed"


# Orders a customer placed (POST /orders answered 201): what GET /orders lists by default.
# Pending orders are in flight or awaiting compensation, failed ones were refused.
PLACED_STATUSES = (OrderStatus.CONFIRMED, OrderStatus.CANCELLED)


class Order(Base):
    """A customer's order: written `pending` before any stock is reserved (the intent), so
    a sweeper can give back what a dead process reserved; confirmed with every line held.

    Until it is confirmed, `requested_items` holds the lines as asked (`book_id`,
    `quantity`), so a failed order keeps them for audit; the confirm replaces them with
    its priced `items` (order_items rows) and clears the column.

    Line `i`'s reservation at catalog is made under the reference
    `order-<id>-<reservation_token>-<i>` (the random token keeps references unique even if
    the orders database is ever recreated against the same catalog).
    """

    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_customer_email_id", "customer_email", "id"),
        Index("ix_orders_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=OrderStatus.CONFIRMED.value)
    customer_name: Mapped[str] = mapped_column(String(200))
    customer_email: Mapped[str] = mapped_column(String(320))
    total_price: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    line_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reservation_token: Mapped[str] = mapped_column(String(32), default="", server_default="")
    requested_items: Mapped[list[dict[str, int]] | None] = mapped_column(
        JSON(none_as_null=True), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", lazy="selectin", order_by="OrderItem.id"
    )


class OrderItem(Base):
    """One line of an order, with the catalog reservation that holds its stock."""

    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    book_id: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    reservation_id: Mapped[str] = mapped_column(String(64))
    order: Mapped[Order] = relationship(back_populates="items")


class IdempotencyKey(Base):
    """A claimed Idempotency-Key and, once finished, the response to replay for it."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
