"""The operator's /metrics in the chart: the port, its Service, the ServiceMonitor, and the
NetworkPolicy that lets only Prometheus in, only to that port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import CI_VALUES, NAMESPACE, Helm, find, write_values

PROMETHEUS = {
    "namespaceSelector": {},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}


def render(helm: Helm, tmp_path: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    return helm.render(write_values(tmp_path, "values", values))


def container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = find(manifests, "Deployment")
    (operator,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(operator)


def selected(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("values_name", sorted(CI_VALUES))
def test_the_metrics_service_reaches_the_operator_pods_on_their_metrics_port(
    helm: Helm, values_name: str
) -> None:
    manifests = helm.render(CI_VALUES[values_name])
    operator = container(manifests)
    (deployment,) = find(manifests, "Deployment")
    (service,) = find(manifests, "Service")

    assert "--metrics-port=8081" in operator["args"]
    assert {"name": "metrics", "containerPort": 8081, "protocol": "TCP"} in operator["ports"]
    assert service["metadata"]["name"] == f"{deployment['metadata']['name']}-metrics"
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8081, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selected(service["spec"]["selector"], pod_labels)
    # off unless asked for (ci/monitoring-values.yaml asks)
    assert bool(find(manifests, "ServiceMonitor")) == (values_name == "monitoring")


def test_service_monitor_scrapes_the_metrics_service_with_its_interval_and_labels(
    helm: Helm, tmp_path: Path
) -> None:
    monitor = {"enabled": True, "interval": "15s", "labels": {"release": "kube-prometheus"}}
    values = {"metrics": {"serviceMonitor": monitor, "prometheusRule": {"enabled": True}}}
    manifests = render(helm, tmp_path, values)
    (service,) = find(manifests, "Service")
    (service_monitor,) = find(manifests, "ServiceMonitor")
    spec = service_monitor["spec"]

    assert service_monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert service_monitor["metadata"]["namespace"] == NAMESPACE
    assert spec["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert selected(spec["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    # bookstore_operator_bookstore_condition carries the Bookstore's own `namespace` label.
    assert endpoint["honorLabels"] is True
    # The chart's alerts find these targets by job: the Service's name.
    (rule,) = find(manifests, "PrometheusRule")
    assert f'job="{service["metadata"]["name"]}"' in str(rule["spec"])


def test_service_monitor_leaves_the_interval_to_prometheus_by_default(
    helm: Helm, tmp_path: Path
) -> None:
    manifests = render(helm, tmp_path, {"metrics": {"serviceMonitor": {"enabled": True}}})
    (service_monitor,) = find(manifests, "ServiceMonitor")
    assert "interval" not in service_monitor["spec"]["endpoints"][0]


def test_network_policy_lets_only_prometheus_in_and_only_to_the_metrics_port(
    helm: Helm,
) -> None:
    (policy,) = find(helm.render(), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert policy["spec"]["ingress"] == [
        {"from": [PROMETHEUS], "ports": [{"port": "metrics", "protocol": "TCP"}]}
    ]


def test_network_policy_takes_the_peers_given_in_metrics_allow_from(
    helm: Helm, tmp_path: Path
) -> None:
    peers = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}},
        {"ipBlock": {"cidr": "10.20.0.0/16"}},
    ]
    (policy,) = find(render(helm, tmp_path, {"metrics": {"allowFrom": peers}}), "NetworkPolicy")
    assert policy["spec"]["ingress"] == [
        {"from": peers, "ports": [{"port": "metrics", "protocol": "TCP"}]}
    ]


@pytest.mark.parametrize(
    "metrics", [{"allowFrom": []}, {"port": 0}], ids=["nobody-allowed", "metrics-off"]
)
def test_network_policy_denies_all_ingress_without_peers_or_metrics(
    helm: Helm, tmp_path: Path, metrics: dict[str, Any]
) -> None:
    (policy,) = find(render(helm, tmp_path, {"metrics": metrics}), "NetworkPolicy")
    assert policy["spec"]["ingress"] == []


def test_metrics_port_zero_serves_nothing_and_declares_no_port(helm: Helm, tmp_path: Path) -> None:
    manifests = render(helm, tmp_path, {"metrics": {"port": 0}})
    operator = container(manifests)
    assert "--metrics-port=0" in operator["args"]
    assert [port["name"] for port in operator["ports"]] == ["health"]
    assert find(manifests, "Service") == []


def test_service_monitor_without_a_metrics_port_refuses_to_render(
    helm: Helm, tmp_path: Path
) -> None:
    values = {"metrics": {"port": 0, "serviceMonitor": {"enabled": True}}}
    result = helm.template(write_values(tmp_path, "values", values))
    assert result.returncode != 0
    assert "metrics.serviceMonitor.enabled needs the operator's metrics" in result.stderr


@pytest.mark.parametrize(
    ("peer", "complaint"),
    [
        ({"podSelectors": {}}, "additional properties 'podSelectors' not allowed"),
        ({}, "minProperties"),
        ({"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}, "'not' failed"),
        (
            {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals"}]}},
            "value must be one of",
        ),
    ],
    ids=["misspelt", "empty", "ipblock-with-selector", "bad-operator"],
)
def test_a_peer_the_api_server_would_refuse_is_refused_by_the_values_schema(
    helm: Helm, tmp_path: Path, peer: dict[str, Any], complaint: str
) -> None:
    result = helm.template(write_values(tmp_path, "values", {"metrics": {"allowFrom": [peer]}}))
    assert result.returncode != 0
    assert "/metrics/allowFrom/0" in result.stderr
    assert complaint in result.stderr
