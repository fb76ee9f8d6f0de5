"""Every SQL statement of the orders service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, and_, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bookstore_orders.models import (
    IdempotencyKey,
    Order,
    OrderItem,
    OrderStatus,
    PendingRelease,
    utcnow,
)

# Plain tables for the hot insert path (Core statements skip the ORM unit of work).
ORDERS = cast(Table, Order.__table__)
ORDER_ITEMS = cast(Table, OrderItem.__table__)


async def claim_idempotency_key(
    session: AsyncSession, scope: str, key: str, request_hash: str
) -> bool:
    """Insert the key unless it exists (ON CONFLICT DO NOTHING); True when we now own it."""
    dialect_insert = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    statement = (
        dialect_insert(IdempotencyKey)
        .values(scope=scope, key=key, request_hash=request_hash, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=["scope", "key"])
        .returning(IdempotencyKey.key)
    )
    return (await session.execute(statement)).first() is not None


async def get_idempotency_key(session: AsyncSession, scope: str, key: str) -> IdempotencyKey | None:
    """The stored claim or response for a key, if any."""
    return await session.get(IdempotencyKey, (scope, key), populate_existing=True)


async def take_over_stale_claim(
    session: AsyncSession, scope: str, key: str, request_hash: str, claimed_before: datetime
) -> bool:
    """Re-claim a key whose first request never finished (its process died); True if won."""
    statement = (
        update(IdempotencyKey)
        .where(
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
            IdempotencyKey.response_status.is_(None),
            IdempotencyKey.created_at < claimed_before,
        )
        .values(request_hash=request_hash, created_at=utcnow())
    )
    result = await session.execute(statement)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def store_idempotent_response(
    session: AsyncSession, scope: str, key: str, status: int, body: str
) -> None:
    """Record the response a key's retries will replay."""
    await session.execute(
        update(IdempotencyKey)
        .where(IdempotencyKey.scope == scope, IdempotencyKey.key == key)
        .values(response_status=status, response_body=body)
    )


async def release_idempotency_key(session: AsyncSession, scope: str, key: str) -> None:
    """Forget an unfinished claim so a retry runs the request again."""
    await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.scope == scope,
            IdempotencyKey.key == key,
            IdempotencyKey.response_status.is_(None),
        )
    )


async def delete_idempotency_keys_before(session: AsyncSession, cutoff: datetime) -> int:
    """Forget keys claimed before `cutoff` (past any sensible retry); return how many."""
    result = await session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < cutoff))
    return int(result.rowcount)  # type: ignore[attr-defined]


async def get_order(session: AsyncSession, order_id: int) -> Order | None:
    """One order with its items."""
    return await session.get(Order, order_id)


async def list_orders(
    session: AsyncSession,
    *,
    status: OrderStatus | None,
    email: str | None,
    limit: int,
    offset: int,
) -> tuple[Sequence[Order], int]:
    """A page of orders, newest first (id breaks no ties: it is unique), and the total."""
    conditions = []
    if status is not None:
        conditions.append(Order.status == status.value)
    if email is not None:
        conditions.append(Order.customer_email == email)
    where = and_(True, *conditions)
    total = await session.scalar(select(func.count()).select_from(Order).where(where))
    page = await session.scalars(
        select(Order).where(where).order_by(Order.id.desc()).limit(limit).offset(offset)
    )
    return page.all(), total or 0


async def mark_cancelled(session: AsyncSession, order_id: int) -> bool:
    """Flip a confirmed order to cancelled; False when it was not confirmed any more."""
    result = await session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == OrderStatus.CONFIRMED.value)
        .values(status=OrderStatus.CANCELLED.value, updated_at=utcnow())
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def insert_order(
    session: AsyncSession,
    *,
    customer_name: str,
    customer_email: str,
    total_price: Decimal,
    created_at: datetime,
    items: Sequence[dict[str, Any]],
) -> int:
    """Insert a confirmed order and its lines (two Core statements, no ORM); return its id."""
    order_id = await session.scalar(
        insert(ORDERS)
        .values(
            status=OrderStatus.CONFIRMED.value,
            customer_name=customer_name,
            customer_email=customer_email,
            total_price=total_price,
            created_at=created_at,
            updated_at=created_at,
        )
        .returning(ORDERS.c.id)
    )
    assert order_id is not None
    await session.execute(insert(ORDER_ITEMS), [{"order_id": order_id, **item} for item in items])
    return int(order_id)


# The order and its lines in ONE statement: atomic on its own, so it needs no BEGIN/COMMIT.
_INSERT_ORDER_WITH_LINES = text(
    """
    WITH new_order AS (
        INSERT INTO orders
            (status, customer_name, customer_email, total_price, created_at, updated_at)
        VALUES (:status, :customer_name, :customer_email, :total_price, :created_at, :created_at)
        RETURNING id
    )
    INSERT INTO order_items (order_id, book_id, quantity, unit_price, reservation_id)
    SELECT new_order.id, line.book_id, line.quantity, line.unit_price, line.reservation_id
    FROM new_order, unnest(
        CAST(:book_ids AS integer[]), CAST(:quantities AS integer[]),
        CAST(:unit_prices AS numeric[]), CAST(:reservation_ids AS varchar[])
    ) AS line (book_id, quantity, unit_price, reservation_id)
    RETURNING order_id
    """
)


async def insert_order_autocommit(
    session: AsyncSession,
    *,
    customer_name: str,
    customer_email: str,
    total_price: Decimal,
    created_at: datetime,
    items: Sequence[dict[str, Any]],
) -> int:
    """PostgreSQL hot path: one round trip, no transaction; return the new order's id."""
    await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    result = await session.execute(
        _INSERT_ORDER_WITH_LINES,
        {
            "status": OrderStatus.CONFIRMED.value,
            "customer_name": customer_name,
            "customer_email": customer_email,
            "total_price": total_price,
            "created_at": created_at,
            "book_ids": [item["book_id"] for item in items],
            "quantities": [item["quantity"] for item in items],
            "unit_prices": [item["unit_price"] for item in items],
            "reservation_ids": [item["reservation_id"] for item in items],
        },
    )
    order_id = result.scalars().first()  # one row per line, all with the same order id
    assert order_id is not None
    return int(order_id)


async def add_pending_releases(
    session: AsyncSession, reservation_ids: Sequence[str], error: str
) -> None:
    """Queue reservations to give back later (a reservation already queued stays once)."""
    dialect_insert = (
        postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    )
    rows = [
        {"reservation_id": rid, "last_error": error[:1000], "created_at": utcnow()}
        for rid in reservation_ids
    ]
    await session.execute(
        dialect_insert(PendingRelease).on_conflict_do_nothing(index_elements=["reservation_id"]),
        rows,
    )


async def lock_pending_releases(session: AsyncSession, limit: int) -> list[str]:
    """The oldest queued releases, locked so other workers skip them (SKIP LOCKED)."""
    result = await session.scalars(
        select(PendingRelease.reservation_id)
        .order_by(PendingRelease.created_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(result)


async def delete_pending_releases(session: AsyncSession, reservation_ids: Sequence[str]) -> None:
    """Forget queued releases that catalog has now taken back."""
    await session.execute(
        delete(PendingRelease).where(PendingRelease.reservation_id.in_(reservation_ids))
    )
