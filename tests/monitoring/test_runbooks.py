"""Runbooks: every alert's runbook_url is a file in docs/runbooks/, every runbook belongs to an
alert, and each says the severity and `for` the rule really has, and how to confirm it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from bookstore_operator.builders.alerts import RUNBOOK_BASE_URL, alert_groups

from tests.chart.helm import Helm
from tests.monitoring.alert_sources import bookstore, chart_groups

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
HEADER = re.compile(r"\*\*Severity\*\* (?P<severity>\w+) · \*\*for\*\* (?P<for>\w+)")


@pytest.fixture(scope="module")
def rules(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every alerting rule, the operator's for a Bookstore with backups and the chart's."""
    operator = alert_groups(bookstore("downtown", "shops", {"backup": {"schedule": "@daily"}}))
    chart = chart_groups(helm, tmp_path_factory.mktemp("chart"))
    return {rule["alert"]: rule for group in [*operator, *chart] for rule in group["rules"]}


def test_every_runbook_url_is_a_runbook_in_this_repository(
    rules: dict[str, dict[str, Any]],
) -> None:
    for alert, rule in rules.items():
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_BASE_URL}/{alert}.md"
        path = ROOT / url.removeprefix(RUNBOOK_BASE_URL.removesuffix("docs/runbooks"))
        assert path.is_file(), f"{alert}: no {path.relative_to(ROOT)}"


def test_every_runbook_belongs_to_an_alert(rules: dict[str, dict[str, Any]]) -> None:
    assert sorted(path.stem for path in RUNBOOKS.glob("*.md")) == sorted(rules)
    assert sorted(path.name for path in RUNBOOKS.iterdir()) == sorted(f"{a}.md" for a in rules)


def test_each_runbook_states_the_rules_severity_and_for_and_how_to_confirm(
    rules: dict[str, dict[str, Any]],
) -> None:
    for alert, rule in rules.items():
        text = (RUNBOOKS / f"{alert}.md").read_text()
        assert text.startswith(f"# {alert}\n"), alert
        header = HEADER.search(text)
        assert header is not None, f"{alert}: no **Severity** ... · **for** ... line"
        assert header["severity"] == rule["labels"]["severity"], alert
        assert header["for"] == rule["for"], alert
        for section in ("## What it means", "## Confirm", "## Likely causes and fixes"):
            assert section in text, f"{alert}: no {section}"
        confirm = text.split("## Confirm", 1)[1].split("## Likely causes", 1)[0]
        assert "kubectl " in confirm, f"{alert}: no kubectl command to confirm it"


def test_runbook_links_between_runbooks_resolve() -> None:
    for path in RUNBOOKS.glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+\.md)\)", path.read_text()):
            assert (RUNBOOKS / target).is_file(), f"{path.name} links to a missing {target}"
