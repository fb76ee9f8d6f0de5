"""Create, become ready, change, and delete a Bookstore through the real kopf runtime."""

from __future__ import annotations

from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings
from tests.operator.runtime.conftest import (
    NAMESPACE,
    Operator,
    bookstore,
    condition,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

PLURALS = {
    "Secret": "v1/secrets",
    "ConfigMap": "v1/configmaps",
    "Service": "v1/services",
    "Deployment": "apps/v1/deployments",
    "StatefulSet": "apps/v1/statefulsets",
    "HorizontalPodAutoscaler": "autoscaling/v2/horizontalpodautoscalers",
    "PodDisruptionBudget": "policy/v1/poddisruptionbudgets",
    "NetworkPolicy": "networking.k8s.io/v1/networkpolicies",
    "Ingress": "networking.k8s.io/v1/ingresses",
}


def desired_children(emulator: Emulator, name: str) -> dict[ChildKey, dict | None]:
    store = Bookstore.parse(bookstore(emulator, name), OperatorSettings())
    return build_children(store)


def live(emulator: Emulator, key: ChildKey) -> dict | None:
    return emulator.live(PLURALS[key.kind], NAMESPACE, key.name)


async def test_create_makes_every_child_with_owner_labels_and_content(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    uid = bookstore(emulator, "downtown")["metadata"]["uid"]
    desired = desired_children(emulator, "downtown")

    await eventually(
        lambda: all((live(emulator, k) is None) == (m is None) for k, m in desired.items()),
        what="every child",
    )
    await eventually(lambda: bookstore(emulator, "downtown").get("status"), what="a status")
    for key, manifest in desired.items():
        if manifest is None:
            continue
        obj = live(emulator, key)
        assert obj is not None
        assert obj["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "bookstore.dev/v1alpha1",
                "kind": "Bookstore",
                "name": "downtown",
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "bookstore-operator"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "downtown"
        for field in set(manifest) - {"metadata", "status"}:
            assert obj[field] == manifest[field], f"{key}: {field}"
    for secret in ("downtown-db", "downtown-api-key"):
        assert emulator.live("v1/secrets", NAMESPACE, secret) is not None
    store = bookstore(emulator, "downtown")
    assert store["status"]["phase"] in {"Progressing", "Pending"}
    assert condition(store, "Ready")["status"] == "False"


async def test_children_marked_ready_make_the_bookstore_ready(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await eventually(lambda: emulator.live_items("apps/v1/deployments"), what="deployments")
    await eventually(lambda: emulator.live_items("apps/v1/statefulsets"), what="statefulset")
    await mark_workloads_ready(emulator, "downtown")

    store = await wait_ready(emulator, "downtown")
    status = store["status"]
    assert status["version"]
    assert status["catalog"] == {"replicas": 2, "readyReplicas": 2, "ready": "2/2"}
    assert status["endpoints"] == {
        "catalog": f"http://downtown-catalog.{NAMESPACE}.svc:8000",
        "orders": f"http://downtown-orders.{NAMESPACE}.svc:8000",
    }
    for kind in ("Ready", "DatabaseReady", "CatalogReady", "OrdersReady"):
        assert condition(store, kind)["status"] == "True", kind
    assert condition(store, "Progressing")["status"] == "False"
    assert set(status) == {
        "observedGeneration", "phase", "version", "conditions", "catalog", "orders", "endpoints"
    }
