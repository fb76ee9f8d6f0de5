"""The alerting rules, checked by promtool: the PrometheusRule the operator builds for a
Bookstore (builders.alerts) and the chart's own. `promtool check rules` over many Bookstores,
and `promtool test rules` with tests/monitoring/rules/*.test.yaml, where every alert fires and
does not fire."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from bookstore_operator.builders.alerts import ALERT_NAMES, alert_groups
from bookstore_operator.models import Bookstore

from tests.chart.helm import NAMESPACE, Helm, find, write_values
from tests.monitoring.alert_sources import CHART_ALERT_NAMES, bookstore, chart_groups
from tests.monitoring.promtool import Promtool, write_rule_file
from tests.operator.unit.stores import all_bookstore_bodies, parse_store

RULE_TESTS = Path(__file__).resolve().parent / "rules"

# Bookstores whose rules are only checked (syntax, PromQL, templates): the unit tests' spec
# matrix and examples, and names that stretch the label matchers.
ODD_BOOKSTORES = {
    "one-letter": bookstore("a", "b", {}),
    "dots-and-digits": bookstore("0.shop-2.example", "team-7", {}),
    "longest-names": bookstore("s" * 63, "n" * 63, {"backup": {"schedule": "@hourly"}}),
    # Not a Kubernetes name, but the matchers must stay valid PromQL whatever they hold.
    "quotes-and-backslashes": bookstore('we"ird\\shop', "it's", {"paused": True}),
    "catalog-scaled-to-zero": bookstore(
        "closed", "shops", {"catalog": {"replicas": 0, "autoscaling": {"enabled": False}}}
    ),
}


def checked_bookstores() -> dict[str, Bookstore]:
    stores = {name: parse_store(body) for name, body in all_bookstore_bodies().items()}
    return {**stores, **ODD_BOOKSTORES}


# The rule files the promtool unit tests name (rule_files), and what each holds.
RULE_FILES: dict[str, Callable[[Helm, Path], list[dict[str, Any]]]] = {
    "downtown.rules.yaml": lambda _helm, _dir: alert_groups(
        bookstore("downtown", "shops", {"backup": {"schedule": "0 3 * * *"}})
    ),
    "uptown.rules.yaml": lambda _helm, _dir: alert_groups(
        bookstore("uptown", "shops", {"paused": True})
    ),
    "operator.rules.yaml": chart_groups,
}


def rule_test_files() -> list[Path]:
    return sorted(RULE_TESTS.glob("*.test.yaml"))


def alert_names(groups: list[dict[str, Any]]) -> list[str]:
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_chart_rule_is_rendered_only_when_enabled_and_needs_the_metrics_port(
    helm: Helm, tmp_path: Path
) -> None:
    assert find(helm.render(), "PrometheusRule") == []
    values = write_values(
        tmp_path, "no-port", {"metrics": {"port": 0, "prometheusRule": {"enabled": True}}}
    )
    result = helm.template(values)
    assert result.returncode != 0
    assert "metrics.prometheusRule.enabled needs the operator's metrics" in result.stderr


def test_the_chart_rule_carries_the_configured_labels(helm: Helm, tmp_path: Path) -> None:
    values = write_values(
        tmp_path,
        "labels",
        {"metrics": {"prometheusRule": {"enabled": True, "labels": {"release": "kps"}}}},
    )
    (rule,) = find(helm.render(values), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert rule["metadata"]["namespace"] == "bookstore-system"
    assert alert_names(rule["spec"]["groups"]) == list(CHART_ALERT_NAMES)


@pytest.mark.parametrize(
    "release_values", [{}, {"fullnameOverride": "x" * 63}], ids=["default", "long"]
)
def test_the_chart_rule_selects_the_targets_of_the_charts_service_monitor(
    helm: Helm, tmp_path: Path, release_values: dict[str, Any]
) -> None:
    """`job` is the metrics Service's name (the ServiceMonitor's default job label), and the
    ServiceMonitor honours the operator's own `namespace` label, which the per-Bookstore
    condition alerts match on (else it would be renamed exported_namespace)."""
    monitoring = {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}
    values = write_values(tmp_path, "both", {**release_values, "metrics": monitoring})
    manifests = helm.render(values)
    (service,) = [
        s
        for s in find(manifests, "Service")
        if [p["name"] for p in s["spec"]["ports"]] == ["metrics"]
    ]
    (monitor,) = find(manifests, "ServiceMonitor")
    (rule,) = find(manifests, "PrometheusRule")
    assert [endpoint["honorLabels"] for endpoint in monitor["spec"]["endpoints"]] == [True]
    assert "jobLabel" not in monitor["spec"]
    targets = f'job="{service["metadata"]["name"]}",namespace="{NAMESPACE}"'
    for group in rule["spec"]["groups"]:
        for alerting_rule in group["rules"]:
            assert targets in alerting_rule["expr"], alerting_rule["alert"]


@pytest.mark.parametrize("name", sorted(checked_bookstores()))
def test_promtool_accepts_the_rules_built_for_a_bookstore(
    promtool: Promtool, tmp_path: Path, name: str
) -> None:
    store = checked_bookstores()[name]
    rules = write_rule_file(tmp_path / "rules.yaml", alert_groups(store))
    result = promtool.check_rules([rules])
    assert result.returncode == 0, result.output
    expected = len(ALERT_NAMES) if store.spec.backup.schedule else len(ALERT_NAMES) - 1
    assert f"SUCCESS: {expected} rules found" in result.output


def test_promtool_accepts_the_charts_rule(promtool: Promtool, helm: Helm, tmp_path: Path) -> None:
    rules = write_rule_file(tmp_path / "operator.rules.yaml", chart_groups(helm, tmp_path))
    result = promtool.check_rules([rules])
    assert result.returncode == 0, result.output
    assert f"SUCCESS: {len(CHART_ALERT_NAMES)} rules found" in result.output


def test_promtool_rejects_a_broken_rule(promtool: Promtool, tmp_path: Path) -> None:
    """The check can fail: an expression that is not PromQL is refused."""
    groups = alert_groups(bookstore("downtown", "shops", {}))
    groups[0]["rules"][0]["expr"] = "sum by (namespace (up"
    result = promtool.check_rules([write_rule_file(tmp_path / "broken.yaml", groups)])
    assert result.returncode != 0
    assert "parse error" in result.output


@pytest.mark.parametrize("test_file", rule_test_files(), ids=lambda path: path.name)
def test_promtool_unit_tests_of_the_alerts_pass(
    promtool: Promtool, helm: Helm, tmp_path: Path, test_file: Path
) -> None:
    shutil.copy(test_file, tmp_path / test_file.name)
    for rule_file in yaml.safe_load(test_file.read_text())["rule_files"]:
        assert rule_file in RULE_FILES, f"{test_file.name} names an unknown {rule_file}"
        write_rule_file(tmp_path / rule_file, RULE_FILES[rule_file](helm, tmp_path))
    result = promtool.test_rules(tmp_path / test_file.name)
    assert result.returncode == 0, result.output
    assert "SUCCESS" in result.output


def alert_cases() -> Iterator[tuple[str, str, bool]]:
    """(test file, alert name, fires) for every alert_rule_test of every unit test file."""
    for test_file in rule_test_files():
        for group in yaml.safe_load(test_file.read_text())["tests"]:
            for case in group.get("alert_rule_test") or []:
                yield test_file.name, case["alertname"], bool(case.get("exp_alerts"))


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not(
    helm: Helm, tmp_path: Path
) -> None:
    built = {name for groups in RULE_FILES.values() for name in alert_names(groups(helm, tmp_path))}
    assert built == {*ALERT_NAMES, *CHART_ALERT_NAMES}
    cases = list(alert_cases())
    firing = {alert for _, alert, fires in cases if fires}
    quiet = {alert for _, alert, fires in cases if not fires}
    assert sorted(built - firing) == [], "alerts never tested firing"
    assert sorted(built - quiet) == [], "alerts never tested not firing"
    assert {alert for _, alert, _ in cases} <= built, "a unit test names an alert that is not built"
