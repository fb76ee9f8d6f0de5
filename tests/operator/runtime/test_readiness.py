"""Ready means serving at the promised size, and holds through a drift repair (issue 9 #8, 8 #4)."""

from __future__ import annotations

from typing import Any

from tests.operator.runtime.conftest import (
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

SERVICES = f"/api/v1/namespaces/{NAMESPACE}/services"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"


def events(emulator: Emulator) -> list[tuple[str, str, str]]:
    return [
        (e["type"], e["reason"], e["message"])
        for e in emulator.live_items("v1/events")
        if e["involvedObject"]["name"] == "downtown"
    ]


def ready_statuses_written(emulator: Emulator, since: int) -> list[str]:
    """The Ready condition's status in every status write since request `since`."""
    return [
        c["status"]
        for r in emulator.writes(since=since)
        if r.url.path.endswith("/bookstores/downtown/status")
        for c in ((r.data or {}).get("status") or {}).get("conditions") or []
        if c["type"] == "Ready"
    ]


async def test_repairing_a_child_that_needs_no_new_pods_keeps_ready_and_posts_repaired(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    before = condition(await wait_ready(emulator, "downtown"), "Ready")
    start = len(emulator.requests_made)

    hacked = {"metadata": {"labels": {"app.kubernetes.io/part-of": "hijacked"}}}
    await api(emulator, "PATCH", f"{SERVICES}/downtown-catalog", hacked, merge=True)
    repaired = (
        "Normal",
        "Repaired",
        "Repaired Service/downtown-catalog: updated it, as it differed from the spec",
    )
    await eventually(lambda: repaired in events(emulator), what="a Repaired event")
    service = emulator.live("v1/services", NAMESPACE, "downtown-catalog")
    assert service is not None
    assert service["metadata"]["labels"]["app.kubernetes.io/part-of"] == "bookstore"

    await api(emulator, "DELETE", f"{SERVICES}/downtown-orders")
    recreated = (
        "Normal",
        "Repaired",
        "Repaired Service/downtown-orders: created it, as it differed from the spec",
    )
    await eventually(lambda: recreated in events(emulator), what="a Repaired event (recreated)")

    after = condition(await wait_ready(emulator, "downtown"), "Ready")
    assert after["lastTransitionTime"] == before["lastTransitionTime"]
    assert "False" not in ready_statuses_written(emulator, start)
    reasons = [reason for _, reason, _ in events(emulator)]
    assert reasons.count("Repaired") == 2
    assert reasons.count("RolloutComplete") == 1  # only the first time it became ready
    assert "Updated" not in reasons


async def test_ready_waits_until_the_minimum_replicas_are_ready(
    emulator: Emulator, operator: Operator
) -> None:
    spec = {"catalog": {"autoscaling": {"minReplicas": 3, "maxReplicas": 6}}}
    await create_bookstore(emulator, "downtown", spec)
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    # Scaled below the floor (by hand, or by an operator that started it at 1): 1/1 ready.
    await api(
        emulator, "PATCH", f"{DEPLOYMENTS}/downtown-catalog", {"spec": {"replicas": 1}}, merge=True
    )
    await mark_workloads_ready(emulator, "downtown")

    def below() -> dict[str, Any] | None:
        store = bookstore(emulator, "downtown")
        catalog = condition(store, "CatalogReady")
        return store if catalog.get("reason") == "BelowMinReplicas" else None

    store = await eventually(below, what="CatalogReady reason BelowMinReplicas")
    assert condition(store, "Ready")["status"] == "False"
    assert condition(store, "Progressing")["status"] == "True"
    assert store["status"]["phase"] == "Progressing"
    assert "spec.catalog.autoscaling.minReplicas (3)" in condition(store, "CatalogReady")["message"]
    assert store["status"]["catalog"]["ready"] == "1/1"

    # The HPA raises it back to its floor: Ready again.
    await api(
        emulator, "PATCH", f"{DEPLOYMENTS}/downtown-catalog", {"spec": {"replicas": 3}}, merge=True
    )
    await mark_workloads_ready(emulator, "downtown")
    store = await wait_ready(emulator, "downtown")
    assert store["status"]["catalog"]["ready"] == "3/3"
