"""The bulkhead in front of catalog: bounded turns, in arrival order, a bounded wait."""

from __future__ import annotations

import asyncio

import pytest
from bookstore_orders.bulkhead import Bulkhead, BulkheadFullError


async def hold(bulkhead: Bulkhead, order: list[int], n: int, seconds: float) -> None:
    async with bulkhead.turn(5):
        order.append(n)
        await asyncio.sleep(seconds)


async def test_turns_beyond_the_limit_wait_and_are_served_in_arrival_order() -> None:
    bulkhead = Bulkhead(2)
    order: list[int] = []
    tasks = [asyncio.create_task(hold(bulkhead, order, n, 0.05)) for n in range(6)]
    await asyncio.sleep(0.01)
    assert (bulkhead.in_flight, bulkhead.waiting) == (2, 4)
    await asyncio.gather(*tasks)
    assert order == list(range(6))
    assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)


async def test_a_wait_longer_than_the_patience_fails_and_leaves_no_turn_taken() -> None:
    bulkhead = Bulkhead(1)
    holder = asyncio.create_task(hold(bulkhead, [], 0, 0.3))
    await asyncio.sleep(0.01)
    with pytest.raises(BulkheadFullError):
        async with bulkhead.turn(0.05):
            pass
    with pytest.raises(BulkheadFullError):
        async with bulkhead.turn(0):
            pass
    await holder
    assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)
    async with bulkhead.turn(0):
        assert bulkhead.in_flight == 1


async def test_a_cancelled_waiter_passes_a_turn_handed_to_it_to_the_next() -> None:
    bulkhead = Bulkhead(1)
    order: list[int] = []
    holder = asyncio.create_task(hold(bulkhead, order, 0, 0.05))
    await asyncio.sleep(0.01)
    cancelled = asyncio.create_task(hold(bulkhead, order, 1, 0))
    after = asyncio.create_task(hold(bulkhead, order, 2, 0))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.gather(holder, after)
    assert order == [0, 2]
    assert (bulkhead.in_flight, bulkhead.waiting) == (0, 0)
