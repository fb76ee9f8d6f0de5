"""What the reconciler compares and patches on a live child: immutable fields left out."""

from __future__ import annotations

from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.kube import managed_part, updatable_part

from tests.operator.unit.stores import store_for

CHILDREN = build_children(store_for("defaults"))


def test_stateful_set_claim_templates_are_left_out_of_drift_checks_and_patches() -> None:
    manifest = CHILDREN[ChildKey("apps/v1", "StatefulSet", "downtown-postgres")]
    assert manifest is not None
    part = updatable_part(manifest)
    assert "volumeClaimTemplates" not in part["spec"]
    assert "volumeClaimTemplates" in manifest["spec"]  # still set when the object is created
    assert part["spec"]["template"] == manifest["spec"]["template"]
    assert part["metadata"] == managed_part(manifest)["metadata"]


def test_every_other_child_is_compared_and_patched_whole() -> None:
    for key, manifest in CHILDREN.items():
        if manifest is not None and key.kind != "StatefulSet":
            assert updatable_part(manifest) == managed_part(manifest), key
