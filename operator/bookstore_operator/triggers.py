"""What may start a reconcile, and how reconciles of one Bookstore are kept from overlapping.

`KeyedLock` serializes work per key and forgets a key's lock only when nobody holds it or
waits on it (dropping it earlier would let a newcomer create a second lock for the same key
and run beside a waiter of the first). `ChangeFilter` tells a child's watch event that can
change what a reconcile does from noise, such as an HPA refreshing its current metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)

# Status fields that change often and that neither drift repair nor readiness reads:
# an HPA rewrites them on every metrics sync (about every 15 s per HPA).
NOISE_STATUS_FIELDS: dict[str, frozenset[str]] = {
    "HorizontalPodAutoscaler": frozenset({"currentMetrics", "lastScaleTime", "conditions"}),
}
# Metadata the API server bumps on every write, whatever changed.
NOISE_METADATA_FIELDS = frozenset({"resourceVersion", "managedFields"})


class _Entry:
    """A key's lock and how many coroutines hold it or wait on it."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


class KeyedLock(Generic[K]):
    """One asyncio lock per key, pruned only when no coroutine holds it or waits on it.

    `observe_wait`, when given, is told how many seconds each `hold` waited for the lock
    (e.g. metrics.LOCK_WAIT.observe).
    """

    def __init__(self, *, observe_wait: Callable[[float], object] | None = None) -> None:
        self._entries: dict[K, _Entry] = {}
        self._observe_wait = observe_wait

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def hold(self, key: K) -> AsyncIterator[None]:
        """Hold the key's lock for the block; the last user leaving forgets the key."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1  # counted before the first await: a waiter keeps the entry alive
        asked = time.monotonic()
        try:
            async with entry.lock:
                if self._observe_wait is not None:
                    self._observe_wait(time.monotonic() - asked)
                yield
        finally:
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]


def fingerprint(body: Mapping[str, Any]) -> str:
    """A digest of the parts of a child that drift repair or readiness may read."""
    kind = str(body.get("kind", ""))
    relevant = {key: value for key, value in body.items() if key not in {"metadata", "status"}}
    relevant["metadata"] = {
        key: value
        for key, value in (body.get("metadata") or {}).items()
        if key not in NOISE_METADATA_FIELDS
    }
    noise = NOISE_STATUS_FIELDS.get(kind, frozenset())
    relevant["status"] = {
        key: value for key, value in (body.get("status") or {}).items() if key not in noise
    }
    encoded = json.dumps(relevant, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()


class ChangeFilter:
    """Remembers each child's last fingerprint; says whether a new event changes anything."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._seen)

    def matters(self, event_type: str | None, body: Mapping[str, Any]) -> bool:
        """True for a deletion, a first sighting, or a change beyond the noise fields."""
        uid = str((body.get("metadata") or {}).get("uid", ""))
        if event_type == "DELETED" or not uid:
            self._seen.pop(uid, None)
            return True
        digest = fingerprint(body)
        if self._seen.get(uid) == digest:
            return False
        self._seen[uid] = digest
        return True
