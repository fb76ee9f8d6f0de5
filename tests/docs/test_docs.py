"""The README's examples and reference stay consistent with the CRD (no cluster runs here)."""

from __future__ import annotations

import importlib.util
import json
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


def _generated_block(name: str) -> list[str]:
    """The lines of one GENERATED block of the README, as it is committed."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(
        rf"<!-- BEGIN GENERATED: {name} -->\n(.*?)<!-- END GENERATED: {name} -->", readme, re.S
    )
    assert found, f"README.md has no GENERATED block {name!r}"
    return found.group(1).splitlines()


def _cells(line: str) -> list[str]:
    """The cells of one markdown table row, split on unescaped pipes (GFM's rule)."""
    assert line.startswith("|"), f"not a table row: {line!r}"
    assert line.endswith("|"), f"table row does not end with a pipe: {line!r}"
    return [cell.strip() for cell in re.split(r"(?<!\\)\|", line[1:-1])]


INLINE_CODE = re.compile(r"`[^`]+`|`` [^\n]+? ``")


def test_spec_reference_renders_as_one_well_formed_table() -> None:
    lines = _generated_block("spec-reference")
    rows = [_cells(line) for line in lines]  # every line is a row: no stray text, no blank line
    assert rows[0] == ["field", "type", "default", "description"]
    assert rows[1] == ["---"] * 4
    widths = {len(row) for row in rows}
    assert widths == {4}, f"rows with a different number of cells: {widths}"


def test_spec_reference_defaults_are_complete_inline_code_or_empty() -> None:
    for field, _, default, _ in (_cells(line) for line in _generated_block("spec-reference")[2:]):
        assert default == "" or INLINE_CODE.fullmatch(default), f"{field}: default {default!r}"
        assert "..." not in default, f"{field}: YAML's document end marker leaked: {default!r}"


def test_spec_reference_defaults_read_back_as_the_crd_defaults(crd: dict[str, Any]) -> None:
    defaults = {
        path: node["default"]
        for path, node in docs._walk(docs.schema_of(crd)["properties"]["spec"], "spec")
        if "default" in node
    }
    shown = {
        field.strip("`"): default
        for field, _, default, _ in (_cells(r) for r in _generated_block("spec-reference")[2:])
    }
    for path, value in defaults.items():
        if path in shown:
            rendered = shown[path].strip("`").strip().replace("\\|", "|")
            assert json.loads(rendered) == value, f"{path}: {shown[path]!r} is not {value!r}"
    assert shown["spec.catalog.replicas"] == "`2`"  # the scalar the bug rendered as "`2"


def test_spec_reference_lists_every_crd_field_exactly_once(crd: dict[str, Any]) -> None:
    fields = [_cells(line)[0] for line in _generated_block("spec-reference")[2:]]
    assert all(INLINE_CODE.fullmatch(f) for f in fields), fields
    listed = [f.strip("`") for f in fields]
    expected = [
        path
        for path, _ in docs._walk(docs.schema_of(crd)["properties"]["spec"], "spec")
        if path != "spec" and ".allowFrom[]." not in path and ".resources." not in path
    ]
    assert sorted(listed) == sorted(expected)
    assert len(set(listed)) == len(listed), "a field is listed twice"
