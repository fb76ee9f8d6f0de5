"""Create, become ready, change, and delete a Bookstore through the real kopf runtime."""

from __future__ import annotations

import asyncio
from typing import Any

from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings

from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    RESYNC_SECONDS,
    SCHEMA_HEAD,
    Operator,
    api,
    bookstore,
    complete_migrations,
    condition,
    create_bookstore,
    eventually,
    mark_ready,
    mark_workloads_ready,
    migration_jobs,
    release_deployments,
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
CATALOG = ChildKey("apps/v1", "Deployment", "downtown-catalog")
POSTGRES = ChildKey("apps/v1", "StatefulSet", "downtown-postgres")


def existing(emulator: Emulator, key: ChildKey) -> dict[str, Any]:
    found = live(emulator, key)
    assert found is not None, f"{key} does not exist"
    return found


def desired_children(emulator: Emulator, name: str) -> dict[ChildKey, dict[str, Any] | None]:
    store = Bookstore.parse(bookstore(emulator, name), OperatorSettings())
    return build_children(store)


def live(emulator: Emulator, key: ChildKey) -> dict[str, Any] | None:
    return emulator.live(PLURALS[key.kind], NAMESPACE, key.name)


async def test_create_makes_every_child_with_owner_labels_and_content(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    uid = bookstore(emulator, "downtown")["metadata"]["uid"]
    desired = desired_children(emulator, "downtown")
    # The Deployments (and their autoscalers) wait for the first version's migrations.
    held = {key for key in desired if key.kind in ("Deployment", "HorizontalPodAutoscaler")}

    await eventually(
        lambda: all(
            (live(emulator, k) is None) == (m is None) for k, m in desired.items() if k not in held
        ),
        what="every child but the Deployments and their autoscalers",
    )
    assert all(live(emulator, key) is None for key in held)
    await mark_ready(emulator, "statefulsets", existing(emulator, POSTGRES))
    await eventually(lambda: len(migration_jobs(emulator, "downtown")) == 2, what="2 Jobs")
    assert all(live(emulator, key) is None for key in held)
    await complete_migrations(emulator, "downtown")
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
        "observedGeneration",
        "phase",
        "version",
        "conditions",
        "catalog",
        "orders",
        "endpoints",
        "database",
    }
    # The data PVC's size, and the schema revision each migration Job reported.
    assert status["database"] == {
        "storage": "5Gi",
        "schemaRevision": {"catalog": SCHEMA_HEAD, "orders": SCHEMA_HEAD},
    }


async def test_spec_change_rolls_out_and_is_ready_at_the_new_generation(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    generation_before = existing(emulator, CATALOG)["metadata"]["generation"]

    requests = {"cpu": "300m", "memory": "200Mi"}
    change = {"spec": {"catalog": {"resources": {"requests": requests}}}}
    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", change, merge=True)

    def rolling_out() -> bool:
        store = bookstore(emulator, "downtown")
        progressing = condition(store, "Progressing")
        return (
            store["status"]["observedGeneration"] == 2
            and progressing.get("status") == "True"
            and progressing.get("observedGeneration") == 2
            and store["status"]["phase"] == "Progressing"
            and condition(store, "Ready")["status"] == "False"
        )

    await eventually(rolling_out, what="Progressing=True at generation 2")
    catalog = existing(emulator, CATALOG)
    assert catalog["metadata"]["generation"] > generation_before
    container = catalog["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == requests

    await mark_workloads_ready(emulator, "downtown")
    store = await wait_ready(emulator, "downtown")
    assert store["status"]["observedGeneration"] == 2
    assert condition(store, "Progressing")["status"] == "False"
    assert all(c["observedGeneration"] == 2 for c in store["status"]["conditions"])


async def test_conditions_keep_their_transition_time_while_their_status_holds(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    before = condition(await wait_ready(emulator, "downtown"), "Ready")

    change = {"spec": {"sampleData": True}}  # changes the pods' environment, not readiness
    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", change, merge=True)
    await eventually(
        lambda: bookstore(emulator, "downtown")["status"]["observedGeneration"] == 2,
        what="generation 2 observed",
    )
    await mark_workloads_ready(emulator, "downtown")
    after = condition(await wait_ready(emulator, "downtown"), "Ready")
    if after["lastTransitionTime"] == before["lastTransitionTime"]:
        # Ready never went False in between (same second): nothing transitioned.
        assert after["status"] == before["status"] == "True"
    progressing = condition(bookstore(emulator, "downtown"), "Progressing")
    assert progressing["status"] == "False"


async def test_deleted_bookstore_releases_finalizers_and_owns_every_child(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    uid = bookstore(emulator, "downtown")["metadata"]["uid"]
    await release_deployments(emulator, "downtown")
    await eventually(
        lambda: emulator.live_items("networking.k8s.io/v1/networkpolicies"), what="policies"
    )

    await api(emulator, "DELETE", f"{BOOKSTORES}/downtown")
    await eventually(
        lambda: emulator.live("bookstore.dev/v1alpha1/bookstores", NAMESPACE, "downtown") is None,
        what="the Bookstore to be gone (finalizers released)",
    )
    # kmock has no garbage collector: prove the cascade would take every child.
    children = [obj for plural in PLURALS.values() for obj in emulator.live_items(plural)]
    assert len(children) >= 10
    for child in children:
        refs = child["metadata"].get("ownerReferences") or []
        assert any(r["uid"] == uid and r["controller"] for r in refs), child["metadata"]["name"]


async def test_bookstore_deleted_during_a_slow_resync_goes_within_seconds(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    # Every reconcile now spends 2 s in the middle (reading the data PVC): a resync is
    # under way when the deletion comes, and kopf must wait for it before letting go.
    emulator.latency[("GET", "persistentvolumeclaims")] = 2.0
    await asyncio.sleep(2 * RESYNC_SECONDS)
    await api(emulator, "DELETE", f"{BOOKSTORES}/downtown")
    await eventually(
        lambda: emulator.live("bookstore.dev/v1alpha1/bookstores", NAMESPACE, "downtown") is None,
        within=15,  # kopf's default re-check of a timer that did not stop at once is 60 s
        what="the Bookstore to be gone (finalizers released)",
    )


async def test_events_on_the_bookstore_explain_what_the_operator_did(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    await api(
        emulator,
        "PATCH",
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/downtown-catalog",
        {"metadata": {"labels": {"app.kubernetes.io/part-of": "hijacked"}}},
        merge=True,
    )

    def events() -> list[tuple[str, str, str]]:
        return [
            (e["type"], e["reason"], e["message"])
            for e in emulator.live_items("v1/events")
            if e["involvedObject"]["kind"] == "Bookstore"
            and e["involvedObject"]["name"] == "downtown"
        ]

    repaired = (
        "Normal",
        "Repaired",
        "Repaired Deployment/downtown-catalog: updated it, as it differed from the spec",
    )
    await eventually(
        lambda: repaired in events(), what="a Normal event for the drift repair", show=events
    )
    assert ("Normal", "Created", "Created Deployment/downtown-catalog") in events()
    assert ("Normal", "Created", "Created Secret/downtown-db") in events()
    # Ready held through the repair: the rollout completed once, at creation.
    assert [reason for _, reason, _ in events()].count("RolloutComplete") == 1
    assert not any(kind == "Warning" for kind, _, _ in events())
