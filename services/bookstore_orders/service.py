"""Business rules of orders: the place-order saga, idempotent replays and cancellation.

Placing an order first records the intent (the order row, `pending`, one autocommitted
INSERT), then reserves every line at catalog under a reference derived from the order id,
then confirms the order with its lines in one statement. Any failure after the intent
releases every line by reference (see compensation.py) and marks the order failed; if
the process dies instead, the sweeper does it. So no stock is held without an order and
no confirmed order lacks its stock. The saga owns its transactions, so it uses the
sessionmaker; without an Idempotency-Key its two statements run on the raw asyncpg pool
when there is one (PostgreSQL), each autocommitted as on the engine, and batched: orders
that arrive while one INSERT (or confirm) is in flight share the next statement, one round
trip and one commit for all of them (bookstore_common.batching).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import orjson
from bookstore_common.batching import Batcher
from bookstore_common.problems import (
    ConflictError,
    DomainError,
    NotFoundError,
    UnavailableError,
    UnprocessableError,
)
from bookstore_common.rawpool import Database
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from bookstore_orders import repository
from bookstore_orders.catalog_client import (
    CatalogClient,
    CatalogError,
    CatalogUnavailableError,
    Reservation,
)
from bookstore_orders.compensation import (
    OrderCompensator,
    new_reservation_token,
    reservation_reference,
)
from bookstore_orders.errors import (
    cancel_failure,
    database_unavailable,
    given_up,
    rejection,
)
from bookstore_orders.metrics import ORDERS_CANCELLED, ORDERS_PLACED, ORDERS_REJECTED
from bookstore_orders.models import OrderStatus, utcnow
from bookstore_orders.schemas import (
    OrderCreate,
    OrderItemCreate,
    OrderItemRead,
    OrderPage,
    OrderRead,
)

log = logging.getLogger(__name__)

IDEMPOTENCY_SCOPE = "POST /orders"
# Outcomes that will never change on a retry, so a retry with the same key replays them.
_FINAL_ERROR_STATUSES = frozenset({404, 409, 422})
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    """The HTTP outcome of POST /orders, as first answered or replayed for its key."""

    status: int
    body: bytes
    order_id: int | None = None
    replayed: bool = False


def _worth_running_alone(exc: Exception) -> bool:
    """A failed batch's orders are retried one by one unless the database is down."""
    return not database_unavailable(exc)


def request_fingerprint(order: OrderCreate) -> str:
    """A digest of the validated request, to spot a key reused for a different order."""
    return hashlib.sha256(order.model_dump_json().encode()).hexdigest()


