"""Turns at a bounded resource, in arrival order, with a bounded wait."""

from __future__ import annotations

import asyncio


async def take_turn(gate: asyncio.Semaphore, patience: float) -> None:
    """Acquire `gate`, after the callers already waiting (asyncio.Semaphore hands a released
    slot to the longest waiter and queues a newcomer behind them); TimeoutError after
    `patience` seconds of waiting. Only a wait runs under a timer: a free slot is taken at
    once, without asyncio.timeout's cost on every call."""
    if gate.locked():
        async with asyncio.timeout(patience):
            await gate.acquire()
    else:
        await gate.acquire()  # returns at once: a slot is free
