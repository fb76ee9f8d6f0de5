"""The operator Deployment meets Pod Security Standard "restricted" and is configured by values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import CI_VALUES, Helm, find, write_values
from tests.pod_security import restricted_violations


def pod_spec(helm: Helm, values_file: Path | None) -> dict[str, Any]:
    """The pod template spec of the rendered operator Deployment."""
    (deployment,) = find(helm.render(values_file), "Deployment")
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


@pytest.mark.parametrize("values_name", sorted(CI_VALUES))
def test_operator_pod_meets_pod_security_restricted(helm: Helm, values_name: str) -> None:
    assert restricted_violations(pod_spec(helm, CI_VALUES[values_name])) == []


@pytest.mark.parametrize("values_name", sorted(CI_VALUES))
def test_operator_container_has_requests_limits_and_health_probes(
    helm: Helm, values_name: str
) -> None:
    (container,) = pod_spec(helm, CI_VALUES[values_name])["containers"]
    resources = container["resources"]
    assert {"cpu", "memory"} <= set(resources["requests"])
    assert {"cpu", "memory"} <= set(resources["limits"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
        assert container[probe]["httpGet"]["port"] == "health"
    assert container["ports"] == [
        {"name": "health", "containerPort": 8080, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 8081, "protocol": "TCP"},
    ]


def test_only_the_operator_pod_mounts_a_service_account_token(helm: Helm) -> None:
    manifests = helm.render()
    (service_account,) = find(manifests, "ServiceAccount")
    assert service_account["automountServiceAccountToken"] is False
    assert pod_spec(helm, None)["automountServiceAccountToken"] is True


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    """The container's plain env values by name."""
    return {item["name"]: item.get("value") for item in container["env"]}


def test_services_image_defaults_to_the_chart_image_and_app_version(helm: Helm) -> None:
    (container,) = pod_spec(helm, None)["containers"]
    assert container["image"] == "ghcr.io/bookstore-operator/bookstore:0.1.0"
    assert container["command"] == ["bookstore-operator"]
    env = env_of(container)
    assert env["BOOKSTORE_IMAGE_REPOSITORY"] == "ghcr.io/bookstore-operator/bookstore"
    assert env["BOOKSTORE_DEFAULT_VERSION"] == "0.1.0"
    assert env["BOOKSTORE_IMAGE_PULL_POLICY"] == "IfNotPresent"


def test_custom_image_flows_to_the_operator_and_the_services_it_runs(
    helm: Helm, tmp_path: Path
) -> None:
    values = {"image": {"repository": "bookstore", "tag": "dev", "pullPolicy": "Never"}}
    (container,) = pod_spec(helm, write_values(tmp_path, "values", values))["containers"]
    assert container["image"] == "bookstore:dev"
    assert container["imagePullPolicy"] == "Never"
    env = env_of(container)
    assert env["BOOKSTORE_IMAGE_REPOSITORY"] == "bookstore"
    assert env["BOOKSTORE_DEFAULT_VERSION"] == "dev"
    assert env["BOOKSTORE_IMAGE_PULL_POLICY"] == "Never"


def test_watched_namespaces_become_namespace_arguments(helm: Helm, tmp_path: Path) -> None:
    values = {"watchNamespaces": ["shops", "outlet"], "verbose": True}
    (container,) = pod_spec(helm, write_values(tmp_path, "values", values))["containers"]
    assert container["args"] == [
        "--namespace=shops",
        "--namespace=outlet",
        "--liveness-port=8080",
        "--metrics-port=8081",
        "--peering=bookstore-operator",
        "--verbose",
    ]


def test_replicas_spread_over_nodes_by_default(helm: Helm, tmp_path: Path) -> None:
    manifests = helm.render(write_values(tmp_path, "two", {"replicas": 2}))
    (deployment,) = find(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    affinity = deployment["spec"]["template"]["spec"]["affinity"]
    preferred = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
