"""Property-based: any spec the CRD accepts builds valid, restricted, stable children."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
from bookstore_operator.builders import build_children
from bookstore_operator.builders.quantity import parse_quantity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.operator.unit.crd_support import (
    apply_defaults,
    cel_violations,
    load_crd,
    openapi_schema,
    schema_errors,
)
from tests.operator.unit.stores import all_manifests, bookstore_body, parse_store, store_for
from tests.pod_security import restricted_violations

SCHEMA = openapi_schema(load_crd())
DEFAULT_KEYS = list(build_children(store_for("defaults")))

dns_label = st.from_regex(r"\A[a-z]([-a-z0-9]{0,10}[a-z0-9])?\Z")
cpu = st.sampled_from(["100m", "0.5", "1", 2, "1500m", "250m"])
memory = st.sampled_from(["128Mi", "1Gi", "512M", "1024Mi", 268435456, "2Gi"])


@st.composite
def resources(draw: st.DrawFn) -> dict[str, Any]:
    """Requests and/or limits, each request at most its limit."""
    picked: dict[str, dict[str, Any]] = {}
    for name, values in (("cpu", cpu), ("memory", memory)):
        request, limit = sorted(draw(st.lists(values, min_size=2, max_size=2)), key=parse_quantity)
        if draw(st.booleans()):
            picked.setdefault("requests", {})[name] = request
        if draw(st.booleans()):
            picked.setdefault("limits", {})[name] = limit
    return picked


@st.composite
def component(draw: st.DrawFn) -> dict[str, Any]:
    low = draw(st.integers(1, 10))
    return {
        "replicas": draw(st.integers(0, 10)),
        "autoscaling": {
            "enabled": draw(st.booleans()),
            "minReplicas": low,
            "maxReplicas": draw(st.integers(low, 100)),
            "targetCPUUtilizationPercentage": draw(st.none() | st.integers(1, 100)),
            "targetMemoryUtilizationPercentage": draw(st.none() | st.integers(1, 100)),
        },
        "resources": draw(resources()),
    }


peer = st.one_of(
    st.builds(lambda v: {"namespaceSelector": {"matchLabels": {"name": v}}}, dns_label),
    st.builds(lambda v: {"podSelector": {"matchLabels": {"app": v}}}, dns_label),
    st.just({"ipBlock": {"cidr": "10.0.0.0/8"}}),
)


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    host = draw(st.sampled_from(["", "shop.example.com"]))
    database: dict[str, Any] = {
        "storage": draw(st.sampled_from(["1Gi", "5Gi", "1536Mi", "2Ti", "20G"])),
        "deletionPolicy": draw(st.sampled_from(["Retain", "Delete"])),
        "storageClassName": draw(st.sampled_from(["", "fast-ssd"])),
        "resources": draw(resources()),
    }
    if draw(st.booleans()):
        database["external"] = {"secretName": draw(dns_label)}
    return {
        "version": draw(st.sampled_from(["", "0.1.0", "1.2.3-rc.1", "latest"])),
        "catalog": draw(component()),
        "orders": draw(component()),
        "database": database,
        "auth": {"apiKeySecretName": draw(st.sampled_from(["", "my-key"]))},
        "networkPolicy": {
            "enabled": draw(st.booleans()),
            "allowFrom": draw(st.lists(peer, max_size=3)),
        },
        "ingress": {
            "enabled": draw(st.booleans()),
            "className": draw(st.sampled_from(["", "nginx"])),
            "host": host,
            "tlsSecretName": draw(st.sampled_from(["", "tls"])) if host else "",
        },
        "sampleData": draw(st.booleans()),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), name=dns_label)
def test_any_accepted_spec_builds_valid_restricted_children_under_stable_keys(
    spec: dict[str, Any], name: str
) -> None:
    stored = apply_defaults(SCHEMA, bookstore_body(spec, name=name))
    assert schema_errors(SCHEMA, stored) == []
    assert cel_violations(SCHEMA, stored) == []
    store = parse_store(stored)
    children = build_children(store)
    assert [key._replace(name=key.name.replace(name, "downtown", 1)) for key in children] == (
        DEFAULT_KEYS
    )
    for manifest in all_manifests(store):
        kubernetes_validate.validate(manifest, "1.30", strict=True)
        if "template" in manifest.get("spec", {}):
            assert restricted_violations(manifest["spec"]["template"]["spec"]) == []
