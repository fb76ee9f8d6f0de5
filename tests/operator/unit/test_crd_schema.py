"""The Bookstore CRD: valid, structural, documented, bounded, and in step with the model."""

from __future__ import annotations

from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from tests.operator.unit.crd_support import (
    apply_defaults,
    load_crd,
    openapi_schema,
    resolve_json_path,
    schema_errors,
    to_json_schema,
    walk,
)
from tests.operator.unit.stores import all_bookstore_bodies, parse_store

CRD = load_crd()
SCHEMA = openapi_schema(CRD)
BODIES = all_bookstore_bodies()
NODES = dict(walk(SCHEMA))

REALISTIC_STATUS: dict[str, Any] = {
    "phase": "Ready",
    "observedGeneration": 4,
    "version": "0.1.0",
    # Mid-upgrade: VERSION keeps showing status.version. (A status holds rolledBackFrom only
    # until spec.version changes, so never beside a targetVersion; the schema allows both.)
    "targetVersion": "0.2.0",
    "rolledBackFrom": "0.1.1",
    "conditions": [
        {
            "type": kind,
            "status": "False" if kind == "Progressing" else "True",
            "reason": "AllReady",
            "message": "every component serves generation 4",
            "lastTransitionTime": "2026-11-21T06:00:00Z",
            "observedGeneration": 4,
        }
        for kind in ("Ready", "DatabaseReady", "CatalogReady", "OrdersReady", "Progressing")
    ],
    "catalog": {"replicas": 2, "readyReplicas": 2, "ready": "2/2"},
    "orders": {"replicas": 3, "readyReplicas": 2, "ready": "2/3"},
    "database": {"storage": "5Gi", "schemaRevision": {"catalog": "0005", "orders": "0003"}},
    "endpoints": {
        "catalog": "http://downtown-catalog.shops.svc:8000",
        "orders": "http://downtown-orders.shops.svc:8000",
    },
    "backup": {
        "scheduledSince": "2026-11-01T10:00:00Z",
        "lastScheduleTime": "2026-11-21T03:00:00Z",
        "nextScheduledBackup": {"name": "downtown-202611220300", "time": "2026-11-22T03:00:00Z"},
        "lastSuccessfulBackup": {"name": "downtown-202611210300", "time": "2026-11-21T03:01:12Z"},
        "lastFailedBackup": {"name": "downtown-202611200300", "time": "2026-11-20T03:00:40Z"},
        "lastRequestedBackup": "downtown-requested-3f2a9c1b0d",
    },
}


@pytest.mark.parametrize("version", ["1.30", kubernetes_validate.utils.latest_version()])
def test_crd_is_a_valid_custom_resource_definition(version: str) -> None:
    kubernetes_validate.validate(CRD, version, strict=True)


def test_crd_names_scope_and_version_follow_the_design() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "bookstores.bookstore.dev"
    assert spec["group"] == "bookstore.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "Bookstore",
        "listKind": "BookstoreList",
        "plural": "bookstores",
        "singular": "bookstore",
        "shortNames": ["bs"],
        "categories": ["all"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns_resolve_against_a_realistic_status() -> None:
    [version] = CRD["spec"]["versions"]
    obj = {"metadata": {"creationTimestamp": "2026-11-21T05:00:00Z"}, "status": REALISTIC_STATUS}
    printed = {
        column["name"]: resolve_json_path(obj, column["jsonPath"])
        for column in version["additionalPrinterColumns"]
    }
    assert printed == {
        "Ready": "True",
        "Phase": "Ready",
        "Version": "0.1.0",
        "Catalog": "2/2",
        "Orders": "2/3",
        "Age": "2026-11-21T05:00:00Z",
    }


@pytest.mark.parametrize("path", [p for p in NODES if p])
def test_schema_is_structural(path: str) -> None:
    node = NODES[path]
    assert "x-kubernetes-preserve-unknown-fields" not in node
    if node.get("x-kubernetes-int-or-string"):
        assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}]
    else:
        assert node.get("type") in ("object", "array", "string", "integer", "boolean", "number")
    if node.get("type") == "object" and path != ".metadata":
        assert ("properties" in node) != ("additionalProperties" in node)


@pytest.mark.parametrize(
    "path",
    [p for p in NODES if p.startswith((".spec", ".status")) and not p.endswith(("[]", "{}"))],
)
def test_every_spec_and_status_field_has_a_description(path: str) -> None:
    assert len(NODES[path].get("description", "")) > 10


