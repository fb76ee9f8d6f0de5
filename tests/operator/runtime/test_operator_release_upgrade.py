"""Upgrading the operator from release 0.1.0 restarts no bookstore pod.

The emulator is seeded with what release 0.1.0 left in the cluster for a Bookstore that
serves (tests/operator/fixtures/release-0.1.0, rendered by that release's code): the
Bookstore with its status, kopf's annotations and finalizer, the generated Secrets, every
child written by server-side apply as field manager `bookstore-operator`, and the
workloads' status as their controllers report it. Then this release's operator starts.
"""

from __future__ import annotations

import copy
from typing import Any

import kopf
from bookstore_operator.apply import FIELD_MANAGER
from bookstore_operator.templates import RELEASE_ANNOTATION, TEMPLATE_RELEASE

from tests.operator import previous_release
from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    Operator,
    api,
    bookstore,
    create_claims,
    eventually,
    mark_workloads_ready,
    reconciles,
    wait_ready,
)
from tests.operator.runtime.emulator import APPLY_PATCH, Emulator
from tests.operator.runtime.test_drift import DEPLOYMENTS

STORE = "pinned"  # pins spec.version, so this release's default version does not matter
WORKLOADS = ("apps/v1/deployments", "apps/v1/statefulsets")
# A reconcile reads the Bookstore once, and once more per workload whose template it holds
# (kube.SpecApplied): this many reads make at least two whole reconciles.
READS_PER_TWO_RECONCILES = 2 * 4


async def write(
    emulator: Emulator, method: str, path: str, body: Any, *, manager: str, content_type: str
) -> dict[str, Any]:
    """A write made as another client (field manager), e.g. the previous operator."""
    params = {"fieldManager": manager}
    if content_type == APPLY_PATCH:
        params["force"] = "true"
    headers = {"Content-Type": content_type}
    async with emulator.request(
        method, path, json=body, params=params, headers=headers
    ) as response:
        payload: dict[str, Any] = await response.json()
        assert response.status < 300, payload
        return payload


