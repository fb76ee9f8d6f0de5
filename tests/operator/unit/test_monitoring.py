"""spec.monitoring: its schema and model, the PodMonitor and PrometheusRule builders, and the
MonitoringReady condition (the runtime behaviour is in tests/operator/runtime/test_monitoring.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from bookstore_operator.builders import (
    build_children,
    build_migration_job,
    build_pod_monitor,
    build_prometheus_rule,
)
from bookstore_operator.builders.alerts import alert_groups
from bookstore_operator.models import Bookstore
from bookstore_operator.monitoring import MonitoringReport
from bookstore_operator.status import Observed, compute_status

from tests.operator.unit.crd_support import apply_defaults, load_crd, openapi_schema, schema_errors
from tests.operator.unit.stores import NAMESPACE, bookstore_body, parse_store, store_for

SCHEMA = openapi_schema(load_crd())
NOW = "2026-11-21T06:00:00Z"
MONITORING = {
    "enabled": True,
    "interval": "15s",
    "labels": {"release": "prometheus", "app.kubernetes.io/name": "not-ours"},
}
# Fields of monitoring.coreos.com/v1 (prometheus-operator's API reference) the builders may use:
# the CRDs prune anything else, so a misspelt field would silently do nothing.
POD_MONITOR_SPEC = {"selector", "namespaceSelector", "podMetricsEndpoints", "jobLabel"}
POD_METRICS_ENDPOINT = {"port", "path", "scheme", "interval", "relabelings"}
RELABEL_CONFIG = {"action", "sourceLabels", "targetLabel", "separator", "regex", "replacement"}
RULE_GROUP = {"name", "interval", "rules", "limit"}


def monitored() -> Bookstore:
    """A Bookstore with every spec.monitoring field set."""
    return parse_store(bookstore_body({"monitoring": MONITORING}))


def with_spec(spec: dict[str, Any]) -> dict[str, Any]:
    return apply_defaults(SCHEMA, {"metadata": {"name": "downtown"}, "spec": spec})


def matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, In expressions) applied to a pod's labels."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def pod_labels(store_name: str) -> dict[str, dict[str, str]]:
    """The labels of every kind of pod a Bookstore runs, by what runs in it."""
    store = parse_store(bookstore_body({}, name=store_name))
    children = build_children(store)
    pods = {
        key.name: manifest["spec"]["template"]["metadata"]["labels"]
        for key, manifest in children.items()
        if manifest is not None and key.kind in ("Deployment", "StatefulSet")
    }
    job = build_migration_job(store, "catalog")
    pods[job["metadata"]["name"]] = job["spec"]["template"]["metadata"]["labels"]
    return pods


def test_monitoring_is_off_by_default_and_builds_nothing() -> None:
    store = store_for("defaults")
    assert store.spec.monitoring.enabled is False
    assert with_spec({})["spec"]["monitoring"] == {"enabled": False, "interval": ""}
    assert build_pod_monitor(store) is None
    assert build_prometheus_rule(store) is None


@pytest.mark.parametrize(
    ("monitoring", "where"),
    [
        ({"interval": "often"}, "spec.monitoring.interval"),
        ({"interval": "30"}, "spec.monitoring.interval"),
        ({"labels": {"release": "not a label value"}}, "spec.monitoring.labels"),
        ({"labels": {f"k{i}": "v" for i in range(17)}}, "spec.monitoring.labels"),
        ({"enabled": "yes"}, "spec.monitoring.enabled"),
    ],
)
def test_schema_rejects_invalid_monitoring_naming_the_field(
    monitoring: dict[str, Any], where: str
) -> None:
    errors = schema_errors(SCHEMA, with_spec({"monitoring": monitoring}))
    assert any(error.startswith(where) for error in errors), errors


def test_a_full_monitoring_spec_is_valid_and_parses_as_the_api_server_stores_it() -> None:
    stored = with_spec({"monitoring": MONITORING})
    assert schema_errors(SCHEMA, stored) == []
    assert stored["spec"]["monitoring"] == MONITORING
    assert parse_store(stored) == monitored()


@pytest.mark.parametrize("interval", ["", "30s", "1m", "1m30s", "500ms", "2h"])
def test_schema_accepts_prometheus_durations(interval: str) -> None:
    body = with_spec({"monitoring": {"enabled": True, "interval": interval}})
    assert schema_errors(SCHEMA, body) == []


def test_pod_monitor_selects_exactly_the_catalog_and_orders_pods_of_its_bookstore() -> None:
    monitor = build_pod_monitor(monitored())
    assert monitor is not None
    selector = monitor["spec"]["selector"]
    chosen = {name for name, labels in pod_labels("downtown").items() if matches(selector, labels)}
    assert chosen == {"downtown-catalog", "downtown-orders"}
    assert not any(matches(selector, labels) for labels in pod_labels("uptown").values())
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_pod_monitor_scrapes_the_services_metrics_port_and_path() -> None:
    store = monitored()
    monitor = build_pod_monitor(store)
    assert monitor is not None
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    deployment = build_children(store)[
        next(k for k in build_children(store) if k.kind == "Deployment")
    ]
    assert deployment is not None
    ports = deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    assert endpoint["port"] in {port["name"] for port in ports}
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "15s"
    enabled_only = parse_store(bookstore_body({"monitoring": {"enabled": True}}))
    pod_monitor = build_pod_monitor(enabled_only)
    assert pod_monitor is not None
    assert "interval" not in pod_monitor["spec"]["podMetricsEndpoints"][0]


def test_relabelings_turn_the_pod_labels_into_bookstore_and_component() -> None:
    monitor = build_pod_monitor(monitored())
    assert monitor is not None
    relabelings = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    targets = {r["targetLabel"]: r["sourceLabels"] for r in relabelings}
    # Prometheus's kubernetes_sd: every character of a pod label's name not [a-zA-Z0-9_] -> _.
    assert targets == {
        "bookstore": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
        "component": ["__meta_kubernetes_pod_label_app_kubernetes_io_component"],
    }
    assert all(r["action"] == "replace" for r in relabelings)


def test_both_children_carry_the_users_labels_under_ours_and_the_owner() -> None:
    store = monitored()
    for manifest in (build_pod_monitor(store), build_prometheus_rule(store)):
        assert manifest is not None
        meta = manifest["metadata"]
        assert meta["name"] == "downtown"
        assert meta["namespace"] == NAMESPACE
        assert meta["labels"]["release"] == "prometheus"
        # The operator's own labels win: its watches and `kubectl get -l` rely on them.
        assert meta["labels"]["app.kubernetes.io/name"] == "bookstore"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "bookstore-operator"
        assert meta["ownerReferences"] == [store.owner_reference]
        assert manifest["apiVersion"] == "monitoring.coreos.com/v1"


def test_the_children_use_only_fields_the_prometheus_operator_crds_declare() -> None:
    store = monitored()
    monitor, rule = build_pod_monitor(store), build_prometheus_rule(store)
    assert monitor is not None
    assert rule is not None
    assert set(monitor["spec"]) <= POD_MONITOR_SPEC
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        assert set(endpoint) <= POD_METRICS_ENDPOINT
        for relabeling in endpoint["relabelings"]:
            assert set(relabeling) <= RELABEL_CONFIG
    assert set(rule["spec"]) == {"groups"}
    for group in rule["spec"]["groups"]:
        assert set(group) <= RULE_GROUP


def test_the_rule_holds_the_alert_groups_of_this_bookstore() -> None:
    store = monitored()
    rule = build_prometheus_rule(store)
    assert rule is not None
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"]["groups"] == alert_groups(store)
    assert rule["spec"]["groups"], "a PrometheusRule without groups alerts on nothing"


def status_with(report: MonitoringReport) -> dict[str, Any]:
    store = monitored()
    return compute_status(store, Observed(monitoring=report.verdict), {}, NOW)


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_disabled_monitoring_reports_no_condition() -> None:
    status = status_with(MonitoringReport(enabled=False))
    assert "MonitoringReady" not in conditions(status)


@pytest.mark.parametrize(
    ("report", "ok", "reason", "words"),
    [
        (
            MonitoringReport(True, present=["PodMonitor/downtown", "PrometheusRule/downtown"]),
            True,
            "MonitoringApplied",
            "PodMonitor/downtown and PrometheusRule/downtown applied",
        ),
        (
            MonitoringReport(
                True,
                missing=[
                    "podmonitors.monitoring.coreos.com",
                    "prometheusrules.monitoring.coreos.com",
                ],
            ),
            False,
            "MonitoringCRDsMissing",
            "install the Prometheus Operator's CRDs",
        ),
        (
            MonitoringReport(
                True,
                missing=["prometheusrules.monitoring.coreos.com"],
                present=["PodMonitor/downtown"],
            ),
            False,
            "MonitoringCRDsMissing",
            "(PodMonitor/downtown applied)",
        ),
        (
            MonitoringReport(True, failure="The API server refused PodMonitor/downtown"),
            False,
            "MonitoringRefused",
            "refused PodMonitor/downtown",
        ),
        (
            MonitoringReport(True, foreign=["PodMonitor/downtown"]),
            False,
            "ChildNotOwned",
            "not owned by this Bookstore",
        ),
        (
            MonitoringReport(True, waiting=["PodMonitor/downtown"]),
            False,
            "Paused",
            "spec.paused is true",
        ),
    ],
)
def test_monitoring_ready_says_what_happened_and_never_touches_ready_or_phase(
    report: MonitoringReport, ok: bool, reason: str, words: str
) -> None:
    store = monitored()
    without = compute_status(store, Observed(), {}, NOW)
    status = status_with(report)
    condition = conditions(status)["MonitoringReady"]
    assert condition["status"] == ("True" if ok else "False")
    assert condition["reason"] == reason
    assert words in condition["message"]
    assert status["phase"] == without["phase"]
    assert conditions(status)["Ready"] == conditions(without)["Ready"]