@pytest.mark.parametrize("path", [p for p in NODES if p.startswith(".spec")])
def test_every_spec_string_list_and_map_is_bounded_for_the_cel_cost_estimator(path: str) -> None:
    node = NODES[path]
    is_string = node.get("type") == "string" or node.get("x-kubernetes-int-or-string")
    if is_string and "enum" not in node:
        assert "maxLength" in node
    if node.get("type") == "array":
        assert "maxItems" in node
    if node.get("type") == "object" and "additionalProperties" in node:
        assert "maxProperties" in node


@pytest.mark.parametrize("path", [p for p, node in NODES.items() if "default" in node])
def test_every_default_is_valid_for_its_field(path: str) -> None:
    node = NODES[path]
    defaulted = apply_defaults(node, node["default"])
    jsonschema.Draft7Validator(to_json_schema(node)).validate(defaulted)


@pytest.mark.parametrize("body_name", BODIES)
def test_every_example_and_spec_is_valid_after_defaulting(body_name: str) -> None:
    assert schema_errors(SCHEMA, apply_defaults(SCHEMA, BODIES[body_name])) == []


def test_metadata_schema_restricts_only_the_name() -> None:
    # A structural schema may only restrict metadata.name and metadata.generateName.
    assert SCHEMA["properties"]["metadata"] == {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40, "pattern": "^[a-z]([-a-z0-9]*[a-z0-9])?$"}
        },
    }
    longest = with_spec({}, name="a" * 40)
    assert schema_errors(SCHEMA, {**longest, "metadata": {"name": "a" * 40, "uid": "x"}}) == []


@pytest.mark.parametrize("body_name", BODIES)
def test_model_defaults_match_the_crd_defaults(body_name: str) -> None:
    body = BODIES[body_name]
    as_stored = apply_defaults(SCHEMA, body)
    assert as_stored["spec"] != body.get("spec")  # defaults were applied
    assert parse_store(as_stored) == parse_store(body)


def test_status_schema_declares_exactly_what_the_operator_writes() -> None:
    status = SCHEMA["properties"]["status"]
    assert schema_errors(status, REALISTIC_STATUS) == []
    assert set(status["properties"]) == set(REALISTIC_STATUS)
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["properties"]) == set(REALISTIC_STATUS["conditions"][0])
    assert status["properties"]["phase"]["enum"] == [
        "Pending",
        "Progressing",
        "Ready",
        "Degraded",
        "Failed",
    ]


def with_spec(spec: dict[str, Any], name: str = "downtown") -> dict[str, Any]:
    return apply_defaults(SCHEMA, {"metadata": {"name": name}, "spec": spec})


@pytest.mark.parametrize(
    ("obj", "where"),
    [
        (with_spec({"database": {"deletionPolicy": "Orphan"}}), "spec.database.deletionPolicy"),
        (with_spec({"catalog": {"replicas": -1}}), "spec.catalog.replicas"),
        (with_spec({"orders": {"autoscaling": {"maxReplicas": 1000}}}), "spec.orders.autoscaling"),
        (with_spec({"catalog": {"replica": 2}}), "spec.catalog"),
        (with_spec({"database": {"storage": "lots"}}), "spec.database.storage"),
        (with_spec({"database": {"storage": "-5Gi"}}), "spec.database.storage"),
        (with_spec({"image": "bookstore:1.0"}), "spec.image"),
        (with_spec({"version": "1.0 beta"}), "spec.version"),
        (with_spec({"ingress": {"host": "Shop_Example"}}), "spec.ingress.host"),
        (with_spec({"catalog": {"resources": {"limits": {"cpu": "one"}}}}), "spec.catalog"),
        (with_spec({"orders": {"resources": {"requests": {"memory": "-1Gi"}}}}), "spec.orders"),
        (with_spec({"database": {"resources": {"requests": {"cpu": -1}}}}), "spec.database"),
        (with_spec({"networkPolicy": {"allowFrom": [{"ipBlock": {}}]}}), "spec.networkPolicy"),
        ({**with_spec({}), "status": {"phase": "Sleeping"}}, "status.phase"),
        # Every child name (<name>-postgres-0, <name>-allow-orders-to-catalog) must stay valid.
        (with_spec({}, name="a" * 41), "metadata.name"),
        (with_spec({}, name="1st-street"), "metadata.name"),
        (with_spec({}, name="main.street"), "metadata.name"),
        (
            {**with_spec({}), "status": {"conditions": [{"type": "Ready", "status": "Yes"}]}},
            "status",
        ),
    ],
)
def test_schema_rejects_invalid_values_naming_the_field(obj: dict[str, Any], where: str) -> None:
    errors = schema_errors(SCHEMA, obj)
    assert errors
    assert any(error.startswith(where) for error in errors), errors
