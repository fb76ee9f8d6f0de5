"""Every Bookstore the previous release (0.1.0) accepted is read unchanged by this CRD.

Upgrading the chart replaces the CRD in place: objects stored under the old schema are read
through the new one (pruned, then defaulted on read) and must still pass its validation on
their next write (a status update, or the user applying the same file again), with every CEL
transition rule seeing the stored object as oldSelf. The version stays v1alpha1, served and
stored, so nothing needs a conversion or a storage migration.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.operator import previous_release
from tests.operator.unit.crd_support import (
    apply_defaults,
    cel_violations,
    load_crd,
    openapi_schema,
    prune,
    schema_errors,
)

CURRENT, PREVIOUS = load_crd(), previous_release.crd()
NEW, OLD = openapi_schema(CURRENT), openapi_schema(PREVIOUS)


def pruned(schema: dict[str, Any], obj: dict[str, Any]) -> dict[str, Any]:
    """Pruned like the API server: spec and status by the schema (metadata is ObjectMeta)."""
    fields = schema["properties"]
    return {
        key: prune(fields[key], value) if key in ("spec", "status") else value
        for key, value in obj.items()
        if key in fields
    }


def as_user_applied() -> dict[str, dict[str, Any]]:
    """The previous release's examples, stored by its API server (pruned, defaulted)."""
    found = {}
    for body in previous_release.example_bookstores():
        raw = {**body, "metadata": {**body["metadata"], "namespace": "shop"}}
        found[f"example {body['metadata']['name']}"] = apply_defaults(OLD, pruned(OLD, raw))
    return found


def stored_objects() -> dict[str, dict[str, Any]]:
    """Examples as stored, and fixture stores with the status that release's operator wrote."""
    stores = {
        f"store {name}": previous_release.store(name)["bookstore"]
        for name in previous_release.STORES
    }
    return {**as_user_applied(), **stores}


STORED = stored_objects()


def extends(new: Any, old: Any) -> bool:
    """True when `new` holds every field of `old` with the same value (it may add fields)."""
    if isinstance(old, dict):
        return isinstance(new, dict) and all(
            k in new and extends(new[k], v) for k, v in old.items()
        )
    return bool(new == old)


def read_through_new_crd(stored: dict[str, Any]) -> dict[str, Any]:
    """A stored object as the API server returns it after the CRD upgrade."""
    return apply_defaults(NEW, pruned(NEW, copy.deepcopy(stored)))


def test_the_version_stays_v1alpha1_served_and_stored() -> None:
    versions = {v["name"]: v for v in CURRENT["spec"]["versions"]}
    assert list(versions) == ["v1alpha1"]
    assert versions["v1alpha1"]["served"] is True
    assert versions["v1alpha1"]["storage"] is True
    for old in PREVIOUS["spec"]["versions"]:
        assert old["name"] in versions, f"{old['name']} is no longer served"
    for field in ("group", "names", "scope"):
        assert CURRENT["spec"][field] == PREVIOUS["spec"][field]
    assert "conversion" not in CURRENT["spec"] or CURRENT["spec"]["conversion"] == {
        "strategy": "None"
    }


@pytest.mark.parametrize("name", list(STORED))
def test_the_previous_release_accepted_the_object(name: str) -> None:
    """The fixtures are what that release allowed (else the other tests prove nothing)."""
    stored = STORED[name]
    assert schema_errors(OLD, stored) == []
    assert cel_violations(OLD, stored) == []


@pytest.mark.parametrize("name", list(STORED))
def test_pruning_by_the_new_schema_keeps_every_field(name: str) -> None:
    stored = STORED[name]
    assert pruned(NEW, copy.deepcopy(stored)) == stored


@pytest.mark.parametrize("name", list(STORED))
def test_new_defaults_only_add_fields(name: str) -> None:
    stored = STORED[name]
    read = read_through_new_crd(stored)
    assert extends(read, stored)
    assert read["metadata"] == stored["metadata"]


@pytest.mark.parametrize("name", list(STORED))
def test_the_object_passes_the_new_schema_and_every_rule_on_its_next_write(name: str) -> None:
    stored = STORED[name]
    read = read_through_new_crd(stored)
    assert schema_errors(NEW, read) == []
    # Applied again from a GitOps source: validated as written, and as an update of itself.
    assert cel_violations(NEW, read) == []
    assert cel_violations(NEW, read, read) == []
    # A status write or a label change keeps the spec: every transition rule with oldSelf =
    # the stored object, read through the new CRD.
    relabelled = copy.deepcopy(read)
    relabelled["metadata"]["labels"] = {"team": "books"}
    assert cel_violations(NEW, relabelled, read) == []


@pytest.mark.parametrize("name", list(STORED))
def test_a_typical_spec_change_after_the_upgrade_is_accepted(name: str) -> None:
    read = read_through_new_crd(STORED[name])
    changed = copy.deepcopy(read)
    catalog = changed["spec"]["catalog"]
    catalog["resources"] = {"requests": {"cpu": "300m", "memory": "256Mi"}}
    changed["spec"]["sampleData"] = not changed["spec"]["sampleData"]
    changed = apply_defaults(NEW, changed)
    assert schema_errors(NEW, changed) == []
    assert cel_violations(NEW, changed, read) == []
