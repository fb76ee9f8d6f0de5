"""Property-based: after a spec loses optional fields, every applied child equals its new
manifest exactly on our fields, keeps what others injected, and holds nothing of the old one.

The server side is tests/operator/ssa.py, the same server-side apply the emulator runs.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from bookstore_operator.apply import FIELD_MANAGER, HANDOVER_MANAGER, apply_body, needs_apply
from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.kube import autoscaled, creation_only, desired_body, handover_body
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.operator import ssa
from tests.operator.unit.stores import bookstore_body, parse_store
from tests.operator.unit.test_builders_properties import specs

Spec = dict[str, Any]
INJECTOR = "sidecar-injector"


def _drop_namespace_selectors(spec: Spec) -> None:
    for peer in spec["networkPolicy"]["allowFrom"]:
        peer.pop("namespaceSelector", None)
    spec["networkPolicy"]["allowFrom"] = [p for p in spec["networkPolicy"]["allowFrom"] if p]


def _drop_ingress(field: str) -> Callable[[Spec], None]:
    def drop(spec: Spec) -> None:
        spec["ingress"][field] = ""
        if field == "host":
            spec["ingress"]["tlsSecretName"] = ""  # the CRD ties TLS to a host

    return drop


def _drop_resources(spec: Spec) -> None:
    for part in ("catalog", "orders", "database"):
        spec[part]["resources"] = {}


def _drop_targets(spec: Spec) -> None:
    for part in ("catalog", "orders"):
        spec[part]["autoscaling"]["targetMemoryUtilizationPercentage"] = None
        spec[part]["autoscaling"]["targetCPUUtilizationPercentage"] = None


def _drop_version_label(spec: Spec) -> None:
    spec["version"] = "1.0_"  # not a valid label value: the version label goes


NARROWINGS: list[Callable[[Spec], None]] = [
    _drop_namespace_selectors,
    _drop_ingress("host"),
    _drop_ingress("tlsSecretName"),
    _drop_ingress("className"),
    _drop_resources,
    _drop_targets,
    _drop_version_label,
]


def children(spec: Spec) -> dict[ChildKey, dict[str, Any] | None]:
    return build_children(parse_store(bookstore_body(copy.deepcopy(spec))))


def inject(obj: dict[str, Any], owners: ssa.Owners) -> dict[str, Any]:
    """What a mutating webhook adds to a pod template: a sidecar, an env var, a volume."""
    template = obj.get("spec", {}).get("template")
    if obj["kind"] != "Deployment" or template is None:
        return obj
    new = copy.deepcopy(obj)
    pod = new["spec"]["template"]["spec"]
    pod["containers"].append({"name": "proxy", "image": "proxy:1"})
    pod["containers"][0].setdefault("env", []).append({"name": "HTTP_PROXY", "value": "p:3128"})
    pod["volumes"].append({"name": "proxy-certs", "emptyDir": {}})
    ssa.update(obj, new, owners, INJECTOR)
    return new


def without_injected(obj: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(obj)
    if obj["kind"] == "Deployment":
        pod = obj["spec"]["template"]["spec"]
        pod["containers"] = [c for c in pod["containers"] if c["name"] != "proxy"]
        for container in pod["containers"]:
            container["env"] = [e for e in container["env"] if e["name"] != "HTTP_PROXY"]
        pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "proxy-certs"]
    return obj


def converge(
    before: dict[ChildKey, dict[str, Any] | None], after: dict[ChildKey, dict[str, Any] | None]
) -> None:
    """Create every child from `before`, inject extras, apply `after`, check the result."""
    for key, old in before.items():
        new = after[key]
        if old is None or new is None or key.kind == "Secret":
            continue  # created or deleted whole: nothing can be left behind
        fixed = creation_only(key, autoscaled(after))
        owners: ssa.Owners = {}
        created = desired_body(key, old, None, autoscaled(before))
        live = inject(ssa.apply(None, created, owners, FIELD_MANAGER, force=True), owners)
        body = desired_body(key, new, live, autoscaled(after))
        if body == desired_body(key, old, live, autoscaled(before)):
            assert not needs_apply(live, body), key
            continue
        assert needs_apply(live, body), key  # the operator sees it must apply
        if "replicas" in fixed:  # as kube.hand_over_replicas does
            live["metadata"]["managedFields"] = ssa.to_managed_fields(owners, key.api_version)
            handover = handover_body(live, new)
            assert handover is not None
            live = ssa.apply(live, handover, owners, HANDOVER_MANAGER, force=True)
        result = ssa.apply(live, body, owners, FIELD_MANAGER, force=True)
        result["metadata"].pop("managedFields", None)
        expected = copy.deepcopy(body)
        for field in fixed:  # set at creation, owned ever since: still there
            if field in created["spec"]:
                expected["spec"][field] = created["spec"][field]
        assert without_injected(result) == expected, key
        assert not needs_apply(result, body), key  # and then stays quiet
        if key.kind == "Deployment":
            pod = result["spec"]["template"]["spec"]
            assert "proxy" in [c["name"] for c in pod["containers"]]


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), steps=st.permutations(NARROWINGS))
def test_removing_optional_spec_fields_one_by_one_converges_every_child_exactly(
    spec: Spec, steps: list[Callable[[Spec], None]]
) -> None:
    spec["networkPolicy"]["enabled"] = True
    spec["ingress"]["enabled"] = True
    current = children(spec)
    for step in steps:
        step(spec)
        narrowed = children(spec)
        converge(current, narrowed)
        current = narrowed


def test_narrowing_allow_from_removes_the_namespace_selector() -> None:
    wide: Spec = {
        "networkPolicy": {
            "allowFrom": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "web"}}}]
        }
    }
    narrow: Spec = {
        "networkPolicy": {"allowFrom": [{"podSelector": {"matchLabels": {"app": "web"}}}]}
    }
    key = ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-allow-from")
    old, new = children(wide)[key], children(narrow)[key]
    assert old is not None
    assert new is not None
    owners: ssa.Owners = {}
    live = ssa.apply(None, apply_body(old), owners, FIELD_MANAGER, force=True)
    result = ssa.apply(live, apply_body(new), owners, FIELD_MANAGER, force=True)
    assert result["spec"]["ingress"][0]["from"] == [
        {"podSelector": {"matchLabels": {"app": "web"}}}
    ]
