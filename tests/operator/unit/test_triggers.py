"""KeyedLock never lets two holders of one key overlap; ChangeFilter ignores HPA metric noise."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from bookstore_operator.triggers import ChangeFilter, KeyedLock

KEY = ("shop", "downtown")


class Holders:
    """Records how many coroutines hold a key at once, and the most ever seen."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0

    def enter(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)

    def leave(self) -> None:
        self.now -= 1


async def test_a_newcomer_waits_for_a_waiter_after_the_first_holder_leaves() -> None:
    # The old defect: the first holder dropped the lock from the dict while a second one
    # waited on it, so a third made a fresh lock and ran beside the second.
    locks = KeyedLock[tuple[str, str]]()
    holders = Holders()
    first_in, first_may_leave = asyncio.Event(), asyncio.Event()
    second_in, second_may_leave = asyncio.Event(), asyncio.Event()
    third_in = asyncio.Event()

    async def first() -> None:
        async with locks.hold(KEY):
            holders.enter()
            first_in.set()
            await first_may_leave.wait()
            holders.leave()

    async def second() -> None:
        async with locks.hold(KEY):
            holders.enter()
            second_in.set()
            await second_may_leave.wait()
            holders.leave()

    async def third() -> None:
        async with locks.hold(KEY):
            holders.enter()
            third_in.set()
            holders.leave()

    one = asyncio.create_task(first())
    await first_in.wait()
    two = asyncio.create_task(second())
    await asyncio.sleep(0)  # the second is now queued on the lock
    first_may_leave.set()
    await one
    await second_in.wait()
    assert KEY in locks  # the second holds it: the key must not have been forgotten
    three = asyncio.create_task(third())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not third_in.is_set()  # still waiting behind the second
    second_may_leave.set()
    await asyncio.gather(two, three)

    assert holders.most == 1
    assert KEY not in locks  # the last one out forgot the key
    assert len(locks) == 0


async def test_a_cancelled_waiter_releases_its_claim_on_the_key() -> None:
    locks = KeyedLock[str]()
    held, release = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with locks.hold("k"):
            held.set()
            await release.wait()

    async def waiter() -> None:
        async with locks.hold("k"):
            raise AssertionError("the waiter was cancelled before it got the lock")

    owner = asyncio.create_task(holder())
    await held.wait()
    queued = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    queued.cancel()
    await asyncio.gather(queued, return_exceptions=True)
    assert "k" in locks  # the holder still has it
    release.set()
    await owner
    assert len(locks) == 0


async def test_different_keys_do_not_wait_for_each_other() -> None:
    locks = KeyedLock[str]()
    async with locks.hold("a"), locks.hold("b"):
        assert len(locks) == 2
    assert len(locks) == 0


def hpa(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "downtown-catalog", "uid": "u1", "resourceVersion": "1"},
        "spec": {"minReplicas": 2, "maxReplicas": 5},
        "status": {"currentReplicas": 2, "desiredReplicas": 2, **status},
    }


def test_hpa_metric_refresh_is_ignored_but_a_replica_or_spec_change_is_not() -> None:
    changes = ChangeFilter()
    metrics = [{"type": "Resource", "resource": {"name": "cpu", "current": {"value": "10m"}}}]
    assert changes.matters(None, hpa(currentMetrics=metrics))  # first sighting
    refreshed = hpa(currentMetrics=[{**metrics[0], "x": 1}], lastScaleTime="2026-01-01T00:00:00Z")
    refreshed["metadata"]["resourceVersion"] = "2"
    assert not changes.matters("MODIFIED", refreshed)
    scaled = copy.deepcopy(refreshed)
    scaled["status"]["desiredReplicas"] = 3
    assert changes.matters("MODIFIED", scaled)
    edited = copy.deepcopy(scaled)
    edited["spec"]["maxReplicas"] = 9
    assert changes.matters("MODIFIED", edited)
    assert changes.matters("DELETED", edited)
    assert len(changes) == 0  # a deleted child is forgotten


def test_a_deployment_status_change_always_matters() -> None:
    changes = ChangeFilter()
    deployment = {
        "kind": "Deployment",
        "metadata": {"uid": "d1", "resourceVersion": "5"},
        "status": {"readyReplicas": 1},
    }
    assert changes.matters(None, deployment)
    assert not changes.matters("MODIFIED", {**deployment, "metadata": {"uid": "d1"}})
    assert changes.matters("MODIFIED", {**deployment, "status": {"readyReplicas": 2}})
