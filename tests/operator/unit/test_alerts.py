"""The alerts of a Bookstore (builders.alerts): which exist, how they are scoped and annotated,
and which series they read. promtool checks and runs them in tests/monitoring."""

from __future__ import annotations

import re
from typing import Any

import pytest
from bookstore_operator.builders.alerts import (
    ALERT_NAMES,
    RUNBOOK_BASE_URL,
    alert_groups,
    promql_string,
    runbook_url,
)
from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings

from tests.monitoring.promql_names import metric_names
from tests.operator.unit.stores import all_bookstore_bodies, parse_store

# The fixed metric names of issue 13 (services and operator) an alert may read, and `up`.
FIXED_METRICS = frozenset(
    {
        "bookstore_catalog_http_requests_total",
        "bookstore_catalog_http_request_duration_seconds_bucket",
        "bookstore_orders_http_requests_total",
        "bookstore_orders_http_request_duration_seconds_bucket",
        "bookstore_catalog_stock_reservations_total",
        "bookstore_catalog_stock_reservations_rejected_total",
        "bookstore_catalog_stock_reservations_released_total",
        "bookstore_orders_placed_total",
        "bookstore_orders_rejected_total",
        "bookstore_orders_cancelled_total",
        "bookstore_orders_catalog_request_duration_seconds_bucket",
        "bookstore_orders_catalog_circuit_state",
        "bookstore_orders_left_pending_total",
        "bookstore_orders_swept_total",
        "bookstore_operator_reconciles_total",
        "bookstore_operator_bookstores",
        "bookstore_operator_bookstore_condition",
        "up",
    }
)
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)\{([^}]*)\}")


def bookstore(spec: dict[str, Any], name: str = "downtown", namespace: str = "shops") -> Bookstore:
    body = {"metadata": {"name": name, "namespace": namespace, "uid": "u-1"}, "spec": spec}
    return Bookstore.parse(body, OperatorSettings())


def rules_of(store: Bookstore) -> dict[str, dict[str, Any]]:
    (group,) = alert_groups(store)
    return {rule["alert"]: rule for rule in group["rules"]}


ALL_STORES = {name: parse_store(body) for name, body in all_bookstore_bodies().items()}


def test_a_bookstore_without_a_backup_schedule_has_every_alert_but_backups_failing() -> None:
    assert list(rules_of(bookstore({}))) == [a for a in ALERT_NAMES if a != "BackupsFailing"]


def test_a_backup_schedule_adds_backups_failing_on_the_last_backup_condition() -> None:
    rules = rules_of(bookstore({"backup": {"schedule": "0 3 * * *"}}))
    assert list(rules) == list(ALERT_NAMES)
    assert 'condition="LastBackupSucceeded"' in rules["BackupsFailing"]["expr"]
    assert "`0 3 * * *`" in rules["BackupsFailing"]["annotations"]["description"]


@pytest.mark.parametrize("name", sorted(ALL_STORES))
def test_every_alert_has_a_severity_a_for_a_summary_a_description_and_its_runbook(
    name: str,
) -> None:
    store = ALL_STORES[name]
    for alert, rule in rules_of(store).items():
        assert rule["labels"] == {"severity": rule["labels"]["severity"]}
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert re.fullmatch(r"[0-9]+m", rule["for"]), alert
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}
        assert f"{store.namespace}/{store.name}" in annotations["summary"]
        assert f"{store.namespace}/{store.name}" in annotations["description"]
        assert annotations["runbook_url"] == f"{RUNBOOK_BASE_URL}/{alert}.md"


def test_runbook_urls_point_at_docs_runbooks_in_the_repository() -> None:
    assert runbook_url("CatalogDown") == (
        "https://github.com/bookstore-operator/bookstore-operator/blob/main/docs/runbooks/"
        "CatalogDown.md"
    )


@pytest.mark.parametrize("name", sorted(ALL_STORES))
def test_every_series_an_alert_reads_is_this_bookstores_and_a_fixed_metric(name: str) -> None:
    store = ALL_STORES[name]
    for alert, rule in rules_of(store).items():
        expr = rule["expr"]
        assert metric_names(expr) <= FIXED_METRICS, alert
        selectors = SELECTOR.findall(expr)
        assert {metric for metric, _ in selectors} == metric_names(expr), alert
        for metric, matchers in selectors:
            assert f'namespace="{store.namespace}"' in matchers.split(","), (alert, metric)
            assert f'bookstore="{store.name}"' in matchers.split(","), (alert, metric)


def test_alerts_aggregate_away_the_pods_so_a_replaced_pod_keeps_the_alert() -> None:
    for alert, rule in rules_of(bookstore({"backup": {"schedule": "@daily"}})).items():
        assert "by (namespace, bookstore" in rule["expr"], alert


def test_service_alerts_leave_out_probes_and_scrapes_and_need_traffic() -> None:
    rules = rules_of(bookstore({}))
    for alert in ("OrdersFailingHigh", "OrdersLatencyHigh"):
        expr = rules[alert]["expr"]
        assert 'route!~"/health/.*|/metrics"' in expr
        assert expr.endswith(">= 0.1"), alert
    assert 'status=~"5.."' in rules["OrdersFailingHigh"]["expr"]
    assert "histogram_quantile(0.99," in rules["OrdersLatencyHigh"]["expr"]


@pytest.mark.parametrize(
    ("spec", "absent_counts"),
    [
        ({}, True),
        ({"catalog": {"replicas": 0}}, True),  # the HPA keeps minReplicas >= 1
        ({"catalog": {"replicas": 0, "autoscaling": {"enabled": False}}}, False),
        ({"catalog": {"replicas": 1, "autoscaling": {"enabled": False}}}, True),
        ({"paused": True}, False),
    ],
    ids=["default", "autoscaled", "scaled-to-zero", "one-replica", "paused"],
)
def test_catalog_down_counts_missing_targets_only_when_catalog_pods_must_exist(
    spec: dict[str, Any], absent_counts: bool
) -> None:
    expr = rules_of(bookstore(spec))["CatalogDown"]["expr"]
    up = 'up{namespace="shops",bookstore="downtown",component="catalog"}'
    assert expr.startswith(f"sum by (namespace, bookstore, component) ({up}) == 0")
    assert (f"absent({up})" in expr) is absent_counts


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("downtown", '"downtown"'),
        ('we"ird', '"we\\"ird"'),
        ("back\\slash", '"back\\\\slash"'),
        ("two\nlines", '"two\\nlines"'),
    ],
)
def test_label_values_are_escaped_as_promql_strings(value: str, literal: str) -> None:
    assert promql_string(value) == literal


def test_odd_names_are_escaped_in_every_matcher() -> None:
    store = bookstore({}, name='we"ird', namespace="it\\s")
    for rule in rules_of(store).values():
        assert 'namespace="it\\\\s",bookstore="we\\"ird"' in rule["expr"]


def test_each_bookstore_has_its_own_group_name() -> None:
    names = {
        alert_groups(bookstore({}, name, namespace))[0]["name"]
        for name, namespace in [("a", "b"), ("b", "a"), ("a", "a"), ("b", "b")]
    }
    assert len(names) == 4
