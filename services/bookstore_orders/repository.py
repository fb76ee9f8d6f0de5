"""Every SQL statement of the orders service.

The place-order saga's two statements (the pending INSERT, the confirm) also run on the
raw asyncpg pool when there is one (PostgreSQL), as batch statements that serve many
orders at once (their rows as parallel arrays).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import orjson
from bookstore_common.rawpool import Database, RawStatement
from sqlalchemy import Table, and_, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from bookstore_orders.models import (
    PLACED_STATUSES,
    IdempotencyKey,
    Order,
    OrderItem,
    OrderStatus,
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
    """A page of orders, newest first (id breaks no ties: it is unique), and the total.

    Without a status, only orders a customer placed (PLACED_STATUSES): refused (failed)
    and in-flight (pending) attempts are listed only when asked for by status.
    """
    conditions = []
    if status is not None:
        conditions.append(Order.status == status.value)
    else:
        conditions.append(Order.status.in_([placed.value for placed in PLACED_STATUSES]))
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


# Built once: it runs on every order (no per-call statement building or cache keying).
_INSERT_PENDING = (
    insert(ORDERS)
    .values(
        status=OrderStatus.PENDING.value,
        customer_name=bindparam("customer_name"),
        customer_email=bindparam("customer_email"),
        total_price=Decimal("0.00"),
        line_count=bindparam("line_count"),
        reservation_token=bindparam("reservation_token"),
        requested_items=bindparam("requested_items"),
        created_at=bindparam("created_at"),
        updated_at=bindparam("created_at"),
    )
    .returning(ORDERS.c.id)
)


def _dialect_name(db: AsyncConnection | AsyncSession) -> str:
    """The database kind behind a Core connection or an ORM session."""
    return db.dialect.name if isinstance(db, AsyncConnection) else db.get_bind().dialect.name


async def insert_pending_order(
    db: AsyncConnection | AsyncSession,
    *,
    customer_name: str,
    customer_email: str,
    line_count: int,
    reservation_token: str,
    requested_items: list[dict[str, int]],
    created_at: datetime,
) -> int:
    """Record the intent to place an order (status pending, its lines as requested, none
    priced or held yet); return its id."""
    order_id = await db.scalar(
        _INSERT_PENDING,
        {
            "customer_name": customer_name,
            "customer_email": customer_email,
            "line_count": line_count,
            "reservation_token": reservation_token,
            "requested_items": requested_items,
            "created_at": created_at,
        },
    )
    assert order_id is not None
    return int(order_id)


# The raw pool's pending INSERT serves many orders at once (see bookstore_common.batching):
# one statement, one commit; each order's id comes back with its unique random token.
_INSERT_PENDING_BATCH = RawStatement.compile(
    text(
        """
        INSERT INTO orders (status, customer_name, customer_email, total_price, line_count,
            reservation_token, requested_items, created_at, updated_at)
        SELECT :pending, r.customer_name, r.customer_email, 0, r.line_count,
            r.reservation_token, r.requested_items, r.created_at, r.created_at
        FROM unnest(
            CAST(:customer_names AS varchar[]), CAST(:customer_emails AS varchar[]),
            CAST(:line_counts AS integer[]), CAST(:tokens AS varchar[]),
            CAST(:requested_items AS json[]), CAST(:created_ats AS timestamptz[])
        ) WITH ORDINALITY AS r (customer_name, customer_email, line_count, reservation_token,
            requested_items, created_at, position)
        ORDER BY r.position
        RETURNING id, reservation_token
        """
    )
)


async def insert_pending_orders_raw(
    database: Database, orders: Sequence[dict[str, Any]]
) -> list[int]:
    """insert_pending_order for many orders in one statement (`orders`: its keyword
    arguments each); their ids, in order. Tokens must differ (they map ids back)."""
    tokens = [order["reservation_token"] for order in orders]
    if len(set(tokens)) != len(tokens):
        raise ValueError("two pending orders of one batch share a reservation token")
    params = {
        "pending": OrderStatus.PENDING.value,
        "customer_names": [order["customer_name"] for order in orders],
        "customer_emails": [order["customer_email"] for order in orders],
        "line_counts": [order["line_count"] for order in orders],
        "tokens": tokens,
        "requested_items": [orjson.dumps(order["requested_items"]).decode() for order in orders],
        "created_ats": [order["created_at"] for order in orders],
    }
    async with database.connection() as connection:
        rows = await connection.fetch(
            _INSERT_PENDING_BATCH.sql, *_INSERT_PENDING_BATCH.arguments(params)
        )
    ids = {row["reservation_token"]: row["id"] for row in rows}
    return [int(ids[token]) for token in tokens]


# Pending -> confirmed with the lines, for one order or many, in ONE statement: atomic on
# its own (no BEGIN/COMMIT needed); each order flips only if still pending (a sweeper may
# have failed it), and only the flipped orders get their lines (which replace the
# requested ones).
_CONFIRM = text(
    """
    WITH confirmed AS (
        UPDATE orders SET status = :confirmed, total_price = batch.total_price,
            requested_items = NULL, updated_at = :updated_at
        FROM unnest(CAST(:order_ids AS integer[]), CAST(:totals AS numeric[]))
            AS batch (order_id, total_price)
        WHERE orders.id = batch.order_id AND orders.status = :pending
        RETURNING orders.id
    )
    INSERT INTO order_items (order_id, book_id, quantity, unit_price, reservation_id)
    SELECT line.order_id, line.book_id, line.quantity, line.unit_price, line.reservation_id
    FROM unnest(
        CAST(:line_orders AS integer[]), CAST(:book_ids AS integer[]),
        CAST(:quantities AS integer[]), CAST(:unit_prices AS numeric[]),
        CAST(:reservation_ids AS varchar[])
    ) WITH ORDINALITY AS line (order_id, book_id, quantity, unit_price, reservation_id,
        position)
    WHERE line.order_id IN (SELECT id FROM confirmed)
    ORDER BY line.position
    RETURNING order_id
    """
)
_CONFIRM_RAW = RawStatement.compile(_CONFIRM)


@dataclass(frozen=True, slots=True)
class Confirmation:
    """One order to confirm: its id, total and lines (book_id, quantity, unit_price,
    reservation_id each)."""

    order_id: int
    total_price: Decimal
    items: Sequence[dict[str, Any]]


def _confirm_params(confirmations: Sequence[Confirmation]) -> dict[str, Any]:
    """_CONFIRM's parameters: the orders and their lines as parallel arrays."""
    lines = [(c.order_id, item) for c in confirmations for item in c.items]
    return {
        "confirmed": OrderStatus.CONFIRMED.value,
        "pending": OrderStatus.PENDING.value,
        "updated_at": utcnow(),
        "order_ids": [c.order_id for c in confirmations],
        "totals": [c.total_price for c in confirmations],
        "line_orders": [order_id for order_id, _ in lines],
        "book_ids": [item["book_id"] for _, item in lines],
        "quantities": [item["quantity"] for _, item in lines],
        "unit_prices": [item["unit_price"] for _, item in lines],
        "reservation_ids": [item["reservation_id"] for _, item in lines],
    }


