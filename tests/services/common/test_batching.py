"""The Batcher: concurrent submits share a run, yet every caller gets its own outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from bookstore_common.batching import Batcher


class Doubler:
    """A batch runner that doubles numbers, records each batch and can be held or fail."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.running = 0
        self.most_running = 0

    async def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
        finally:
            self.running -= 1
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {list(items)}")
        return [item * 2 for item in items]


async def settle() -> None:
    """Let every ready task run (the submits queue, the batches start)."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_submit_runs_at_once_as_a_batch_of_one() -> None:
    run = Doubler()
    batcher = Batcher(run, concurrency=1)
    assert await batcher.submit(21) == 42
    assert run.batches == [[21]]


async def test_submits_arriving_while_a_batch_is_in_flight_share_the_next_batch() -> None:
    run = Doubler()
    run.gate.clear()
    batcher = Batcher(run, concurrency=1)
    first = asyncio.create_task(batcher.submit(1))
    await settle()
    rest = [asyncio.create_task(batcher.submit(n)) for n in range(2, 7)]
    await settle()
    assert run.batches == [[1]]  # the others wait for the one in flight
    run.gate.set()
    assert await asyncio.gather(first, *rest) == [2, 4, 6, 8, 10, 12]
    assert run.batches == [[1], [2, 3, 4, 5, 6]]


async def test_no_more_batches_run_at_once_than_the_concurrency() -> None:
    run = Doubler()
    run.gate.clear()
    batcher = Batcher(run, concurrency=2)
    calls = [asyncio.create_task(batcher.submit(n)) for n in range(10)]
    await settle()
    assert run.running == 2
    run.gate.set()
    assert await asyncio.gather(*calls) == [n * 2 for n in range(10)]
    assert run.most_running == 2
    assert sorted(n for batch in run.batches for n in batch) == list(range(10))


async def test_a_batch_carries_at_most_max_size_items() -> None:
    run = Doubler()
    run.gate.clear()
    batcher = Batcher(run, concurrency=1, max_size=3)
    calls = [asyncio.create_task(batcher.submit(n)) for n in range(8)]
    await settle()
    run.gate.set()
    await asyncio.gather(*calls)
    assert run.batches == [[0], [1, 2, 3], [4, 5, 6], [7]]


async def test_items_with_one_key_never_share_a_batch_and_keep_their_order() -> None:
    run = Doubler()
    run.gate.clear()
    batcher = Batcher(run, concurrency=1, distinct_by=lambda n: n % 10)
    calls = [asyncio.create_task(batcher.submit(n)) for n in (1, 2, 11, 3, 21, 12)]
    await settle()
    run.gate.set()
    assert await asyncio.gather(*calls) == [2, 4, 22, 6, 42, 24]
    assert run.batches == [[1], [2, 11, 3], [21, 12]]


async def test_a_failed_batch_is_run_item_by_item_so_only_the_bad_item_fails() -> None:
    run = Doubler()
    run.gate.clear()
    batcher = Batcher(run, concurrency=1)
    first = asyncio.create_task(batcher.submit(0))
    await settle()
    calls = [asyncio.create_task(batcher.submit(n)) for n in (1, -1, 2)]
    await settle()
    run.gate.set()
    assert await first == 0
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == 2
    assert isinstance(results[1], ValueError)
    assert "[-1]" in str(results[1])  # it failed on its own
    assert results[2] == 4
    assert run.batches == [[0], [1, -1, 2], [1], [-1], [2]]


async def test_a_failure_not_worth_splitting_fails_every_caller_of_the_batch_once() -> None:
    run = Doubler()
    run.gate.clear()
    batcher = Batcher(run, concurrency=1, split_on=lambda _: False)
    first = asyncio.create_task(batcher.submit(0))
    await settle()
    calls = [asyncio.create_task(batcher.submit(n)) for n in (1, -1)]
    await settle()
    run.gate.set()
    await first
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(result, ValueError) for result in results)
    assert run.batches == [[0], [1, -1]]


async def test_a_caller_cancelled_before_its_batch_left_is_not_sent() -> None:
    run = Doubler()
    run.gate.clear()
    batcher = Batcher(run, concurrency=1)
    first = asyncio.create_task(batcher.submit(1))
    await settle()
    gone = asyncio.create_task(batcher.submit(2))
    stays = asyncio.create_task(batcher.submit(3))
    await settle()
    gone.cancel()
    run.gate.set()
    assert await first == 2
    assert await stays == 6
    assert gone.cancelled()
    assert run.batches == [[1], [3]]


async def test_callers_are_cancelled_when_their_batch_is() -> None:
    async def shut_down(items: Sequence[int]) -> list[int]:
        raise asyncio.CancelledError  # as when the batch task is cancelled at shutdown

    batcher = Batcher(shut_down, concurrency=1)
    call = asyncio.create_task(batcher.submit(1))
    with pytest.raises(asyncio.CancelledError):
        await call
    assert call.cancelled()


@pytest.mark.parametrize(("concurrency", "max_size"), [(0, 1), (1, 0)])
def test_concurrency_and_batch_size_must_be_positive(concurrency: int, max_size: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(Doubler(), concurrency=concurrency, max_size=max_size)
