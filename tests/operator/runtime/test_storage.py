"""Growing spec.database.storage: each PVC grows; the StatefulSet's claim templates never change."""

from __future__ import annotations

from typing import Any

from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    Operator,
    api,
    bookstore,
    condition,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

CLAIM = "data-downtown-postgres-0"


def requested_storage(emulator: Emulator) -> str:
    claim = emulator.live("v1/persistentvolumeclaims", NAMESPACE, CLAIM)
    assert claim is not None, f"PVC {CLAIM} does not exist"
    return str(claim["spec"]["resources"]["requests"]["storage"])


def statefulset(emulator: Emulator) -> dict[str, Any]:
    found = emulator.live("apps/v1/statefulsets", NAMESPACE, "downtown-postgres")
    assert found is not None
    return found


def claim_writes(emulator: Emulator, since: int) -> list[str]:
    return [
        f"{r.method.value} {r.url.path}"
        for r in emulator.writes(since=since)
        if "/persistentvolumeclaims" in r.url.path
    ]


def observed(emulator: Emulator, generation: int) -> bool:
    status = bookstore(emulator, "downtown").get("status") or {}
    return bool(status.get("observedGeneration") == generation)


async def ready_bookstore(emulator: Emulator) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")  # also makes the PVC, at 5Gi
    await wait_ready(emulator, "downtown")
    assert requested_storage(emulator) == "5Gi"


async def change_spec(emulator: Emulator, spec: dict[str, Any]) -> None:
    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", {"spec": spec}, merge=True)


async def test_growing_storage_patches_the_claim_and_not_the_stateful_set_templates(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_bookstore(emulator)
    start = len(emulator.requests_made)
    await change_spec(emulator, {"database": {"storage": "5120Mi"}})  # the same size
    await eventually(lambda: observed(emulator, 2), what="generation 2 observed")
    assert claim_writes(emulator, start) == []

    await change_spec(emulator, {"database": {"storage": "10Gi", "image": "postgres:16.4"}})
    await eventually(lambda: requested_storage(emulator) == "10Gi", what="the PVC grown to 10Gi")
    live = statefulset(emulator)["spec"]
    assert live["template"]["spec"]["containers"][0]["image"] == "postgres:16.4"
    [template] = live["volumeClaimTemplates"]
    assert template["spec"]["resources"]["requests"]["storage"] == "5Gi"
    statefulset_patches = [
        r.data
        for r in emulator.writes(since=start)
        if r.method.value == "PATCH" and "/statefulsets/" in r.url.path
    ]
    assert statefulset_patches
    # Server-side apply sends the immutable templates back as they are (dropping a field it
    # owns would remove it): never with the spec's new size.
    sent = [
        t
        for p in statefulset_patches
        for t in (p.get("spec") or {}).get("volumeClaimTemplates", [])
    ]
    assert all(t["spec"]["resources"]["requests"]["storage"] == "5Gi" for t in sent)

    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    assert claim_writes(emulator, start) == [
        f"PATCH /api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{CLAIM}"
    ]
    assert any(
        e.get("reason") == "Updated" and CLAIM in e.get("message", "")
        for e in emulator.live_items("v1/events")
    )


async def test_refused_resize_degrades_with_a_warning_then_recovers_once_allowed(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_bookstore(emulator)
    emulator.faults[("PATCH", "persistentvolumeclaims")] = [403] * 1000
    await change_spec(
        emulator,
        {"database": {"storage": "10Gi"}, "ingress": {"enabled": True, "host": "shop.example"}},
    )

    def degraded() -> dict[str, Any] | None:
        store = bookstore(emulator, "downtown")
        ready = condition(store, "Ready")
        phase = (store.get("status") or {}).get("phase")
        return ready if phase == "Degraded" and ready["reason"] == "StorageResizeRefused" else None

    ready = await eventually(degraded, what="phase Degraded, reason StorageResizeRefused")
    assert ready["status"] == "False"
    assert CLAIM in ready["message"]
    assert "403" in ready["message"]
    assert "allowVolumeExpansion" in ready["message"]
    await eventually(
        lambda: any(
            e.get("type") == "Warning" and e.get("reason") == "StorageResizeRefused"
            for e in emulator.live_items("v1/events")
        ),
        what="a Warning event StorageResizeRefused",
    )
    # Everything else in the same change was still applied.
    assert emulator.live("networking.k8s.io/v1/ingresses", NAMESPACE, "downtown") is not None
    assert requested_storage(emulator) == "5Gi"

    emulator.faults.clear()  # e.g. the StorageClass now allows expansion: a resync grows it
    await eventually(lambda: requested_storage(emulator) == "10Gi", what="the PVC grown to 10Gi")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")


async def test_refused_resize_is_undone_by_returning_to_the_size_status_reports(
    emulator: Emulator, operator: Operator
) -> None:
    await ready_bookstore(emulator)
    # The volume's real size, as the storage driver reports it, wins over the request.
    path = f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{CLAIM}/status"
    await api(emulator, "PATCH", path, {"status": {"capacity": {"storage": "5Gi"}}}, merge=True)
    emulator.faults[("PATCH", "persistentvolumeclaims")] = [403] * 1000
    await change_spec(emulator, {"database": {"storage": "10Gi"}})

    def degraded() -> dict[str, Any] | None:
        store = bookstore(emulator, "downtown")
        ready = condition(store, "Ready")
        return ready if ready.get("reason") == "StorageResizeRefused" else None

    ready = await eventually(degraded, what="Ready reason StorageResizeRefused")
    assert "set spec.database.storage back to 5Gi" in ready["message"]
    assert bookstore(emulator, "downtown")["status"]["database"]["storage"] == "5Gi"

    # The way out the CRD allows (down to status.database.storage): the same size again.
    await change_spec(emulator, {"database": {"storage": "5Gi"}})
    store = await wait_ready(emulator, "downtown")
    assert store["status"]["database"]["storage"] == "5Gi"
    assert requested_storage(emulator) == "5Gi"
