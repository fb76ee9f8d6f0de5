"""The CRD's CEL rules, evaluated with cel-python: every example passes, every rule bites."""

from __future__ import annotations

from typing import Any

import pytest

from tests.operator.unit.crd_support import (
    apply_defaults,
    cel_violations,
    evaluate_rule,
    load_crd,
    openapi_schema,
    rules,
)
from tests.operator.unit.stores import all_bookstore_bodies

SCHEMA = openapi_schema(load_crd())
BODIES = all_bookstore_bodies()


def stored(spec: dict[str, Any], name: str = "downtown") -> dict[str, Any]:
    """A Bookstore as the API server holds it: with defaults."""
    return apply_defaults(SCHEMA, {"metadata": {"name": name}, "spec": spec})


def with_volume(obj: dict[str, Any], size: str) -> dict[str, Any]:
    """The object with the status the operator reports once the data volume has this size."""
    return {**obj, "status": {"database": {"storage": size}}}


SHRINK_MESSAGE = (
    "spec.database.storage may grow but never shrink below the volume's current size "
    "(status.database.storage)"
)


# (what, old object or None for a create, new object, the message the API server returns)
REJECTED: list[tuple[str, dict[str, Any] | None, dict[str, Any], str]] = [
    (
        "catalog minReplicas above maxReplicas",
        None,
        stored({"catalog": {"autoscaling": {"minReplicas": 6}}}),
        "spec.catalog.autoscaling.minReplicas must be less than or equal to "
        "spec.catalog.autoscaling.maxReplicas",
    ),
    (
        "orders minReplicas above maxReplicas",
        None,
        stored({"orders": {"autoscaling": {"minReplicas": 4, "maxReplicas": 3}}}),
        "spec.orders.autoscaling.minReplicas must be less than or equal to "
        "spec.orders.autoscaling.maxReplicas",
    ),
    (
        "storage shrinks",
        stored({"database": {"storage": "10Gi"}}),
        stored({"database": {"storage": "9Gi"}}),
        SHRINK_MESSAGE,
    ),
    (
        "storage shrinks below the volume's current size",
        with_volume(stored({"database": {"storage": "20Gi"}}), "10Gi"),
        with_volume(stored({"database": {"storage": "8Gi"}}), "10Gi"),
        SHRINK_MESSAGE,
    ),
    (
        "storage shrinks across units",
        stored({"database": {"storage": "2Ti"}}),
        stored({"database": {"storage": "2000Gi"}}),
        SHRINK_MESSAGE,
    ),
    (
        "storage too small",
        None,
        stored({"database": {"storage": "500Mi"}}),
        "spec.database.storage must be at least 1Gi",
    ),
    (
        "storageClassName changes",
        stored({"database": {"storageClassName": "standard"}}),
        stored({"database": {"storageClassName": "fast-ssd"}}),
        "spec.database.storageClassName cannot change after creation (the volume exists)",
    ),
    (
        "external without secretName",
        None,
        stored({"database": {"external": {}}}),
        "spec.database.external.secretName is required when spec.database.external is set",
    ),
    (
        "external with an empty secretName",
        None,
        stored({"database": {"external": {"secretName": ""}}}),
        "spec.database.external.secretName is required when spec.database.external is set",
    ),
    (
        "switch to an external database",
        stored({}),
        stored({"database": {"external": {"secretName": "pg"}}}),
        "spec.database.external cannot be added or removed after creation "
        "(the data would not move)",
    ),
    (
        "switch back to the in-cluster database",
        stored({"database": {"external": {"secretName": "pg"}}}),
        stored({}),
        "spec.database.external cannot be added or removed after creation "
        "(the data would not move)",
    ),
    (
        "restoreFrom added after creation",
        stored({}),
        stored({"database": {"restoreFrom": {"backup": "nightly"}}}),
        "spec.database.restoreFrom is set when the Bookstore is created and cannot change after "
        "(a restore only fills empty databases)",
    ),
    (
        "restoreFrom removed",
        stored({"database": {"restoreFrom": {"backup": "nightly"}}}),
        stored({}),
        "spec.database.restoreFrom is set when the Bookstore is created and cannot change after "
        "(a restore only fills empty databases)",
    ),
    (
        "restoreFrom pointed at another backup",
        stored({"database": {"restoreFrom": {"backup": "nightly"}}}),
        stored({"database": {"restoreFrom": {"backup": "weekly"}}}),
        "spec.database.restoreFrom is set when the Bookstore is created and cannot change after "
        "(a restore only fills empty databases)",
    ),
    (
        "a backups volume under 1Gi",
        None,
        stored({"backup": {"volume": {"size": "512Mi"}}}),
        "spec.backup.volume.size must be at least 1Gi",
    ),
    (
        "TLS without a host",
        None,
        stored({"ingress": {"enabled": True, "tlsSecretName": "tls"}}),
        "spec.ingress.tlsSecretName needs spec.ingress.host",
    ),
    (
        "an empty allowFrom peer",
        None,
        stored({"networkPolicy": {"allowFrom": [{}]}}),
        "spec.networkPolicy.allowFrom entries need a podSelector, namespaceSelector or ipBlock",
    ),
    (
        "ipBlock combined with a selector",
        None,
        stored(
            {
                "networkPolicy": {
                    "allowFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]
                }
            }
        ),
        "spec.networkPolicy.allowFrom entries may not combine ipBlock with podSelector or "
        "namespaceSelector",
    ),
    (
        "catalog cpu request above its limit",
        None,
        stored({"catalog": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1500m"}}}}),
        "spec.catalog.resources: every request must be less than or equal to its limit",
    ),
    (
        "orders memory request above its limit",
        None,
        stored(
            {"orders": {"resources": {"requests": {"memory": "1Gi"}, "limits": {"memory": "1G"}}}}
        ),
        "spec.orders.resources: every request must be less than or equal to its limit",
    ),
    (
        "database integer cpu request above its limit",
        None,
        stored({"database": {"resources": {"requests": {"cpu": 4}, "limits": {"cpu": "2"}}}}),
        "spec.database.resources: every request must be less than or equal to its limit",
    ),
]

ACCEPTED_UPDATES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "a restored Bookstore changes something else",
        stored({"database": {"restoreFrom": {"backup": "nightly"}}}),
        stored({"database": {"restoreFrom": {"backup": "nightly"}, "storage": "10Gi"}}),
    ),
    (
        "a backup schedule and retention set later",
        stored({}),
        stored({"backup": {"schedule": "0 3 * * *", "retention": 3}}),
    ),
    (
        "storage grows",
        stored({"database": {"storage": "5Gi"}}),
        stored({"database": {"storage": "10Gi"}}),
    ),
    (
        "storage restated in other units",
        stored({"database": {"storage": "1Gi"}}),
        stored({"database": {"storage": "1024Mi"}}),
    ),
    (
        "a refused growth taken back to the volume's current size",
        with_volume(stored({"database": {"storage": "50Gi"}}), "10Gi"),
        with_volume(stored({"database": {"storage": "10Gi"}}), "10Gi"),
    ),
    (
        "a refused growth taken back part of the way",
        with_volume(stored({"database": {"storage": "50Gi"}}), "10Gi"),
        with_volume(stored({"database": {"storage": "20Gi"}}), "10Gi"),
    ),
    (
        "status written while the spec is unchanged",
        stored({"database": {"storage": "50Gi"}}),
        with_volume(stored({"database": {"storage": "50Gi"}}), "10Gi"),
    ),
    (
        "external secret renamed",
        stored({"database": {"external": {"secretName": "pg"}}}),
        stored({"database": {"external": {"secretName": "pg-rotated"}}}),
    ),
    (
        "resources with equal request and limit in other units, and a request alone",
        stored({}),
        stored(
            {
                "catalog": {
                    "resources": {
                        "requests": {"memory": "1Gi", "cpu": 1},
                        "limits": {"memory": "1024Mi", "cpu": "1000m"},
                    }
                },
                "orders": {"resources": {"requests": {"cpu": "8"}}},
            }
        ),
    ),
    (
        "autoscaling bounds widened",
        stored({}),
        stored({"orders": {"autoscaling": {"minReplicas": 10, "maxReplicas": 10}}}),
    ),
]


