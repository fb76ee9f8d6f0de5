"""Where the alerting rules under test come from: the operator's builder, for a Bookstore made
here, and the chart's PrometheusRule rendered by Helm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings

from tests.chart.helm import Helm, find, write_values

CHART_ALERT_NAMES = ("BookstoreOperatorDown", "BookstoreOperatorReconcileErrors")


def bookstore(name: str, namespace: str, spec: dict[str, Any]) -> Bookstore:
    """A Bookstore as the operator parses it."""
    body = {"metadata": {"name": name, "namespace": namespace, "uid": "u-1"}, "spec": spec}
    return Bookstore.parse(body, OperatorSettings())


def chart_groups(helm: Helm, directory: Path) -> list[dict[str, Any]]:
    """The groups of the chart's PrometheusRule, with metrics.prometheusRule.enabled."""
    values = write_values(directory, "rule", {"metrics": {"prometheusRule": {"enabled": True}}})
    (rule,) = find(helm.render(values), "PrometheusRule")
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups
