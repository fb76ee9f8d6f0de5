"""values.schema.json rejects bad values, and helm's message names the offending value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import Helm, write_values

BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "replicas-not-integer": ({"replicas": "two"}, "replicas"),
    "replicas-negative": ({"replicas": -1}, "replicas"),
    "pull-policy-not-in-enum": (
        {"image": {"repository": "x", "pullPolicy": "Sometimes"}},
        "pullPolicy",
    ),
    "image-repository-missing": ({"image": {"repository": None}}, "repository"),
    "watch-namespace-not-dns-label": ({"watchNamespaces": ["Shops_1"]}, "watchNamespaces"),
    "watch-namespaces-not-list": ({"watchNamespaces": "shops"}, "watchNamespaces"),
    "unknown-top-level-value": ({"replicaCount": 2}, "replicaCount"),
    "resources-bad-quantity": ({"resources": {"limits": {"memory": "lots"}}}, "memory"),
    "health-port-privileged": ({"healthPort": 80}, "healthPort"),
    "verbose-not-boolean": ({"verbose": "yes"}, "verbose"),
}


@pytest.mark.parametrize("case", sorted(BAD_VALUES))
def test_bad_values_are_rejected_naming_the_value(helm: Helm, tmp_path: Path, case: str) -> None:
    values, named = BAD_VALUES[case]
    result = helm.template(write_values(tmp_path, case, values))
    assert result.returncode != 0, f"helm template accepted {values}"
    assert "schema" in result.stderr.lower()
    assert named in result.stderr, result.stderr


def test_default_values_satisfy_the_schema(helm: Helm) -> None:
    result = helm.template()
    assert result.returncode == 0, result.stderr
