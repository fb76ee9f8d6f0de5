"""When the operator applies a child: live objects as a real API server returns them.

The fixtures are `kubectl get -o json` shapes of our children on a v1.36 server: server
defaults (dnsPolicy, terminationMessagePath, probe scheme, clusterIPs, HPA behavior...),
status, managedFields, and on the Deployment an injected sidecar, env var and volume.
"""

from __future__ import annotations

import copy
import json
import pathlib
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from bookstore_operator.apply import (
    APPLIED_HASH,
    LIST_KEYS,
    apply_body,
    contains,
    needs_apply,
    rebuilt,
)
from bookstore_operator.builders import ChildKey, build_children

from tests.operator.unit.stores import (
    SPECS,
    all_manifests,
    bookstore_body,
    parse_store,
    store_for,
)

LIVE = pathlib.Path(__file__).parent / "fixtures" / "live"
SCHEMAS = (
    pathlib.Path(kubernetes_validate.__file__).parent
    / "kubernetes-json-schema"
    / "v1.36.0-local-strict"
)
DEFINITIONS = json.loads((SCHEMAS / "_definitions.json").read_text())["$defs"]
DEPLOYMENT = ChildKey("apps/v1", "Deployment", "downtown-catalog")
SERVICE = ChildKey("v1", "Service", "downtown-catalog")
HPA = ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", "downtown-catalog")
ALLOW_FROM = ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-allow-from")
# fixture -> (spec it was built from, child, creation-only fields)
FIXTURES = {
    "deployment.json": ("defaults", DEPLOYMENT, ("replicas",)),
    "service.json": ("defaults", SERVICE, ()),
    "hpa.json": ("defaults", HPA, ()),
    "networkpolicy.json": ("allow-from", ALLOW_FROM, ()),
}


