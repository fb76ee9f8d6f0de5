"""Server-side apply end to end: dropped fields go, injected ones stay, replicas stay the HPA's."""

from __future__ import annotations

from typing import Any

from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    RESYNC_SECONDS,
    Operator,
    api,
    bookstore,
    condition,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    reconciles,
    release_deployments,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

POLICIES = "networking.k8s.io/v1/networkpolicies"
DEPLOYMENTS = "apps/v1/deployments"
WEB = {"podSelector": {"matchLabels": {"app": "web"}}}


def managers(obj: dict[str, Any]) -> set[tuple[str, str]]:
    return {(e["manager"], e["operation"]) for e in obj["metadata"].get("managedFields") or []}


async def change_spec(emulator: Emulator, spec: dict[str, Any]) -> None:
    await api(emulator, "PATCH", f"{BOOKSTORES}/downtown", {"spec": spec}, merge=True)


async def test_narrowing_allow_from_removes_the_namespace_selector(
    emulator: Emulator, operator: Operator
) -> None:
    wide = {"namespaceSelector": {}, **WEB}
    await create_bookstore(emulator, "downtown", {"networkPolicy": {"allowFrom": [wide]}})

    def peers() -> list[dict[str, Any]] | None:
        policy = emulator.live(POLICIES, NAMESPACE, "downtown-allow-from")
        return None if policy is None else policy["spec"]["ingress"][0]["from"]

    await eventually(lambda: peers() == [wide], what="the wide policy")
    policy = emulator.live(POLICIES, NAMESPACE, "downtown-allow-from")
    assert policy is not None
    assert ("bookstore-operator", "Apply") in managers(policy)

    await change_spec(emulator, {"networkPolicy": {"allowFrom": [WEB]}})
    await eventually(lambda: peers() == [WEB], what="namespaceSelector removed", show=peers)


async def test_injected_sidecar_stays_and_causes_no_writes_and_no_ready_flap(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown")
    await release_deployments(emulator, "downtown")

    def inject(obj: dict[str, Any]) -> None:
        pod = obj["spec"]["template"]["spec"]
        pod["containers"].append({"name": "istio-proxy", "image": "proxyv2:1.22"})
        pod["containers"][0]["env"].append({"name": "HTTP_PROXY", "value": "http://proxy:3128"})
        pod["volumes"].append({"name": "istio-envoy", "emptyDir": {"medium": "Memory"}})

    # A mutating webhook (e.g. Kyverno) adds a sidecar, an env var and a volume.
    mutated = await emulator.mutate(
        DEPLOYMENTS, NAMESPACE, "downtown-catalog", inject, manager="istio-sidecar-injector"
    )
    assert ("istio-sidecar-injector", "Update") in managers(mutated)
    await mark_workloads_ready(emulator, "downtown")
    ready = condition(await wait_ready(emulator, "downtown"), "Ready")
    start = len(emulator.requests_made)
    await eventually(
        lambda: reconciles(emulator, "downtown", since=start) >= 3,
        within=10 * RESYNC_SECONDS + 10,
        what="three reconciles",
    )
    child_writes = [
        f"{r.method.value} {r.url.path}"
        for r in emulator.writes(since=start)
        if "/bookstores/" not in r.url.path and not r.url.path.endswith("/events")
    ]
    assert child_writes == []
    live = emulator.live(DEPLOYMENTS, NAMESPACE, "downtown-catalog")
    assert live is not None
    assert live["spec"]["template"]["spec"] == mutated["spec"]["template"]["spec"]
    assert condition(bookstore(emulator, "downtown"), "Ready") == ready


async def test_autoscaled_deployment_starts_at_min_replicas_and_is_never_applied_replicas(
    emulator: Emulator, operator: Operator
) -> None:
    scaling = {"autoscaling": {"minReplicas": 3, "maxReplicas": 6}}
    await create_bookstore(emulator, "downtown", {"catalog": scaling})
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")
    live = emulator.live(DEPLOYMENTS, NAMESPACE, "downtown-catalog")
    assert live is not None
    assert live["spec"]["replicas"] == 3

    # The HPA scales up; then a spec change makes the operator apply the Deployment again.
    await emulator.mutate(
        DEPLOYMENTS,
        NAMESPACE,
        "downtown-catalog",
        lambda obj: obj["spec"].update(replicas=5),
        manager="kube-controller-manager",
    )
    start = len(emulator.requests_made)
    await change_spec(emulator, {"catalog": {**scaling, "resources": {"limits": {"cpu": "2"}}}})

    def cpu_limit() -> str:
        deployment = emulator.live(DEPLOYMENTS, NAMESPACE, "downtown-catalog") or {}
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        return str(container["resources"]["limits"]["cpu"])

    await eventually(lambda: cpu_limit() == "2", what="the new limit applied")
    catalog = [r for r in emulator.applies(since=start) if r.url.path.endswith("-catalog")]
    assert catalog, "the Deployment was applied"
    assert all("replicas" not in (r.data.get("spec") or {}) for r in catalog)
    live = emulator.live(DEPLOYMENTS, NAMESPACE, "downtown-catalog")
    assert live is not None
    assert live["spec"]["replicas"] == 5


async def test_switching_autoscaling_off_and_on_never_resets_replicas_to_one(
    emulator: Emulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "downtown", {"catalog": {"autoscaling": {"enabled": False}}})
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")

    def replicas() -> int:
        deployment = emulator.live(DEPLOYMENTS, NAMESPACE, "downtown-catalog") or {}
        return int(deployment["spec"]["replicas"])

    def hpa() -> dict[str, Any] | None:
        return emulator.live(
            "autoscaling/v2/horizontalpodautoscalers", NAMESPACE, "downtown-catalog"
        )

    assert replicas() == 2  # spec.catalog.replicas, applied by us
    start = len(emulator.requests_made)
    await change_spec(emulator, {"catalog": {"autoscaling": {"enabled": True}}})
    await eventually(lambda: hpa() is not None, what="the HPA created")
    await eventually(lambda: emulator.applies(since=start), what="the Deployment applied")
    await eventually(lambda: reconciles(emulator, "downtown", since=start) >= 2, what="resyncs")
    assert replicas() == 2
    handed = emulator.applies(since=start, manager="bookstore-operator-handover")
    assert [r.data["spec"] for r in handed] == [{"replicas": 2}]
    assert all(
        "replicas" not in (r.data.get("spec") or {})
        for r in emulator.applies(since=start, manager="bookstore-operator")
        if r.url.path.endswith("/deployments/downtown-catalog")
    )

    await change_spec(emulator, {"catalog": {"replicas": 4, "autoscaling": {"enabled": False}}})
    await eventually(lambda: replicas() == 4 and hpa() is None, what="fixed replicas again")
    start = len(emulator.requests_made)
    await change_spec(emulator, {"catalog": {"replicas": 4, "autoscaling": {"enabled": True}}})
    await eventually(lambda: hpa() is not None, what="the HPA created again")
    await eventually(lambda: reconciles(emulator, "downtown", since=start) >= 2, what="resyncs")
    assert replicas() == 4
