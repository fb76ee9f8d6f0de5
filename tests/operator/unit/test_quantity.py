"""Quantities: exact values, and the canonical spelling the API server stores."""

from __future__ import annotations

from decimal import Decimal

import pytest
from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.builders.quantity import canonical_quantity, parse_quantity

from tests.operator.unit.stores import bookstore_body, parse_store
from tests.operator.unit.test_builders_deployments import container


@pytest.mark.parametrize(
    ("spelled", "value"),
    [("1Gi", 1024**3), ("500m", Decimal("0.5")), ("1.5k", 1500), ("2e3", 2000), (3, 3)],
)
def test_quantity_parses_to_its_exact_value(spelled: str | int, value: Decimal | int) -> None:
    assert parse_quantity(spelled) == value


@pytest.mark.parametrize("spelled", ["", "1 Gi", "Gi", "1GB", "--1"])
def test_quantity_rejects_what_kubernetes_rejects(spelled: str) -> None:
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        parse_quantity(spelled)


# Pairs as apimachinery's resource.MustParse(x).String() prints them.
@pytest.mark.parametrize(
    ("spelled", "canonical"),
    [
        ("1024Mi", "1Gi"),
        ("1.5Gi", "1536Mi"),
        ("0.5Ki", "512"),
        ("0.5", "500m"),
        ("1000m", "1"),
        ("1.5", "1500m"),
        ("1500", "1500"),
        ("2000", "2k"),
        ("1000k", "1M"),
        ("1e3", "1e3"),
        ("1.5e3", "1500"),
        ("0", "0"),
        ("0.0000000001", "1n"),
        (2, "2"),
        ("128Mi", "128Mi"),
        ("250m", "250m"),
    ],
)
def test_quantity_is_spelled_as_the_api_server_stores(spelled: str | int, canonical: str) -> None:
    assert canonical_quantity(spelled) == canonical


def test_children_carry_canonical_quantities_so_reconciles_stay_idempotent() -> None:
    spec = {
        "catalog": {"resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}}},
        "database": {"storage": "10240Mi"},
    }
    store = parse_store(bookstore_body(spec))
    assert container(store, "catalog")["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    stateful_set = build_children(store)[ChildKey("apps/v1", "StatefulSet", "downtown-postgres")]
    assert stateful_set is not None
    [claim] = stateful_set["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "10Gi"