async def confirm_orders_raw(
    database: Database, confirmations: Sequence[Confirmation]
) -> list[bool]:
    """confirm_order for many orders in one statement: per order, False when not pending."""
    params = _confirm_params(confirmations)
    async with database.connection() as connection:
        rows = await connection.fetch(_CONFIRM_RAW.sql, *_CONFIRM_RAW.arguments(params))
    confirmed = {row["order_id"] for row in rows}
    return [c.order_id in confirmed for c in confirmations]


async def confirm_order(
    db: AsyncConnection | AsyncSession,
    order_id: int,
    *,
    total_price: Decimal,
    items: Sequence[dict[str, Any]],
) -> bool:
    """Flip a pending order to confirmed with its lines; False when it was not pending."""
    if _dialect_name(db) == "postgresql":
        confirmation = Confirmation(order_id, total_price, items)
        result = await db.execute(_CONFIRM, _confirm_params([confirmation]))
        return result.first() is not None
    confirmed = await db.execute(
        update(ORDERS)
        .where(ORDERS.c.id == order_id, ORDERS.c.status == OrderStatus.PENDING.value)
        .values(
            status=OrderStatus.CONFIRMED.value,
            total_price=total_price,
            requested_items=None,
            updated_at=utcnow(),
        )
    )
    if not confirmed.rowcount:  # type: ignore[attr-defined]
        return False
    await db.execute(insert(ORDER_ITEMS), [{"order_id": order_id, **item} for item in items])
    return True


async def lock_pending_order(session: AsyncSession, order_id: int) -> bool:
    """Lock the order if it is still pending (a confirm then waits); False otherwise."""
    locked = await session.scalar(
        select(Order.id)
        .where(Order.id == order_id, Order.status == OrderStatus.PENDING.value)
        .with_for_update()
    )
    return locked is not None


async def mark_failed(session: AsyncSession, order_ids: Sequence[int]) -> None:
    """Mark pending orders failed (their reservations are given back)."""
    await session.execute(
        update(Order)
        .where(Order.id.in_(order_ids), Order.status == OrderStatus.PENDING.value)
        .values(status=OrderStatus.FAILED.value, updated_at=utcnow())
    )


async def lock_stale_pending_orders(
    session: AsyncSession, created_before: datetime, limit: int
) -> list[tuple[int, str, int]]:
    """(id, token, line count) of the oldest orders pending since before `created_before`,
    locked so other workers and replicas skip them (SKIP LOCKED) and a late confirm waits."""
    result = await session.execute(
        select(Order.id, Order.reservation_token, Order.line_count)
        .where(Order.status == OrderStatus.PENDING.value, Order.created_at < created_before)
        .order_by(Order.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [(int(row.id), row.reservation_token, int(row.line_count)) for row in result]
