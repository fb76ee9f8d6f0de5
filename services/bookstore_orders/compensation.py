"""Giving a failed order's stock back by reference, now or later from a sweeper.

An order is written `pending` before any stock is reserved, and line `i` is reserved at
catalog under the reference `order-<id>-<token>-<i>`. A failed order releases every line by
reference (idempotent; catalog tombstones a reference it never saw, so a reservation
still in flight cannot commit later) and is then marked failed. When catalog cannot take
the stock back now, or the process dies mid-order, the order stays pending; a sweeper in
every worker of every replica finds pending orders older than a grace period (SKIP LOCKED,
so each is handled once) and does the same.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bookstore_orders import repository
from bookstore_orders.catalog_client import CatalogClient, CatalogError
from bookstore_orders.metrics import ORDERS_LEFT_PENDING, ORDERS_SWEPT
from bookstore_orders.models import utcnow

log = logging.getLogger(__name__)


def new_reservation_token() -> str:
    """A random token that keeps an order's references unique across database resets."""
    return secrets.token_hex(8)


def reservation_reference(order_id: int, token: str, line: int) -> str:
    """The reference (catalog Idempotency-Key) of an order line's reservation."""
    return f"order-{order_id}-{token}-{line}"


class OrderCompensator:
    """Releases a failed order's lines by reference and marks it failed, now or swept."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalog: CatalogClient,
        batch_size: int = 20,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._catalog = catalog
        self._batch_size = batch_size

    async def fail_order(self, order_id: int, token: str, line_count: int) -> None:
        """Give every line back and mark the order failed, holding its row lock so a confirm
        that did commit (its answer lost) keeps its stock; else leave it to the sweeper."""
        try:
            async with self._sessionmaker.begin() as session:
                if not await repository.lock_pending_order(session, order_id):
                    return  # confirmed after all, or already swept
                if await self._release_lines(order_id, token, line_count):
                    await repository.mark_failed(session, [order_id])
                    return
        except Exception:
            log.exception("could not settle a failed order", extra={"order_id": order_id})
        ORDERS_LEFT_PENDING.inc()
        log.warning("failed order left pending for the sweeper", extra={"order_id": order_id})

    async def mark_failed(self, order_id: int) -> None:
        """Mark a pending order failed that catalog holds nothing of (the sweeper's job if
        the database refuses now)."""
        try:
            async with self._sessionmaker.begin() as session:
                await repository.mark_failed(session, [order_id])
        except Exception:
            log.exception("could not mark an order failed", extra={"order_id": order_id})

    async def sweep(self, grace: timedelta) -> int:
        """One batch: compensate orders pending for longer than `grace`; return how many."""
        async with self._sessionmaker.begin() as session:
            stale = await repository.lock_stale_pending_orders(
                session, utcnow() - grace, self._batch_size
            )
            if not stale:
                return 0
            released = await asyncio.gather(*(self._release_lines(*order) for order in stale))
            done = [order[0] for order, ok in zip(stale, released, strict=True) if ok]
            if done:
                await repository.mark_failed(session, done)
        if done:
            ORDERS_SWEPT.inc(len(done))
            log.warning("compensated stale pending orders", extra={"order_ids": done})
        return len(done)

    async def sweep_all(self, grace: timedelta) -> None:
        """Sweep batch after batch while full batches are compensated completely."""
        while await self.sweep(grace) == self._batch_size:
            pass

    async def _release_lines(self, order_id: int, token: str, line_count: int) -> bool:
        """Release every line's reference at catalog; True when catalog took them all."""
        results = await asyncio.gather(
            *(
                self._catalog.release_reference(reservation_reference(order_id, token, line))
                for line in range(line_count)
            ),
            return_exceptions=True,
        )
        failures = [result for result in results if isinstance(result, BaseException)]
        for failure in failures:
            if not isinstance(failure, CatalogError):
                log.error("unexpected error releasing a reservation", exc_info=failure)
        if failures:
            log.warning(
                "catalog did not take an order's stock back yet",
                extra={"order_id": order_id, "error": str(failures[0])},
            )
        return not failures
