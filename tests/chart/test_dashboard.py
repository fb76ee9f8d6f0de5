"""The Grafana dashboard: shipped as a sidecar ConfigMap only when enabled, with a data source,
namespace and bookstore selector, and valid PromQL on the fixed metric names in every panel."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.chart.helm import CHART, NAMESPACE, Helm, find, write_values
from tests.monitoring.promql_names import grafana_query_names, label_names, metric_names
from tests.monitoring.promtool import INSTALL_HINT, Promtool, find_promtool

DASHBOARD = CHART / "files" / "dashboards" / "bookstore.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
HTTP = frozenset({"method", "route", "status"})
# Every metric issue 13 fixes (a histogram by its _bucket), with its own labels; the
# dashboard shows each of them.
FIXED_METRICS: dict[str, frozenset[str]] = {
    "bookstore_catalog_http_requests_total": HTTP,
    "bookstore_catalog_http_request_duration_seconds_bucket": HTTP,
    "bookstore_orders_http_requests_total": HTTP,
    "bookstore_orders_http_request_duration_seconds_bucket": HTTP,
    "bookstore_catalog_stock_reservations_total": frozenset(),
    "bookstore_catalog_stock_reservations_rejected_total": frozenset({"reason"}),
    "bookstore_catalog_stock_reservations_released_total": frozenset(),
    "bookstore_orders_placed_total": frozenset(),
    "bookstore_orders_rejected_total": frozenset({"reason"}),
    "bookstore_orders_cancelled_total": frozenset(),
    "bookstore_orders_catalog_request_duration_seconds_bucket": frozenset({"operation", "outcome"}),
    "bookstore_orders_catalog_circuit_state": frozenset(),
    "bookstore_orders_left_pending_total": frozenset(),
    "bookstore_orders_swept_total": frozenset(),
    "bookstore_operator_reconciles_total": frozenset({"kind", "result"}),
    "bookstore_operator_reconcile_duration_seconds_bucket": frozenset({"kind"}),
    "bookstore_operator_api_requests_total": frozenset({"verb", "kind", "code"}),
    "bookstore_operator_drift_repairs_total": frozenset({"kind"}),
    "bookstore_operator_bookstores": frozenset({"phase"}),
    "bookstore_operator_bookstore_condition": frozenset({"namespace", "bookstore", "condition"}),
    "bookstore_operator_lock_wait_seconds_bucket": frozenset(),
}
# Labels Prometheus gives every series of a target: namespace and pod (and job, instance)
# from discovery, bookstore and component from the PodMonitor's relabelling; le on buckets.
TARGET_LABELS = frozenset({"namespace", "pod", "job", "instance", "bookstore", "component"})
# Series of one Bookstore: a panel must show only the selected namespace and bookstores.
PER_BOOKSTORE = re.compile(
    r"^(bookstore_(catalog|orders)_.+|up|bookstore_operator_bookstore_condition)$"
)
STORE_MATCHERS = ('namespace="$namespace"', 'bookstore=~"$bookstore"')
# The services' HTTP series count kubelet probes and scrapes too; the panels (like the
# alerts) show customers' requests only.
HTTP_METRIC = re.compile(r"^bookstore_(catalog|orders)_http_")
CUSTOMERS_ONLY = 'route!~"/health/.*|/metrics"'
# The API server refuses a ConfigMap whose data exceeds 1 MiB.
CONFIGMAP_LIMIT_BYTES = 1024 * 1024


def load_dashboard() -> dict[str, Any]:
    """The dashboard as the chart ships it."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside (collapsed) rows."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels") or [])


def graph_panels() -> list[dict[str, Any]]:
    """The panels that draw data (every one but the rows)."""
    return [panel for panel in all_panels(load_dashboard()["panels"]) if panel["type"] != "row"]


def expressions() -> list[str]:
    """The PromQL of every panel target."""
    return [target["expr"] for panel in graph_panels() for target in panel["targets"]]


def variables() -> dict[str, dict[str, Any]]:
    """The dashboard's template variables, by name."""
    return {item["name"]: item for item in load_dashboard()["templating"]["list"]}