def live(fixture: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads((LIVE / fixture).read_text())
    return found


def body_for(spec: str, key: ChildKey, fixed: tuple[str, ...] = ()) -> dict[str, Any]:
    manifest = build_children(store_for(spec))[key]
    assert manifest is not None
    return apply_body(manifest, fixed)


def applied(obj: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The live object as it is right after we applied `body` (its hash recorded)."""
    obj = copy.deepcopy(obj)
    obj["metadata"]["annotations"][APPLIED_HASH] = body["metadata"]["annotations"][APPLIED_HASH]
    return obj


@pytest.mark.parametrize("fixture", list(FIXTURES))
def test_our_manifest_plus_server_defaults_and_injected_extras_is_not_drift(fixture: str) -> None:
    spec, key, fixed = FIXTURES[fixture]
    body = body_for(spec, key, fixed)
    assert not needs_apply(applied(live(fixture), body), body)


def test_the_fixture_deployment_really_carries_injected_extras() -> None:
    pod = live("deployment.json")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["catalog", "istio-proxy"]
    assert "HTTP_PROXY" in [e["name"] for e in pod["containers"][0]["env"]]
    assert "istio-envoy" in [v["name"] for v in pod["volumes"]]


def edited(fixture: str, change: Any) -> dict[str, Any]:
    spec, key, fixed = FIXTURES[fixture]
    obj = applied(live(fixture), body_for(spec, key, fixed))
    change(obj)
    return obj


def _container(obj: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][0]
    return found


# (fixture, a hand edit of a field we own)
EDITS = {
    "image": ("deployment.json", lambda o: _container(o).update(image="evil:1")),
    "env value": (
        "deployment.json",
        lambda o: _container(o)["env"][0].update(value="127.0.0.1"),
    ),
    "our env var removed": (
        "deployment.json",
        lambda o: _container(o)["env"].pop(0),
    ),
    "our volume removed": (
        "deployment.json",
        lambda o: o["spec"]["template"]["spec"]["volumes"].pop(0),
    ),
    "memory limit": (
        "deployment.json",
        lambda o: _container(o)["resources"]["limits"].update(memory="8Gi"),
    ),
    "our label": (
        "service.json",
        lambda o: o["metadata"]["labels"].update({"app.kubernetes.io/instance": "other"}),
    ),
    "service port": ("service.json", lambda o: o["spec"]["ports"][0].update(targetPort=9999)),
    "selector": ("service.json", lambda o: o["spec"]["selector"].pop("app.kubernetes.io/name")),
    "hpa max": ("hpa.json", lambda o: o["spec"].update(maxReplicas=100)),
    "hpa metric dropped": ("hpa.json", lambda o: o["spec"]["metrics"].pop()),
    "policy widened": (
        "networkpolicy.json",
        lambda o: o["spec"]["ingress"][0]["from"].append({"namespaceSelector": {}}),
    ),
    "policy peer widened": (
        "networkpolicy.json",
        lambda o: o["spec"]["ingress"][0]["from"][0].update(podSelector={}),
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_field_we_own_changed_by_hand_is_drift(edit: str) -> None:
    fixture, change = EDITS[edit]
    spec, key, fixed = FIXTURES[fixture]
    assert needs_apply(edited(fixture, change), body_for(spec, key, fixed))


def test_a_narrowed_network_policy_is_applied_to_drop_the_namespace_selector() -> None:
    wide = applied(live("networkpolicy.json"), body_for("allow-from", ALLOW_FROM))
    peers = [{"podSelector": {"matchLabels": {"app": "web"}}}]
    store = parse_store(bookstore_body({"networkPolicy": {"allowFrom": peers}}))
    manifest = build_children(store)[ALLOW_FROM]
    assert manifest is not None
    assert needs_apply(wide, apply_body(manifest))


def test_a_field_the_spec_dropped_is_caught_by_the_recorded_hash_alone() -> None:
    # An Ingress that loses its class: to a containment check the stale class is an extra key.
    tls = build_children(store_for("ingress-tls"))[
        ChildKey("networking.k8s.io/v1", "Ingress", "downtown")
    ]
    assert tls is not None
    old_body = apply_body(tls)
    stale = applied(copy.deepcopy(old_body), old_body)
    new_manifest = copy.deepcopy(tls)
    del new_manifest["spec"]["ingressClassName"]
    new_body = apply_body(new_manifest)
    assert contains(stale["spec"], new_body["spec"])  # an extra key never looks like drift...
    assert needs_apply(stale, new_body)  # ...so the changed hash is what triggers the apply
    assert rebuilt(stale, new_body)  # what we build changed: an update, not a repair


@pytest.mark.parametrize("edit", list(EDITS))
def test_a_hand_edit_under_our_recorded_hash_is_drift_not_a_rebuild(edit: str) -> None:
    fixture, change = EDITS[edit]
    spec, key, fixed = FIXTURES[fixture]
    assert not rebuilt(edited(fixture, change), body_for(spec, key, fixed))


def test_a_child_applied_by_an_older_operator_without_hash_is_applied_once() -> None:
    spec, key, fixed = FIXTURES["service.json"]
    obj = live("service.json")
    del obj["metadata"]["annotations"][APPLIED_HASH]
    assert needs_apply(obj, body_for(spec, key, fixed))
    assert not rebuilt(obj, body_for(spec, key, fixed))  # no record: drift, not a rebuild


def test_extra_keyed_items_are_ignored_but_atomic_lists_must_be_equal() -> None:
    names = ("spec", "template", "spec", "containers")
    ours = {"spec": {"template": {"spec": {"containers": [{"name": "a", "image": "x"}]}}}}
    theirs = copy.deepcopy(ours)
    theirs["spec"]["template"]["spec"]["containers"].insert(0, {"name": "sidecar"})
    assert LIST_KEYS[names] == ("name",)
    assert contains(theirs, ours)
    command = {"spec": {"template": {"spec": {"containers": [{"name": "a", "command": ["x"]}]}}}}
    longer = copy.deepcopy(command)
    longer["spec"]["template"]["spec"]["containers"][0]["command"].append("--evil")
    assert not contains(longer, command)


def test_a_port_without_protocol_matches_the_defaulted_tcp_port() -> None:
    desired = {"spec": {"ports": [{"port": 80, "name": "http"}]}}
    served = {"spec": {"ports": [{"port": 80, "name": "http", "protocol": "TCP"}]}}
    assert contains(served, desired)
    assert not contains({"spec": {"ports": [{"port": 80, "protocol": "UDP"}]}}, desired)


def _schema_lists(obj: Any, schema: dict[str, Any], path: tuple[str, ...]) -> Iterator[Any]:
    while "$ref" in schema:
        schema = DEFINITIONS[schema["$ref"].rsplit("/", 1)[-1]]
    if isinstance(obj, dict):
        for key, value in obj.items():
            sub = schema.get("properties", {}).get(key) or schema.get("additionalProperties")
            yield from _schema_lists(value, sub if isinstance(sub, dict) else {}, (*path, key))
    elif isinstance(obj, list):
        keys = schema.get("x-kubernetes-list-map-keys")
        yield path, tuple(keys) if schema.get("x-kubernetes-list-type") == "map" else None
        for item in obj:
            yield from _schema_lists(item, schema.get("items") or {}, path)


def test_list_keys_match_the_kubernetes_schema_for_every_list_we_write() -> None:
    seen: dict[tuple[str, ...], tuple[str, ...] | None] = {}
    for spec in SPECS:
        for manifest in all_manifests(store_for(spec)):
            group, _, version = manifest["apiVersion"].rpartition("/")
            prefix = f"{group.split('.')[0]}-" if group else ""
            name = f"{manifest['kind'].lower()}-{prefix}{version}.json"
            schema = json.loads((SCHEMAS / name).read_text())
            seen.update(_schema_lists(manifest, schema, ()))
    assert ("spec", "template", "spec", "containers", "env") in seen
    for path, keys in seen.items():
        assert LIST_KEYS.get(path) == keys, path
