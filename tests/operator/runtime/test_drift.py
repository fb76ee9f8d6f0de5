"""Drift repair, idempotence and restarts: what the operator writes, and what it never does."""

from __future__ import annotations

from typing import Any

from tests.operator.runtime.conftest import (
    NAMESPACE,
    RESYNC_SECONDS,
    Operator,
    api,
    bookstore,
    condition,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    migrate_first_version,
    reconciles,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"


def settled(emulator: Emulator) -> bool:
    """True once two reconciles have started since the operator's last write."""
    requests = emulator.requests_made
    writes = {id(r) for r in emulator.writes()}
    last = max((i for i, r in enumerate(requests) if id(r) in writes), default=0)
    return reconciles(emulator, "downtown", since=last + 1) >= 2


async def ready_bookstore(emulator: Emulator) -> dict[str, Any]:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    return await wait_ready(emulator, "downtown")


async def test_reconcile_with_nothing_to_change_makes_zero_write_requests(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_bookstore(emulator)
    # Let the tail of convergence land (kopf posts events and its annotations asynchronously):
    # settled = a full reconcile has happened since the last write.
    await eventually(lambda: settled(emulator), what="no writes during a whole reconcile")
    start = len(emulator.requests_made)

    # At least two resync timer ticks: each one is a full reconcile.
    await eventually(
        lambda: reconciles(emulator, "downtown", since=start) >= 2,
        within=10 * RESYNC_SECONDS + 10,
        what="two resyncs",
    )
    assert [f"{r.method.value} {r.url.path}" for r in emulator.writes(since=start)] == []


async def test_deleted_child_is_recreated(emulator: Emulator, operator: Operator) -> None:
    await ready_bookstore(emulator)
    await api(emulator, "DELETE", f"{SERVICES}/downtown-catalog")

    def recreated() -> bool:
        service = emulator.live("v1/services", NAMESPACE, "downtown-catalog")
        return service is not None and service["spec"]["ports"][0]["port"] == 8000

    await eventually(recreated, what="Service downtown-catalog recreated")


async def test_child_edited_by_hand_is_restored(emulator: Emulator, operator: Operator) -> None:
    await ready_bookstore(emulator)
    original = emulator.live("apps/v1/deployments", NAMESPACE, "downtown-orders")
    assert original is not None
    image = original["spec"]["template"]["spec"]["containers"][0]["image"]
    # Our container reduced to a new image and nothing else (a merge patch replaces the list);
    # a container someone else adds is theirs and stays (tests/operator/runtime/test_apply.py).
    hacked = {
        "spec": {"template": {"spec": {"containers": [{"name": "orders", "image": "evil:1"}]}}}
    }
    await api(emulator, "PATCH", f"{DEPLOYMENTS}/downtown-orders", hacked, merge=True)

    def restored() -> bool:
        live = emulator.live("apps/v1/deployments", NAMESPACE, "downtown-orders")
        containers = (live or {})["spec"]["template"]["spec"]["containers"]
        return bool(containers == original["spec"]["template"]["spec"]["containers"])

    await eventually(restored, what="the orders Deployment restored")
    live = emulator.live("apps/v1/deployments", NAMESPACE, "downtown-orders")
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == image


async def test_restarted_operator_changes_no_secret_and_duplicates_nothing(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_bookstore(emulator)
    secrets_before = {s["metadata"]["name"]: s for s in emulator.live_items("v1/secrets")}
    counts_before = {
        plural: len(emulator.live_items(plural))
        for plural in ("v1/services", "apps/v1/deployments", "v1/configmaps")
    }

    await operator.stop()
    start = len(emulator.requests_made)
    await operator.start()
    await eventually(
        lambda: reconciles(emulator, "downtown", since=start) >= 2, what="two reconciles"
    )

    assert {s["metadata"]["name"]: s for s in emulator.live_items("v1/secrets")} == secrets_before
    for plural, count in counts_before.items():
        assert len(emulator.live_items(plural)) == count
    child_writes = [
        r
        for r in emulator.writes(since=start)
        if "/bookstores/" not in r.url.path and not r.url.path.endswith("/events")
    ]
    assert child_writes == []
    assert condition(bookstore(emulator, "downtown"), "Ready")["status"] == "True"


async def test_same_named_object_not_owned_is_left_alone_and_reported(
    emulator: Emulator, operator: Operator
) -> None:
    foreign = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "downtown-catalog", "namespace": NAMESPACE},
        "spec": {"ports": [{"port": 1234}]},
    }
    await api(emulator, "POST", SERVICES, foreign)
    await create_bookstore(emulator, "downtown")

    def degraded() -> bool:
        store = bookstore(emulator, "downtown")
        return (store.get("status") or {}).get("phase") == "Degraded" and (
            condition(store, "Ready").get("reason") == "ChildNotOwned"
        )

    await eventually(degraded, what="phase Degraded, reason ChildNotOwned")
    service = emulator.live("v1/services", NAMESPACE, "downtown-catalog")
    assert service is not None
    assert service["spec"] == {"ports": [{"port": 1234}]}
    assert "ownerReferences" not in service["metadata"]
    await eventually(
        lambda: any(
            e.get("type") == "Warning" and e.get("reason") == "ChildNotOwned"
            for e in emulator.live_items("v1/events")
        ),
        what="a Warning event ChildNotOwned",
    )


async def test_transient_api_errors_are_retried_until_the_bookstore_is_ready(
    emulator: Emulator, operator: Operator
) -> None:
    emulator.faults[("PATCH", "deployments")] = [500, 429, 409]
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    assert emulator.faults[("PATCH", "deployments")] == []


async def test_child_rejected_by_the_api_server_fails_the_bookstore_without_crashing(
    emulator: Emulator, operator: Operator
) -> None:
    emulator.faults[("PATCH", "deployments")] = [422] * 1000
    await create_bookstore(emulator, "downtown")
    await migrate_first_version(emulator, "downtown")

    def rejected() -> dict[str, Any] | None:
        store = bookstore(emulator, "downtown")
        ready = condition(store, "Ready")
        failed = (store.get("status") or {}).get("phase") == "Failed"
        return ready if failed and ready.get("reason") == "ChildRejected" else None

    ready = await eventually(rejected, what="phase Failed, reason ChildRejected")
    assert "Deployment/downtown-catalog" in ready["message"]
    assert "422" in ready["message"]
    await eventually(
        lambda: any(e.get("reason") == "ChildRejected" for e in emulator.live_items("v1/events")),
        what="a Warning event ChildRejected",
    )

    emulator.faults.clear()  # e.g. an operator upgrade fixed the manifest: the resync recovers
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