def variable_query(variable: dict[str, Any]) -> str:
    """The query of a query variable (Grafana stores a string or an object)."""
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def dashboard_configmaps(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ConfigMaps that hold a Grafana dashboard."""
    return [
        manifest
        for manifest in find(manifests, "ConfigMap")
        if any(key.endswith(".json") for key in (manifest.get("data") or {}))
    ]


def test_dashboard_configmap_is_not_rendered_by_default(helm: Helm) -> None:
    assert dashboard_configmaps(helm.render()) == []


def test_enabled_dashboard_is_a_sidecar_configmap_holding_the_json(
    helm: Helm, tmp_path: Path
) -> None:
    values = write_values(tmp_path, "dashboard", {"dashboard": {"enabled": True}})
    (configmap,) = dashboard_configmaps(helm.render(values))

    meta = configmap["metadata"]
    assert meta["namespace"] == NAMESPACE
    assert meta["labels"]["grafana_dashboard"] == "1"  # the sidecar's default label
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    assert "annotations" not in meta
    assert set(configmap["data"]) == {"bookstore.json"}
    assert json.loads(configmap["data"]["bookstore.json"]) == load_dashboard()
    assert len(configmap["data"]["bookstore.json"].encode()) < CONFIGMAP_LIMIT_BYTES
    kubernetes_validate.validate(configmap, kubernetes_validate.latest_version(), strict=True)


def test_dashboard_labels_and_annotations_come_from_values(helm: Helm, tmp_path: Path) -> None:
    dashboard = {
        "enabled": True,
        "labels": {"grafana_dashboard": "bookstores", "release": "kube-prometheus-stack"},
        "annotations": {"grafana_folder": "Bookstores"},
    }
    values = write_values(tmp_path, "dashboard", {"dashboard": dashboard})
    (configmap,) = dashboard_configmaps(helm.render(values))

    meta = configmap["metadata"]
    assert meta["labels"]["grafana_dashboard"] == "bookstores"
    assert meta["labels"]["release"] == "kube-prometheus-stack"
    assert meta["annotations"] == {"grafana_folder": "Bookstores"}


def test_dashboard_is_grafana_json_with_a_stable_uid_and_no_import_inputs() -> None:
    dashboard = load_dashboard()
    assert dashboard["uid"] == "bookstore-overview"
    assert dashboard["schemaVersion"] >= 36  # panels' datasource as {type, uid} objects
    assert dashboard["id"] is None  # Grafana assigns it; a fixed id clashes
    assert "__inputs" not in dashboard  # provisioned as is, never through the import dialog


def test_dashboard_selects_a_data_source_then_a_namespace_then_bookstores() -> None:
    found = variables()
    assert list(found) == ["datasource", "namespace", "bookstore"]
    assert found["datasource"]["type"] == "datasource"
    assert found["datasource"]["query"] == "prometheus"
    for name in ("namespace", "bookstore"):
        assert found[name]["type"] == "query"
        assert found[name]["datasource"] == DATASOURCE
        assert grafana_query_names(variable_query(found[name])), f"{name} reads no metric"
    assert variable_query(found["namespace"]).endswith(", namespace)")
    assert variable_query(found["bookstore"]).endswith(", bookstore)")
    assert 'namespace="$namespace"' in variable_query(found["bookstore"])
    assert found["bookstore"]["multi"] is True
    assert found["bookstore"]["includeAll"] is True


def test_every_panel_has_a_query_on_the_selected_data_source() -> None:
    panels = graph_panels()
    assert len(panels) >= 20
    ids = [panel["id"] for panel in all_panels(load_dashboard()["panels"])]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        title = panel["title"]
        assert panel["datasource"] == DATASOURCE, title
        assert panel["targets"], f"panel {title!r} has no query"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), f"panel {title!r} repeats a refId"
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, title
            assert target["expr"].strip(), f"panel {title!r} has an empty query"
            assert metric_names(target["expr"]), f"panel {title!r} reads no metric"
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"panel {title!r} is wider than the dashboard"


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in all_panels(load_dashboard()["panels"]):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]


def own_labels(name: str) -> frozenset[str]:
    """The labels a fixed metric (or a histogram's _count or _sum) carries itself."""
    for suffix in ("_count", "_sum"):
        if name.endswith(suffix):
            return FIXED_METRICS[name.removesuffix(suffix) + "_bucket"]
    return FIXED_METRICS.get(name, frozenset())


def test_dashboard_shows_every_fixed_metric_and_no_other() -> None:
    used = set().union(*(metric_names(expr) for expr in expressions())) - {"up"}
    assert used >= set(FIXED_METRICS), f"not shown: {sorted(set(FIXED_METRICS) - used)}"
    derived = {name.removesuffix("_bucket") + "_count" for name in FIXED_METRICS}
    assert used <= set(FIXED_METRICS) | derived, f"unknown: {sorted(used - set(FIXED_METRICS))}"


@pytest.mark.parametrize("expr", expressions())
def test_every_label_a_query_uses_is_one_its_series_carry(expr: str) -> None:
    names = metric_names(expr)
    carried = set(TARGET_LABELS).union(*(own_labels(name) for name in names))
    if any(name.endswith("_bucket") for name in names):
        carried.add("le")
    unknown = label_names(expr) - carried
    assert not unknown, f"{expr!r} uses labels none of {sorted(names)} carries: {unknown}"


def selectors(expr: str, name: str) -> list[str]:
    """The label matcher block of each place `expr` selects metric `name` ("" when bare)."""
    pattern = rf"(?<![A-Za-z0-9_:]){re.escape(name)}(?![A-Za-z0-9_:])\s*(\{{[^}}]*\}})?"
    return [match.group(1) or "" for match in re.finditer(pattern, expr)]


@pytest.mark.parametrize("expr", expressions())
def test_per_bookstore_series_are_filtered_to_the_selected_bookstores(expr: str) -> None:
    for name in metric_names(expr):
        if not PER_BOOKSTORE.match(name):
            continue
        found = selectors(expr, name)
        assert found, f"{name} not found as a selector in {expr}"
        for block in found:
            missing = [matcher for matcher in STORE_MATCHERS if matcher not in block]
            assert not missing, f"{name} in {expr!r} lacks {missing}"


@pytest.mark.parametrize("expr", [expr for expr in expressions() if "_http_" in expr])
def test_service_traffic_panels_leave_out_probes_and_scrapes(expr: str) -> None:
    for name in metric_names(expr):
        if HTTP_METRIC.match(name):
            for block in selectors(expr, name):
                assert CUSTOMERS_ONLY in block, f"{name} in {expr!r} counts probes and scrapes"


def as_plain_promql(expr: str) -> str:
    """An expression with Grafana's variables replaced by what they become at query time."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?[A-Za-z0-9_]+\}?", "value", expr)


def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    binary = find_promtool()
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    queries = expressions()
    rules = [
        {"record": f"dashboard:query_{index}", "expr": as_plain_promql(expr)}
        for index, expr in enumerate(queries)
    ]
    rules_file = tmp_path / "dashboard-rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = Promtool(binary).check_rules([rules_file])
    assert result.returncode == 0, result.output
    assert f"SUCCESS: {len(queries)} rules found" in result.output
