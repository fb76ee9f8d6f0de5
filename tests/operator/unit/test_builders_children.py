"""build_children: identity, order, labels and ownership of every child."""

from __future__ import annotations

import re

import pytest
from bookstore_operator.builders import ChildKey, build_children, labels, selector_labels

from tests.operator.unit.stores import (
    SPECS,
    all_bookstore_bodies,
    all_manifests,
    bookstore_body,
    parse_store,
    store_for,
)

BODIES = all_bookstore_bodies()
DESIGN_LABELS = {
    "app.kubernetes.io/name": "bookstore",
    "app.kubernetes.io/part-of": "bookstore",
    "app.kubernetes.io/managed-by": "bookstore-operator",
}


def test_children_of_the_default_spec_are_named_as_design_says() -> None:
    keys = set(build_children(store_for("defaults")))
    assert keys == {
        ChildKey("v1", "ConfigMap", "downtown-postgres-init"),
        ChildKey("v1", "Service", "downtown-postgres"),
        ChildKey("v1", "Service", "downtown-catalog"),
        ChildKey("v1", "Service", "downtown-orders"),
        ChildKey("apps/v1", "StatefulSet", "downtown-postgres"),
        ChildKey("apps/v1", "Deployment", "downtown-catalog"),
        ChildKey("apps/v1", "Deployment", "downtown-orders"),
        ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", "downtown-catalog"),
        ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", "downtown-orders"),
        ChildKey("policy/v1", "PodDisruptionBudget", "downtown-catalog"),
        ChildKey("policy/v1", "PodDisruptionBudget", "downtown-orders"),
        ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-default-deny"),
        ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-allow-dns"),
        ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-allow-orders-to-catalog"),
        ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-allow-database"),
        ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-allow-from"),
        ChildKey("networking.k8s.io/v1", "Ingress", "downtown"),
    }


@pytest.mark.parametrize("spec_name", SPECS)
def test_key_set_and_order_depend_on_the_name_only(spec_name: str) -> None:
    assert list(build_children(store_for(spec_name))) == list(build_children(store_for("defaults")))


def test_keys_follow_the_bookstore_name() -> None:
    keys = build_children(parse_store(bookstore_body({}, name="uptown")))
    assert all(key.name == "uptown" or key.name.startswith("uptown-") for key in keys)


@pytest.mark.parametrize("spec_name", SPECS)
def test_each_manifest_matches_its_key(spec_name: str) -> None:
    for key, manifest in build_children(store_for(spec_name)).items():
        if manifest is not None:
            assert (
                ChildKey(manifest["apiVersion"], manifest["kind"], manifest["metadata"]["name"])
                == key
            )


def test_configuration_and_services_come_before_workloads_and_autoscalers_after() -> None:
    kinds = [key.kind for key in build_children(store_for("defaults"))]
    first_workload = min(kinds.index("StatefulSet"), kinds.index("Deployment"))
    assert kinds.index("ConfigMap") < first_workload
    assert max(i for i, kind in enumerate(kinds) if kind == "Service") < first_workload
    assert max(i for i, kind in enumerate(kinds) if kind == "NetworkPolicy") < first_workload
    last_deployment = max(i for i, kind in enumerate(kinds) if kind == "Deployment")
    assert kinds.index("HorizontalPodAutoscaler") > last_deployment


@pytest.mark.parametrize("body_name", BODIES)
def test_every_manifest_is_owned_by_the_bookstore_as_controller(body_name: str) -> None:
    store = parse_store(BODIES[body_name])
    for manifest in all_manifests(store):
        assert manifest["metadata"]["namespace"] == "shops"
        assert manifest["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "bookstore.dev/v1alpha1",
                "kind": "Bookstore",
                "name": store.name,
                "uid": "0a1b2c3d-uid",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]


@pytest.mark.parametrize("body_name", BODIES)
def test_every_manifest_and_pod_template_carries_the_design_labels(body_name: str) -> None:
    store = parse_store(BODIES[body_name])
    for manifest in all_manifests(store):
        metas = [manifest["metadata"]]
        if "template" in manifest.get("spec", {}):
            metas.append(manifest["spec"]["template"]["metadata"])
        for meta in metas:
            assert (
                meta["labels"].items()
                >= {
                    **DESIGN_LABELS,
                    "app.kubernetes.io/instance": store.name,
                }.items()
            )


@pytest.mark.parametrize(
    ("kind", "suffix", "component"),
    [
        ("Deployment", "catalog", "catalog"),
        ("Deployment", "orders", "orders"),
        ("Service", "catalog", "catalog"),
        ("HorizontalPodAutoscaler", "orders", "orders"),
        ("PodDisruptionBudget", "catalog", "catalog"),
        ("StatefulSet", "postgres", "database"),
        ("Service", "postgres", "database"),
        ("ConfigMap", "postgres-init", "database"),
        ("NetworkPolicy", "default-deny", None),
        ("Ingress", "", None),
    ],
)
def test_component_label_names_the_part_a_child_serves(
    kind: str, suffix: str, component: str | None
) -> None:
    store = store_for("ingress-tls")
    [manifest] = [
        m
        for key, m in build_children(store).items()
        if key.kind == kind and key.name == store.child_name(suffix)
    ]
    assert manifest is not None
    assert manifest["metadata"]["labels"].get("app.kubernetes.io/component") == component


@pytest.mark.parametrize("spec_name", SPECS)
def test_workload_selectors_match_their_pod_labels_and_omit_the_version(spec_name: str) -> None:
    store = store_for(spec_name)
    for manifest in build_children(store).values():
        if manifest is None or manifest["kind"] not in ("Deployment", "StatefulSet"):
            continue
        selector = manifest["spec"]["selector"]["matchLabels"]
        assert selector.items() <= manifest["spec"]["template"]["metadata"]["labels"].items()
        assert "app.kubernetes.io/version" not in selector
        assert "app.kubernetes.io/version" in manifest["spec"]["template"]["metadata"]["labels"]


@pytest.mark.parametrize("component", ["catalog", "orders"])
def test_service_and_pdb_select_exactly_the_deployment_pods(component: str) -> None:
    store = store_for("defaults")
    children = build_children(store)
    name = store.child_name(component)
    service = children[ChildKey("v1", "Service", name)]
    pdb = children[ChildKey("policy/v1", "PodDisruptionBudget", name)]
    deployment = children[ChildKey("apps/v1", "Deployment", name)]
    assert service is not None
    assert pdb is not None
    assert deployment is not None
    assert service["spec"]["selector"] == selector_labels(store, component)
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_labels_of_a_shared_child_omit_the_component() -> None:
    store = store_for("defaults")
    assert "app.kubernetes.io/component" not in labels(store, None)
    assert labels(store, "database")["app.kubernetes.io/component"] == "database"


def test_the_longest_name_the_crd_allows_keeps_every_child_name_valid() -> None:
    store = parse_store(bookstore_body({}, name="a" * 40))
    dns_label = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    for manifest in all_manifests(store):
        name = manifest["metadata"]["name"]
        assert len(name) <= 253
        if manifest["kind"] == "Service":
            assert len(name) <= 63
            assert dns_label.match(name)
        if manifest["kind"] == "StatefulSet":
            # Pods carry `controller-revision-hash: <name>-<10 characters>`, a label value.
            assert len(f"{name}-0123456789") <= 63
        for value in manifest["metadata"]["labels"].values():
            assert len(value) <= 63
