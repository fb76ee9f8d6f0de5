"""The chart lints and renders, for default and non-default values, into valid manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate
import pytest

from tests.chart.helm import CHART, CI_VALUES, Helm, find, write_values

KUBERNETES_VERSIONS = ["1.30", kubernetes_validate.latest_version()]
# The Prometheus Operator's kinds the chart renders when asked (ci/monitoring-values.yaml): their
# CRDs are the Prometheus Operator's, so kubernetes-validate has no schema for them; the fields
# they use are checked in test_metrics.py and test_alert_rules.py (promtool).
PROMETHEUS_OPERATOR_KINDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}


def served_kinds(manifests: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(apiVersion, kind) of every custom resource the rendered CRDs serve."""
    kinds = set()
    for crd in find(manifests, "CustomResourceDefinition"):
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served", True):
                kinds.add((f"{group}/{version['name']}", kind))
    return kinds


@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
@pytest.mark.parametrize("values_name", sorted(CI_VALUES))
def test_chart_passes_helm_lint(helm: Helm, values_name: str, strict: bool) -> None:
    values = CI_VALUES[values_name]
    args = ["lint", str(CHART), *(["--values", str(values)] if values else [])]
    args += ["--strict"] if strict else []
    result = helm.run(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values_name", sorted(CI_VALUES))
def test_every_rendered_manifest_is_valid_kubernetes(helm: Helm, values_name: str) -> None:
    manifests = helm.render(CI_VALUES[values_name])
    custom_kinds = served_kinds(manifests) | PROMETHEUS_OPERATOR_KINDS
    assert find(manifests, "Deployment"), "the chart rendered no operator Deployment"
    for manifest in manifests:
        if (manifest["apiVersion"], manifest["kind"]) in custom_kinds:
            continue  # a custom resource: its own CRD, rendered alongside, defines it
        for version in KUBERNETES_VERSIONS:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                name = f"{manifest['kind']}/{manifest['metadata'].get('name')}"
                pytest.fail(f"{name} is invalid for Kubernetes {version}: {error.message}")


def test_chart_renders_every_kind_it_installs(helm: Helm) -> None:
    kinds = {manifest["kind"] for manifest in helm.render()}
    assert {
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "ClusterKopfPeering",
    } <= kinds


@pytest.mark.parametrize("values_name", ["default", "watch-namespaces"])
def test_custom_resources_the_chart_renders_are_served_by_its_crds(
    helm: Helm, values_name: str
) -> None:
    manifests = helm.render(CI_VALUES[values_name])
    custom = [m for m in manifests if m["apiVersion"].startswith("kopf.dev/")]
    assert custom
    assert {(m["apiVersion"], m["kind"]) for m in custom} <= served_kinds(manifests)


def test_templated_bookstore_crds_are_kept_on_uninstall(helm: Helm) -> None:
    crds = find(helm.render(), "CustomResourceDefinition")
    ours = [crd for crd in crds if crd["spec"]["group"] == "bookstore.dev"]
    assert sorted(crd["spec"]["names"]["kind"] for crd in ours) == ["Bookstore", "BookstoreBackup"]
    for crd in ours:
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_peering_object_matches_the_operator_peering_flag(helm: Helm, tmp_path: Path) -> None:
    cluster = find(helm.render(), "ClusterKopfPeering")
    assert [p["metadata"]["name"] for p in cluster] == ["bookstore-operator"]
    assert "helm.sh/hook" not in cluster[0]["metadata"].get("annotations", {})

    values = write_values(tmp_path, "ns", {"watchNamespaces": ["shops", "outlet"]})
    manifests = helm.render(values)
    namespaced = find(manifests, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in namespaced) == ["outlet", "shops"]
    assert not find(manifests, "ClusterKopfPeering")
    args = find(manifests, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--peering=bookstore-operator" in args


def test_notes_tell_the_user_the_next_command(helm: Helm) -> None:
    result = helm.run("install", "bookstore", str(CHART), "--dry-run=client", "-n", "bs")
    assert result.returncode == 0, result.stderr
    assert "kubectl apply -f examples/bookstore.yaml" in result.stdout
    assert "kubectl get bookstores -w" in result.stdout


@pytest.mark.parametrize(("kube_version", "accepted"), [("1.29.9", False), ("1.30.0", True)])
def test_chart_installs_only_on_kubernetes_1_30_and_newer(
    helm: Helm, kube_version: str, accepted: bool
) -> None:
    result = helm.run("template", "bookstore", str(CHART), "--kube-version", kube_version)
    assert (result.returncode == 0) is accepted, result.stderr
    if not accepted:
        assert "requires kubeVersion: >=1.30.0-0" in result.stderr


@pytest.mark.parametrize("values_name", ["default", "watch-namespaces"])
def test_peering_objects_satisfy_their_crd_schema(helm: Helm, values_name: str) -> None:
    manifests = helm.render(CI_VALUES[values_name])
    schemas = {
        crd["spec"]["names"]["kind"]: version["schema"]["openAPIV3Schema"]
        for crd in find(manifests, "CustomResourceDefinition")
        for version in crd["spec"]["versions"]
        if crd["spec"]["group"] == "kopf.dev"
    }
    peerings = [m for m in manifests if m["kind"] in ("ClusterKopfPeering", "KopfPeering")]
    assert peerings
    for peering in peerings:
        jsonschema.validate(peering, schemas[peering["kind"]])
