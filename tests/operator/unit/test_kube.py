"""What the reconciler applies to a live child: creation-only fields, hash, field manager."""

from __future__ import annotations

import pytest
from bookstore_operator import __version__
from bookstore_operator.apply import APPLIED_HASH, apply_body
from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.kube import USER_AGENT, Kube, autoscaled, creation_only
from bookstore_operator.settings import OperatorSettings

from tests.operator.unit.stores import store_for

CHILDREN = build_children(store_for("defaults"))
STATEFUL_SET = ChildKey("apps/v1", "StatefulSet", "downtown-postgres")
CATALOG = ChildKey("apps/v1", "Deployment", "downtown-catalog")


def test_stateful_set_claim_templates_are_set_at_creation_and_never_applied_again() -> None:
    manifest = CHILDREN[STATEFUL_SET]
    assert manifest is not None
    fixed = creation_only(STATEFUL_SET, autoscaled(CHILDREN))
    assert fixed == ("volumeClaimTemplates",)
    assert "volumeClaimTemplates" not in apply_body(manifest, fixed)["spec"]
    created = apply_body(manifest, fixed, creating=True)
    assert created["spec"]["volumeClaimTemplates"] == manifest["spec"]["volumeClaimTemplates"]
    # Both record the hash of what later applies send, so creation is not seen as drift.
    assert (
        created["metadata"]["annotations"] == apply_body(manifest, fixed)["metadata"]["annotations"]
    )


def test_autoscaled_deployment_is_created_with_min_replicas_and_applied_without() -> None:
    manifest = CHILDREN[CATALOG]
    assert manifest is not None
    fixed = creation_only(CATALOG, autoscaled(CHILDREN))
    assert fixed == ("replicas",)
    assert apply_body(manifest, fixed, creating=True)["spec"]["replicas"] == 2
    assert "replicas" not in apply_body(manifest, fixed)["spec"]


def test_fixed_replicas_are_applied_on_every_apply() -> None:
    children = build_children(store_for("fixed-replicas"))
    manifest = children[CATALOG]
    assert manifest is not None
    fixed = creation_only(CATALOG, autoscaled(children))
    assert fixed == ()
    assert apply_body(manifest, fixed)["spec"]["replicas"] == 3


def test_apply_body_holds_identity_our_metadata_and_no_server_fields() -> None:
    for key, manifest in CHILDREN.items():
        if manifest is None:
            continue
        body = apply_body(manifest)
        assert (body["apiVersion"], body["kind"]) == (key.api_version, key.kind)
        assert set(body["metadata"]) == {
            "name",
            "namespace",
            "labels",
            "annotations",
            "ownerReferences",
        }
        assert len(body["metadata"]["annotations"][APPLIED_HASH]) == 16
        assert "status" not in body


def hash_of(spec: str, key: ChildKey) -> str:
    manifest = build_children(store_for(spec))[key]
    assert manifest is not None
    return str(apply_body(manifest)["metadata"]["annotations"][APPLIED_HASH])


def test_the_recorded_hash_changes_with_the_manifest_and_only_then() -> None:
    ingress = ChildKey("networking.k8s.io/v1", "Ingress", "downtown")
    deny = ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-default-deny")
    assert hash_of("ingress-tls", ingress) != hash_of("ingress-plain", ingress)
    assert hash_of("allow-from", deny) == hash_of("defaults", deny)


@pytest.mark.parametrize("timeout", [0.5, 30.0, 120.0])
def test_client_names_itself_and_bounds_every_call_with_timeouts(timeout: float) -> None:
    kube = Kube.for_host("http://127.0.0.1:1", OperatorSettings(api_timeout_seconds=timeout))
    try:
        assert f"bookstore-operator/{__version__}" == USER_AGENT
        assert kube._api.user_agent == USER_AGENT
        assert kube.timeout == (min(5.0, timeout), timeout)
    finally:
        kube.close()
