"""The README's examples and reference stay consistent with the CRD (no cluster runs here)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_docs_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hack_docs", ROOT / "hack" / "docs.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


docs = _load_docs_module()


def _plain_json_schema(node: Any) -> Any:
    """Drop the Kubernetes extensions so jsonschema can check an object against the CRD."""
    if isinstance(node, dict):
        cleaned = {
            k: _plain_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes")
        }
        if node.get("x-kubernetes-int-or-string"):
            cleaned.pop("type", None)
        return cleaned
    if isinstance(node, list):
        return [_plain_json_schema(i) for i in node]
    return node


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    return docs.load_crd()


def test_readme_generated_blocks_match_the_crd() -> None:
    assert docs.main(["--check"]) == 0, "README.md is stale: run `make docs`"


def test_sample_status_shown_in_readme_is_valid_against_the_status_schema(
    crd: dict[str, Any],
) -> None:
    status_schema = _plain_json_schema(docs.schema_of(crd)["properties"]["status"])
    jsonschema.validate(docs.SAMPLE_STATUS, status_schema)
    types = [c["type"] for c in docs.SAMPLE_STATUS["conditions"]]
    assert types == ["Ready", "DatabaseReady", "CatalogReady", "OrdersReady", "Progressing"]


def test_every_printer_column_resolves_against_a_real_status(crd: dict[str, Any]) -> None:
    sample = {"metadata": {"name": "downtown"}, "status": docs.SAMPLE_STATUS}
    columns = docs.served_version(crd)["additionalPrinterColumns"]
    assert [c["name"].upper() for c in columns] == [
        "READY",
        "PHASE",
        "VERSION",
        "CATALOG",
        "ORDERS",
        "AGE",
    ]
    for column in columns:
        if column["jsonPath"] != ".metadata.creationTimestamp":
            assert docs.jsonpath(sample, column["jsonPath"]), column


def test_every_spec_field_the_readme_names_exists_in_the_crd(crd: dict[str, Any]) -> None:
    known = {path for path, _ in docs._walk(docs.schema_of(crd)["properties"]["spec"], "spec")}
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"`(spec(?:\.[A-Za-z]+)+)", readme))
    assert named, "the README names no spec field at all"
    assert named <= known, f"README names fields the CRD lacks: {sorted(named - known)}"


def test_every_spec_field_has_a_description(crd: dict[str, Any]) -> None:
    missing = [
        path
        for path, node in docs._walk(docs.schema_of(crd)["properties"]["spec"], "spec")
        if not node.get("description")
    ]
    assert not missing, f"fields without a description (kubectl explain shows nothing): {missing}"
