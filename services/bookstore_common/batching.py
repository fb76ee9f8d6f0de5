"""Coalesce concurrent one-row statements into one statement per round trip.

Under load many requests of a worker want the same statement at once (insert my order,
confirm my order). Sent one by one, each costs a round trip, a statement execution and
a commit (a WAL flush). A `Batcher` sends the first row at once; rows that arrive while
`concurrency` batches are in flight wait for the next batch, which carries all of them.
At low load every batch is one row and nothing waits; at 64 connections one round trip
and one commit serve several requests (group commit, done by the client).

Each caller still gets its own outcome: `run(items)` returns one result per item, and
when a batch fails the items are run one by one, so a bad row fails only its own caller.
A caller cancelled after its batch was sent does not unsend it: the row may be written,
exactly as a single statement cancelled in flight may be.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchRunner = Callable[[Sequence[T]], Awaitable[Sequence[R]]]

# Statements of one kind in flight per worker: two, so that one slow statement (waiting
# for a row lock, say) does not hold up every request of its worker; more in flight would
# only make each statement carry fewer requests.
IN_FLIGHT = 2


class Batcher(Generic[T, R]):
    """Runs `submit(item)` calls through `run(items)`, many items per call under load."""

    def __init__(
        self,
        run: BatchRunner[T, R],
        *,
        concurrency: int = IN_FLIGHT,
        max_size: int = 64,
        split_on: Callable[[Exception], bool] = lambda _: True,
        distinct_by: Callable[[T], Hashable] | None = None,
    ) -> None:
        """`split_on(exc)`: whether a failed batch's items are worth running one by one
        (not when the database is down: each would fail the same way). `distinct_by`:
        items with equal keys never share a batch (a later one waits for the next), e.g.
        when a statement can change each row only once."""
        if concurrency < 1 or max_size < 1:
            raise ValueError("concurrency and max_size must be at least 1")
        self._run = run
        self._split_on = split_on
        self._distinct_by = distinct_by
        self._concurrency = concurrency
        self._max_size = max_size
        self._waiting: deque[tuple[T, asyncio.Future[R]]] = deque()
        self._in_flight: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        """`item`'s result, or the exception its statement raised."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, future))
        if len(self._in_flight) < self._concurrency:
            self._start_batch()
        return await future

    def _start_batch(self) -> None:
        """Send the waiting items (up to max_size; cancelled callers' items are dropped)."""
        batch: list[tuple[T, asyncio.Future[R]]] = []
        held_back: list[tuple[T, asyncio.Future[R]]] = []
        keys: set[Hashable] = set()
        while self._waiting and len(batch) < self._max_size:
            entry = self._waiting.popleft()
            if entry[1].done():
                continue
            if self._distinct_by is not None:
                key = self._distinct_by(entry[0])
                if key in keys:
                    held_back.append(entry)
                    continue
                keys.add(key)
            batch.append(entry)
        self._waiting.extendleft(reversed(held_back))  # first in the next batch, in order
        if batch:
            task = asyncio.create_task(self._execute(batch))
            self._in_flight.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if self._waiting and len(self._in_flight) < self._concurrency:
            self._start_batch()

    async def _execute(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        """Run one batch and hand every caller its result (one by one after a failure)."""
        try:
            results = await self._run([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1 or not self._split_on(exc):
                for _, future in batch:
                    _fail(future, exc)
                return
            for item, future in batch:
                await self._run_alone(item, future)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def _run_alone(self, item: T, future: asyncio.Future[R]) -> None:
        """Run one item of a failed batch on its own (unless its caller is gone)."""
        if future.done():
            return
        try:
            (result,) = await self._run([item])
        except Exception as exc:
            _fail(future, exc)
        except BaseException:
            future.cancel()
            raise
        else:
            if not future.done():
                future.set_result(result)


def _fail(future: asyncio.Future[R], exc: Exception) -> None:
    if not future.done():
        future.set_exception(exc)