@pytest.mark.parametrize("body_name", BODIES)
def test_every_example_and_spec_passes_every_rule_on_create_and_update(body_name: str) -> None:
    obj = apply_defaults(SCHEMA, BODIES[body_name])
    assert cel_violations(SCHEMA, obj) == []
    assert cel_violations(SCHEMA, obj, obj) == []


@pytest.mark.parametrize(("what", "old", "new", "message"), REJECTED, ids=[r[0] for r in REJECTED])
def test_rule_rejects_with_a_message_naming_the_field(
    what: str, old: dict[str, Any] | None, new: dict[str, Any], message: str
) -> None:
    violations = cel_violations(SCHEMA, new, old)
    assert [v.split(": ", 1)[1] for v in violations] == [message]


@pytest.mark.parametrize(
    ("what", "old", "new"), ACCEPTED_UPDATES, ids=[a[0] for a in ACCEPTED_UPDATES]
)
def test_allowed_updates_pass_every_rule(
    what: str, old: dict[str, Any], new: dict[str, Any]
) -> None:
    assert cel_violations(SCHEMA, new, old) == []


def test_every_rule_has_a_rejecting_case() -> None:
    covered = {message for *_, message in REJECTED}
    assert {rule["message"] for _, rule in rules(SCHEMA)} <= covered


@pytest.mark.parametrize("path_and_rule", list(rules(SCHEMA)), ids=lambda pr: pr[0])
def test_every_rule_message_names_the_field_it_guards(
    path_and_rule: tuple[str, dict[str, Any]],
) -> None:
    path, rule = path_and_rule
    where = path + rule.get("fieldPath", "")
    field = where.replace("[]", "").rsplit(".", 1)[-1]
    assert field
    assert rule["message"].startswith("spec.")
    assert field in rule["message"]


def test_quantity_functions_compare_exactly() -> None:
    assert evaluate_rule("quantity(self).compareTo(quantity('1024Mi')) == 0", "1Gi")
    assert evaluate_rule("quantity(self).isGreaterThan(quantity('1G'))", "1Gi")
    assert evaluate_rule("!isQuantity(self)", "1 Gi")
