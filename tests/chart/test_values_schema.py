"""values.schema.json rejects bad values, and helm's message names the offending value."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.helm import CHART, Helm, write_values

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


def documented_leaves(text: str) -> dict[str, bool]:
    """Every leaf value path of values.yaml, and whether it or an ancestor has a `# --` doc."""
    leaves: dict[str, bool] = {}
    stack: list[tuple[int, str, bool]] = []  # (indent, key, documented) of open mappings
    lines = text.splitlines()
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = len(match[1]), match[2], match[3].strip()
        while stack and stack[-1][0] >= indent:
            stack.pop()
        above = number - 1
        documented = False
        while above >= 0 and lines[above].strip().startswith("#"):
            documented = documented or lines[above].strip().startswith("# --")
            above -= 1
        documented = documented or any(parent[2] for parent in stack)
        path = ".".join([*(parent[1] for parent in stack), key])
        if rest and not rest.startswith("#"):
            leaves[path] = documented
        else:
            stack.append((indent, key, documented))
    return leaves


def test_every_value_is_documented_with_a_helm_docs_comment() -> None:
    leaves = documented_leaves((CHART / "values.yaml").read_text())
    assert leaves
    assert [path for path, documented in leaves.items() if not documented] == []


def test_schema_and_values_name_the_same_top_level_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]) - {"global"} == set(values)