class OrdersService:
    """Places, cancels and reads orders; raises domain errors rendered as problem+json."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalog: CatalogClient,
        compensator: OrderCompensator,
        idempotency_lease: float = 60.0,
        database: Database | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._catalog = catalog
        self._compensator = compensator
        # PostgreSQL runs single-statement writes autocommitted (no BEGIN/COMMIT trips).
        engine: AsyncEngine = sessionmaker.kw["bind"]
        self._engine = engine
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._one_statement = engine.dialect.name == "postgresql"
        self._lease = timedelta(seconds=idempotency_lease)
        self._pending_inserts: Batcher[dict[str, Any], int] | None = None
        self._confirms: Batcher[repository.Confirmation, bool] | None = None
        if database is not None and database.pool is not None:
            self._pending_inserts = Batcher(
                partial(repository.insert_pending_orders_raw, database),
                split_on=_worth_running_alone,
            )
            self._confirms = Batcher(
                partial(repository.confirm_orders_raw, database), split_on=_worth_running_alone
            )

    async def place_order(self, order: OrderCreate, idempotency_key: str | None) -> PlacedOrder:
        """Place an order once per Idempotency-Key; a retry gets the first answer back."""
        if idempotency_key is None:
            return await self._place(order, None)
        replay = await self._claim(idempotency_key, request_fingerprint(order))
        if replay is not None:
            return replay
        try:
            return await self._place(order, idempotency_key)
        except DomainError as exc:
            if exc.status in _FINAL_ERROR_STATUSES:
                await asyncio.shield(self._settle(self._remember(idempotency_key, exc)))
            else:
                await asyncio.shield(self._settle(self._forget(idempotency_key)))
            raise
        except BaseException:
            await asyncio.shield(self._settle(self._forget(idempotency_key)))
            raise

    async def cancel_order(self, order_id: int) -> OrderRead:
        """Release every reservation at catalog, then mark the order cancelled.

        Releasing is idempotent at catalog, so when catalog fails midway the order stays
        confirmed (503) and a retried cancel finishes the job without double-counting.
        """
        async with self._sessionmaker() as session:
            order = await repository.get_order(session, order_id)
        if order is None:
            raise NotFoundError(f"Order {order_id} does not exist.")
        if order.status != OrderStatus.CONFIRMED:
            raise ConflictError(f"Order {order_id} is already {order.status}.")
        results = await asyncio.gather(
            *(self._catalog.release(item.reservation_id) for item in order.items),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise cancel_failure(order_id, failures)
        try:
            async with self._sessionmaker.begin() as session:
                cancelled = await repository.mark_cancelled(session, order_id)
        except Exception as exc:
            if not database_unavailable(exc):
                raise
            raise UnavailableError(
                f"The orders database is unavailable; retry the cancel of order {order_id} "
                "(its stock is already back at catalog; a retry completes it).",
                retry_after=1,
            ) from exc
        if not cancelled:
            raise ConflictError(f"Order {order_id} is already cancelled.")
        ORDERS_CANCELLED.inc()
        order.status = OrderStatus.CANCELLED.value
        return OrderRead.from_order(order)

    async def purge_idempotency_keys(self, retention: timedelta) -> int:
        """Forget Idempotency-Keys older than `retention`, so the table does not grow forever."""
        async with self._sessionmaker.begin() as session:
            return await repository.delete_idempotency_keys_before(session, utcnow() - retention)

    async def get_order(self, session: AsyncSession, order_id: int) -> OrderRead:
        """One order, or 404."""
        order = await repository.get_order(session, order_id)
        if order is None:
            raise NotFoundError(f"Order {order_id} does not exist.")
        return OrderRead.from_order(order)

    async def list_orders(
        self,
        session: AsyncSession,
        *,
        status: OrderStatus | None,
        email: str | None,
        limit: int,
        offset: int,
    ) -> OrderPage:
        """A page of orders (newest first) with the total matching the filters."""
        orders, total = await repository.list_orders(
            session, status=status, email=email, limit=limit, offset=offset
        )
        items = [OrderRead.from_order(order) for order in orders]
        return OrderPage(items=items, total=total, limit=limit, offset=offset)

    async def _place(self, order: OrderCreate, idempotency_key: str | None) -> PlacedOrder:
        """The saga: record the intent, reserve every line by reference, confirm."""
        token = new_reservation_token()
        order_id, created_at = await self._record_intent(order, token)
        try:
            reservations = await self._reserve_all(order_id, token, order.items)
            body = await self._confirm(order_id, order, reservations, created_at, idempotency_key)
        except BaseException:
            await asyncio.shield(self._compensator.fail_order(order_id, token, len(order.items)))
            raise
        ORDERS_PLACED.inc()
        return PlacedOrder(201, body, order_id)

    @asynccontextmanager
    async def _one_statement_connection(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection for one atomic statement: autocommitted on PostgreSQL (one
        round trip, no BEGIN/COMMIT, no ORM session), a committed transaction elsewhere."""
        if self._one_statement:
            async with self._autocommit.connect() as connection:
                yield connection
        else:
            async with self._engine.begin() as connection:
                yield connection

    async def _record_intent(self, order: OrderCreate, token: str) -> tuple[int, datetime]:
        """Write the order as pending, with the lines asked for, before any stock is taken:
        (order id, created at)."""
        created_at = utcnow()
        params: dict[str, Any] = {
            "customer_name": order.customer_name,
            "customer_email": order.customer_email,
            "line_count": len(order.items),
            "reservation_token": token,
            "requested_items": [
                {"book_id": item.book_id, "quantity": item.quantity} for item in order.items
            ],
            "created_at": created_at,
        }
        with _order_write_errors():
            if self._pending_inserts is not None:
                order_id = await self._pending_inserts.submit(params)
            else:
                async with self._one_statement_connection() as connection:
                    order_id = await repository.insert_pending_order(connection, **params)
        return order_id, created_at

    async def _confirm(
        self,
        order_id: int,
        order: OrderCreate,
        reservations: Sequence[Reservation],
        created_at: datetime,
        idempotency_key: str | None,
    ) -> bytes:
        """Confirm the pending order with its lines (and its key's response); the body."""
        total = sum((r.unit_price * r.quantity for r in reservations), Decimal("0.00"))
        items = [
            {
                "book_id": r.book_id,
                "quantity": r.quantity,
                "unit_price": r.unit_price,
                "reservation_id": r.id,
            }
            for r in reservations
        ]
        placed = OrderRead(
            id=order_id,
            status=OrderStatus.CONFIRMED,
            customer_name=order.customer_name,
            customer_email=order.customer_email,
            items=[OrderItemRead.model_validate(item) for item in items],
            total_price=total,
            created_at=created_at,
        )
        body = placed.model_dump_json().encode()
        with _order_write_errors():
            if idempotency_key is None and self._confirms is not None:
                confirmed = await self._confirms.submit(
                    repository.Confirmation(order_id, total, items)
                )
            elif idempotency_key is None:
                async with self._one_statement_connection() as connection:
                    confirmed = await repository.confirm_order(
                        connection, order_id, total_price=total, items=items
                    )
            else:
                async with self._sessionmaker.begin() as session:
                    confirmed = await repository.confirm_order(
                        session, order_id, total_price=total, items=items
                    )
                    if confirmed:
                        await repository.store_idempotent_response(
                            session, IDEMPOTENCY_SCOPE, idempotency_key, 201, body.decode()
                        )
        if not confirmed:
            raise given_up()
        return body

    async def _reserve_all(
        self, order_id: int, token: str, items: Sequence[OrderItemCreate]
    ) -> list[Reservation]:
        """Reserve all lines concurrently, each under its own reference."""
        results = await asyncio.gather(
            *(
                self._catalog.reserve(
                    item.book_id, item.quantity, reservation_reference(order_id, token, line)
                )
                for line, item in enumerate(items)
            ),
            return_exceptions=True,
        )
        reservations = [result for result in results if isinstance(result, Reservation)]
        failures = [(i, r) for i, r in enumerate(results) if isinstance(r, BaseException)]
        if not failures:
            return reservations
        for _, failure in failures:
            if not isinstance(failure, CatalogError):
                raise failure
        if not reservations and all(_never_reached(f) for _, f in failures):
            # catalog holds nothing of this order, not even later: no release needed
            await asyncio.shield(self._compensator.mark_failed(order_id))
        raise rejection([(i, f) for i, f in failures if isinstance(f, CatalogError)])

    async def _claim(self, key: str, fingerprint: str) -> PlacedOrder | None:
        """Own the key (None) or return what to answer instead: a replay or an error."""
        for _ in range(_CLAIM_ATTEMPTS):
            async with self._sessionmaker.begin() as session:
                if await repository.claim_idempotency_key(
                    session, IDEMPOTENCY_SCOPE, key, fingerprint
                ):
                    return None
                stored = await repository.get_idempotency_key(session, IDEMPOTENCY_SCOPE, key)
                if stored is None:
                    continue  # its first request failed and let go of it meanwhile
                if stored.request_hash != fingerprint:
                    raise UnprocessableError(
                        "This Idempotency-Key was already used for a different order; "
                        "use a new key for a new order."
                    )
                if stored.response_status is not None and stored.response_body is not None:
                    return _replay(stored.response_status, stored.response_body)
                if await repository.take_over_stale_claim(
                    session, IDEMPOTENCY_SCOPE, key, fingerprint, utcnow() - self._lease
                ):
                    return None
            raise ConflictError(
                "A request with this Idempotency-Key is still in progress; retry shortly.",
                headers={"Retry-After": "1"},
            )
        raise ConflictError(
            "This Idempotency-Key is busy; retry shortly.", headers={"Retry-After": "1"}
        )

    @staticmethod
    async def _settle(step: Awaitable[None]) -> None:
        """Finish a key's bookkeeping without hiding the request's own error.

        When it fails (database gone), the claim lapses after the lease and is taken over.
        """
        try:
            await step
        except Exception:
            log.exception("could not record the outcome of an Idempotency-Key request")

    async def _remember(self, key: str, error: DomainError) -> None:
        """Store a final error so retries with the key get the same answer."""
        response = error.to_response()
        async with self._sessionmaker.begin() as session:
            await repository.store_idempotent_response(
                session, IDEMPOTENCY_SCOPE, key, response.status_code, bytes(response.body).decode()
            )

    async def _forget(self, key: str) -> None:
        """Let go of a claim whose request failed for a passing reason (a retry may work)."""
        async with self._sessionmaker.begin() as session:
            await repository.release_idempotency_key(session, IDEMPOTENCY_SCOPE, key)


def _never_reached(failure: BaseException) -> bool:
    """Whether a reservation call surely never reached catalog (refused, circuit open)."""
    return isinstance(failure, CatalogUnavailableError) and not failure.reached


def _replay(status: int, body: str) -> PlacedOrder:
    """A stored answer; a 201 also names its order for the Location header."""
    order_id = orjson.loads(body)["id"] if status == 201 else None
    return PlacedOrder(status, body.encode(), order_id, replayed=True)


@contextmanager
def _order_write_errors() -> Iterator[None]:
    """Count a failed order write; a database outage becomes a 503 the client may retry."""
    try:
        yield
    except Exception as exc:
        ORDERS_REJECTED.labels("error").inc()
        if database_unavailable(exc):
            raise UnavailableError(
                "The orders database is unavailable; no order was placed and no stock is held.",
                retry_after=1,
            ) from exc
        raise
