"""Giving reservations back to catalog, durably: what catalog cannot take now is retried.

A failed order must not keep stock held at catalog. Releases are tried at once (the
catalog client retries them); those that still fail, e.g. because catalog went down
mid-order, are queued in `pending_releases` and a background loop in every worker
retries them until catalog takes them back (release is idempotent; 404 means done).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bookstore_orders import repository
from bookstore_orders.catalog_client import CatalogClient, CatalogError
from bookstore_orders.metrics import RELEASES_DEFERRED

log = logging.getLogger(__name__)


class ReservationReleaser:
    """Releases reservations now, or queues them in the database for a later retry."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        catalog: CatalogClient,
        batch_size: int = 20,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._catalog = catalog
        self._batch_size = batch_size

    async def release_all(self, reservation_ids: Sequence[str]) -> None:
        """Give every reservation back; queue the ones catalog refuses for now."""
        if not reservation_ids:
            return
        failed, error = await self._try_release(reservation_ids)
        if failed:
            await self._defer(failed, error)

    async def retry_pending(self) -> int:
        """One pass over the queue: release what catalog takes now; return how many."""
        async with self._sessionmaker.begin() as session:
            queued = await repository.lock_pending_releases(session, self._batch_size)
            if not queued:
                return 0
            failed, _ = await self._try_release(queued)
            done = [rid for rid in queued if rid not in failed]
            if done:
                await repository.delete_pending_releases(session, done)
        if done:
            log.info("gave back queued reservations", extra={"released": len(done)})
        return len(done)

    async def retry_all(self) -> None:
        """Work through the queue in batches while catalog keeps taking them back."""
        while await self.retry_pending() == self._batch_size:
            pass

    async def _try_release(self, reservation_ids: Sequence[str]) -> tuple[set[str], str]:
        """Release concurrently; return the ids that failed and one error to record."""
        results = await asyncio.gather(
            *(self._catalog.release(rid) for rid in reservation_ids), return_exceptions=True
        )
        failed: set[str] = set()
        error = ""
        for rid, result in zip(reservation_ids, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, CatalogError):
                    log.error("unexpected error releasing a reservation", exc_info=result)
                failed.add(rid)
                error = str(result)
        return failed, error

    async def _defer(self, reservation_ids: set[str], error: str) -> None:
        """Queue releases for the background retry; if even that fails, log each one."""
        ids = sorted(reservation_ids)
        try:
            async with self._sessionmaker.begin() as session:
                await repository.add_pending_releases(session, ids, error)
        except Exception:
            log.exception(
                "could not queue reservation releases; their stock stays held at catalog",
                extra={"reservation_ids": ids},
            )
            return
        RELEASES_DEFERRED.inc(len(ids))
        log.warning(
            "catalog did not take reservations back; queued for retry",
            extra={"reservation_ids": ids, "error": error},
        )