def path_of(obj: dict[str, Any], *, collection: bool = False) -> str:
    api_version, kind = obj["apiVersion"], obj["kind"]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    plural = {
        "NetworkPolicy": "networkpolicies",
        "Ingress": "ingresses",
        "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    }.get(kind, f"{kind.lower()}s")
    base = f"{prefix}/namespaces/{NAMESPACE}/{plural}"
    return base if collection else f"{base}/{obj['metadata']['name']}"


async def seed_previous_release(emulator: Emulator, name: str) -> dict[str, Any]:
    """Leave in the emulator what release 0.1.0 left for a Bookstore that serves."""
    fixture = previous_release.store(name)
    stored = fixture["bookstore"]
    user_view = {k: v for k, v in stored.items() if k != "status"}
    user_view["metadata"] = {"name": name, "namespace": NAMESPACE}
    await api(emulator, "POST", BOOKSTORES, user_view)

    def as_stored(obj: dict[str, Any]) -> None:  # the uid the fixture's children point at
        obj["metadata"]["uid"] = stored["metadata"]["uid"]

    bookstores = "bookstore.dev/v1alpha1/bookstores"
    await emulator.mutate(bookstores, NAMESPACE, name, as_stored, manager="kube-apiserver")
    # kopf of the previous operator: its timer's finalizer and the last handled spec.
    diffbase = kopf.AnnotationsDiffBaseStorage(
        prefix="bookstore.dev", key="last-handled-configuration"
    )
    body = kopf.Body(bookstore(emulator, name))  # type: ignore[arg-type]
    patch = kopf.Patch()
    diffbase.store(body=body, patch=patch, essence=diffbase.build(body=body))
    kopf_meta = {"finalizers": ["bookstore.dev/finalizer"], **dict(patch)["metadata"]}
    merge = "application/merge-patch+json"
    await write(
        emulator,
        "PATCH",
        f"{BOOKSTORES}/{name}",
        {"metadata": kopf_meta},
        manager="kopf",
        content_type=merge,
    )
    for secret in fixture["created"]:
        path = path_of(secret, collection=True)
        await write(emulator, "POST", path, secret, manager=FIELD_MANAGER, content_type="")
    for child in fixture["applied"]:
        await write(
            emulator,
            "PATCH",
            path_of(child),
            child,
            manager=FIELD_MANAGER,
            content_type=APPLY_PATCH,
        )
    statefulset = emulator.live("apps/v1/statefulsets", NAMESPACE, f"{name}-postgres")
    if statefulset is not None:
        await create_claims(emulator, statefulset)
        [template] = statefulset["spec"]["volumeClaimTemplates"]
        claim = f"{template['metadata']['name']}-{name}-postgres-0"
        capacity = {"capacity": template["spec"]["resources"]["requests"]}
        await api(
            emulator,
            "PATCH",
            f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/{claim}/status",
            {"status": capacity},
            merge=True,
        )
    await mark_workloads_ready(emulator, name, database=statefulset is not None)
    await write(
        emulator,
        "PATCH",
        f"{BOOKSTORES}/{name}/status",
        {"status": stored["status"]},
        manager=FIELD_MANAGER,
        content_type=merge,
    )
    seeded = bookstore(emulator, name)
    assert seeded["status"]["observedGeneration"] == seeded["metadata"]["generation"]
    return seeded


def workloads(emulator: Emulator, name: str) -> dict[str, dict[str, Any]]:
    return {
        obj["metadata"]["name"]: obj
        for plural in WORKLOADS
        for obj in emulator.live_items(plural)
        if obj["metadata"]["labels"].get("app.kubernetes.io/instance") == name
    }


def described(emulator: Emulator, since: int) -> list[str]:
    """Every write the operator made, as `METHOD path`."""
    return [f"{r.method.value} {r.url.path}" for r in emulator.writes(since=since)]


async def test_upgraded_operator_keeps_every_pod_template_until_the_spec_changes(
    emulator: Emulator,
) -> None:
    await seed_previous_release(emulator, STORE)
    before = copy.deepcopy(workloads(emulator, STORE))
    assert set(before) == {f"{STORE}-catalog", f"{STORE}-orders", f"{STORE}-postgres"}
    start = len(emulator.requests_made)

    operator = Operator(emulator)
    await operator.start()
    try:
        await eventually(
            lambda: reconciles(emulator, STORE, since=start) >= READS_PER_TWO_RECONCILES,
            what="two reconciles by the upgraded operator",
        )
        after = workloads(emulator, STORE)
        for name, old in before.items():
            # No pod restarts: every pod template is the one release 0.1.0 applied, and the
            # workload was not even written (same resourceVersion).
            assert after[name]["spec"]["template"] == old["spec"]["template"], name
            assert RELEASE_ANNOTATION not in after[name]["metadata"].get("annotations", {})
            assert after[name]["metadata"]["resourceVersion"] == old["metadata"]["resourceVersion"]
        writes = described(emulator, start)
        # What the upgraded operator wrote: no workload; other children only where this
        # release changed them (e.g. a NetworkPolicy), the Bookstore's status and kopf's
        # bookkeeping, and events.
        children = [w for w in writes if "/bookstores/" not in w and not w.endswith("/events")]
        assert not [w for w in children if "/deployments/" in w or "/statefulsets/" in w]
        assert all(w.startswith("PATCH") for w in children), writes  # applies, no re-creation
        store = bookstore(emulator, STORE)
        assert store["status"]["phase"] == "Ready"
        assert store["status"]["version"] == "0.1.0"
        # What this release builds differently is an update, not a repair of drift.
        notes = [
            (e["reason"], e["message"])
            for e in emulator.live_items("v1/events")
            if e["involvedObject"]["name"] == STORE
        ]
        assert not [note for note in notes if note[0] == "Repaired"], notes
        updated = [message for reason, message in notes if reason == "Updated"]
        assert len(updated) == len(children), (updated, children)
        assert all("builds it differently (same spec)" in message for message in updated)

        # The user changes the spec: the new pod templates, with the marker, go in.
        change = {"spec": {"catalog": {"resources": {"requests": {"cpu": "300m"}}}}}
        await api(emulator, "PATCH", f"{BOOKSTORES}/{STORE}", change, merge=True)

        def rolled() -> bool:
            now = workloads(emulator, STORE)
            return all(
                now[name]["metadata"].get("annotations", {}).get(RELEASE_ANNOTATION)
                == str(TEMPLATE_RELEASE)
                for name in before
            )

        await eventually(rolled, what="the new templates", show=lambda: workloads(emulator, STORE))
        now = workloads(emulator, STORE)
        catalog = now[f"{STORE}-catalog"]["spec"]["template"]["spec"]["containers"][0]
        assert catalog["resources"]["requests"]["cpu"] == "300m"
        for service in ("catalog", "orders"):
            [container] = now[f"{STORE}-{service}"]["spec"]["template"]["spec"]["containers"]
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["MIGRATE_ON_START"] == "false"
            assert container["startupProbe"]["failureThreshold"] == 30
        # The database's pod template did not change in this release: the marker only.
        postgres = f"{STORE}-postgres"
        assert now[postgres]["spec"]["template"] == before[postgres]["spec"]["template"]
        assert now[postgres]["metadata"]["generation"] == before[postgres]["metadata"]["generation"]
        await mark_workloads_ready(emulator, STORE)
        await wait_ready(emulator, STORE)
    finally:
        await operator.stop()


async def test_a_bookstore_that_was_not_settled_gets_the_new_templates_at_once(
    emulator: Emulator,
) -> None:
    """A spec changed while no operator ran (observedGeneration behind): no template is held."""
    await seed_previous_release(emulator, STORE)
    change = {"spec": {"orders": {"replicas": 4}}}
    await api(emulator, "PATCH", f"{BOOKSTORES}/{STORE}", change, merge=True)

    operator = Operator(emulator)
    await operator.start()
    try:

        def updated() -> dict[str, Any] | None:
            live = emulator.live("apps/v1/deployments", NAMESPACE, f"{STORE}-orders")
            annotations = (live or {}).get("metadata", {}).get("annotations", {})
            marked = annotations.get(RELEASE_ANNOTATION) == str(TEMPLATE_RELEASE)
            return live if marked else None

        orders = await eventually(updated, what="the orders Deployment with the new template")
        assert orders["spec"]["replicas"] == 4
        [container] = orders["spec"]["template"]["spec"]["containers"]
        assert {"name": "MIGRATE_ON_START", "value": "false"} in container["env"]
    finally:
        await operator.stop()


async def test_annotating_a_workload_adopts_the_new_template_without_a_spec_change(
    emulator: Emulator,
) -> None:
    await seed_previous_release(emulator, STORE)
    operator = Operator(emulator)
    await operator.start()
    try:
        start = len(emulator.requests_made)
        await eventually(
            lambda: reconciles(emulator, STORE, since=start) >= READS_PER_TWO_RECONCILES,
            what="two reconciles",
        )
        catalog = f"{STORE}-catalog"
        adopt = {"metadata": {"annotations": {RELEASE_ANNOTATION: "adopt"}}}
        await api(emulator, "PATCH", f"{DEPLOYMENTS}/{catalog}", adopt, merge=True)

        def adopted() -> bool:
            live = emulator.live("apps/v1/deployments", NAMESPACE, catalog) or {}
            marker = live["metadata"].get("annotations", {}).get(RELEASE_ANNOTATION)
            return marker == str(TEMPLATE_RELEASE)

        await eventually(adopted, what="the catalog Deployment adopting the new template")
        [container] = (emulator.live("apps/v1/deployments", NAMESPACE, catalog) or {})["spec"][
            "template"
        ]["spec"]["containers"]
        assert {"name": "MIGRATE_ON_START", "value": "false"} in container["env"]
        orders = emulator.live("apps/v1/deployments", NAMESPACE, f"{STORE}-orders") or {}
        assert RELEASE_ANNOTATION not in orders["metadata"].get("annotations", {})
    finally:
        await operator.stop()
