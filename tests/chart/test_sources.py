"""The chart ships exactly the repository's CRDs and the operator's least-privilege rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.chart.helm import (
    CHART,
    OPERATOR_ROLE,
    SOURCE_CRDS,
    Helm,
    find,
    write_values,
)

CHART_CRDS = CHART / "files" / "crds"
INSTALLED_ONCE = {"kopf-peering.yaml"}
CHART_ROLE = CHART / "files" / "rbac" / "role.yaml"


def canonical(rules: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """Rules as a set of (apiGroup, resource, verb, names, urls) grants, whatever their grouping."""
    grants = set()
    for rule in rules:
        names = tuple(sorted(rule.get("resourceNames", [])))
        for verb in rule.get("verbs", []):
            for url in rule.get("nonResourceURLs", []):
                grants.add(("", "", verb, names, url))
            for group in rule.get("apiGroups", []):
                for resource in rule.get("resources", []):
                    grants.add((group, resource, verb, names, ""))
    return grants


def source_rules() -> list[dict[str, Any]]:
    """The rules of operator/rbac/role.yaml (the single source)."""
    role = yaml.safe_load(OPERATOR_ROLE.read_text())
    rules: list[dict[str, Any]] = role["rules"]
    return rules


def chart_copy(source: Path) -> Path:
    """Where the chart keeps its copy of a CRD file of crds/.

    kopf's peering CRDs go to the chart's crds/ (Helm installs them before the release's
    resources, so the peering object can be created; it never upgrades or deletes them); every
    other CRD to files/crds/, templated so that `helm upgrade` upgrades it.
    """
    if source.name in INSTALLED_ONCE:
        return CHART / "crds" / source.name
    return CHART_CRDS / source.name


def test_chart_crds_are_byte_identical_to_the_repository_crds() -> None:
    sources = sorted(SOURCE_CRDS.glob("*.yaml"))
    assert sources, "crds/ holds no CRD"
    for source in sources:
        copy = chart_copy(source)
        assert copy.exists(), f"{copy} is missing: run `make crds`"
        assert copy.read_bytes() == source.read_bytes(), (
            f"{copy} differs from {source}: run `make crds`"
        )


def test_chart_holds_no_crd_that_is_not_in_crds() -> None:
    copies = sorted((CHART / "crds").glob("*.yaml")) + sorted(CHART_CRDS.glob("*.yaml"))
    expected = sorted(chart_copy(source) for source in SOURCE_CRDS.glob("*.yaml"))
    assert sorted(copies) == expected, (
        "the Bookstore CRD belongs in files/crds/ (templated, upgraded, kept), never in the "
        "chart's crds/ (Helm would never upgrade it, and the templated copy would collide)"
    )


def test_chart_renders_every_crd_of_the_repository(helm: Helm) -> None:
    expected = set()
    for path in SOURCE_CRDS.glob("*.yaml"):
        expected |= {doc["metadata"]["name"] for doc in yaml.safe_load_all(path.read_text()) if doc}
    rendered = {crd["metadata"]["name"] for crd in find(helm.render(), "CustomResourceDefinition")}
    assert rendered == expected


def test_chart_role_copy_is_byte_identical_to_the_operator_role() -> None:
    assert CHART_ROLE.read_bytes() == OPERATOR_ROLE.read_bytes(), "run `make crds`"


def test_cluster_role_rules_equal_the_operator_role(helm: Helm) -> None:
    (cluster_role,) = find(helm.render(), "ClusterRole")
    assert cluster_role["rules"] == source_rules()


def test_namespaced_roles_and_cluster_role_together_grant_exactly_the_operator_role(
    helm: Helm, tmp_path: Path
) -> None:
    values = write_values(tmp_path, "ns", {"watchNamespaces": ["shops", "outlet"]})
    manifests = helm.render(values)
    roles = find(manifests, "Role")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["outlet", "shops"]
    bindings = find(manifests, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["outlet", "shops"]
    cluster_rules = [rule for role in find(manifests, "ClusterRole") for rule in role["rules"]]
    for role in roles:
        assert canonical(role["rules"] + cluster_rules) == canonical(source_rules())
        assert not {"namespaces", "customresourcedefinitions"} & {
            resource for rule in role["rules"] for resource in rule.get("resources", [])
        }


def test_rendered_crds_carry_the_shipped_copies_unchanged_but_for_labels_and_keep(
    helm: Helm,
) -> None:
    copies = {
        doc["metadata"]["name"]: doc
        for path in [*CHART_CRDS.glob("*.yaml"), *(CHART / "crds").glob("*.yaml")]
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    }
    rendered = find(helm.render(), "CustomResourceDefinition")
    assert sorted(crd["metadata"]["name"] for crd in rendered) == sorted(copies)
    for crd in rendered:
        copy = copies[crd["metadata"]["name"]]
        assert {k: v for k, v in crd.items() if k != "metadata"} == {
            k: v for k, v in copy.items() if k != "metadata"
        }
        for key, value in (copy["metadata"].get("labels") or {}).items():
            assert crd["metadata"]["labels"][key] == value
