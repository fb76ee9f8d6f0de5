"""Render the README's generated blocks from the CRD, so the docs cannot drift from the API.

`python hack/docs.py` rewrites the blocks in README.md; `python hack/docs.py --check` fails
when they are stale (tests/docs runs the same check). Blocks:

- `kubectl-get`: what `kubectl get bookstores`, `kubectl describe bookstore` and
  `kubectl explain bookstore.spec` print, rendered from the CRD's printer columns, its status
  schema (for a realistic status object, validated against it) and its field descriptions;
- `spec-reference`: every spec field with its type, default and description.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.status import Observed, compute_status

ROOT = Path(__file__).resolve().parent.parent
CRD_PATH = ROOT / "crds" / "bookstore.dev_bookstores.yaml"
README_PATH = ROOT / "README.md"


def _workload(replicas: int) -> dict[str, Any]:
    """A Deployment or StatefulSet as its controller reports it when fully rolled out."""
    return {
        "metadata": {"generation": 3},
        "spec": {"replicas": replicas},
        "status": {
            "observedGeneration": 3,
            "replicas": replicas,
            "readyReplicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [{"type": "Available", "status": "True"}],
        },
    }


def sample_status() -> dict[str, Any]:
    """The status the operator itself computes for a ready Bookstore `downtown` in `shops`."""
    body = {"metadata": {"name": "downtown", "namespace": "shops", "uid": "0", "generation": 2}}
    store = Bookstore.parse(body, OperatorSettings(default_version="0.1.0"))
    observed = Observed(catalog=_workload(2), orders=_workload(2), database=_workload(1))
    return compute_status(store, observed, {}, now="2026-11-21T06:02:11Z")


SAMPLE_STATUS = sample_status()
# What the operator posts (reconciler.announce) while it creates a Bookstore and sees it ready.
SAMPLE_EVENTS = [
    ("Normal", "Created", "Created Secret/downtown-db"),
    ("Normal", "Created", "Created StatefulSet/downtown-postgres"),
    ("Normal", "Created", "Created Deployment/downtown-catalog"),
    ("Normal", "Created", "Created Deployment/downtown-orders"),
    ("Normal", "RolloutComplete", SAMPLE_STATUS["conditions"][0]["message"]),
]


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    """Load the Bookstore CRD (the single source of the API)."""
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    return crd


def served_version(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The storage version's entry of `spec.versions`."""
    return next(v for v in crd["spec"]["versions"] if v.get("storage"))


def schema_of(crd: Mapping[str, Any]) -> dict[str, Any]:
    """The storage version's openAPIV3Schema."""
    schema: dict[str, Any] = served_version(crd)["schema"]["openAPIV3Schema"]
    return schema


def jsonpath(obj: Any, path: str) -> str:
    """Evaluate the kubectl JSONPath subset printer columns use (`.a.b`, `[?(@.k=="v")]`)."""
    current: list[Any] = [obj]
    for step in re.findall(r"\.[A-Za-z0-9_]+|\[\?\(@\.\w+==\"[^\"]*\"\)\]", path):
        if step.startswith("."):
            key = step[1:]
            current = [c[key] for c in current if isinstance(c, Mapping) and key in c]
        else:
            key, value = re.findall(r"@\.(\w+)==\"([^\"]*)\"", step)[0]
            current = [i for c in current if isinstance(c, list) for i in c if i.get(key) == value]
    return " ".join(str(c) for c in current)


def render_get(crd: Mapping[str, Any]) -> str:
    """`kubectl get bookstores` for the sample object, columns from the CRD."""
    sample = {"metadata": {"name": "downtown"}, "status": SAMPLE_STATUS}
    columns = served_version(crd).get("additionalPrinterColumns", [])
    header = ["NAME"] + [c["name"].upper() for c in columns]
    row = ["downtown"]
    for column in columns:
        row.append(
            "12m"
            if column["jsonPath"] == ".metadata.creationTimestamp"
            else jsonpath(sample, column["jsonPath"]) or "<none>"
        )
    widths = [max(len(h), len(r)) + 3 for h, r in zip(header, row, strict=True)]
    lines = [
        "".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        for cells in (header, row)
    ]
    return "\n".join(lines)


def _title(key: str) -> str:
    """`lastTransitionTime` -> `Last Transition Time`, as kubectl describe prints keys."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", key[:1].upper() + key[1:])


def _describe_lines(value: Any, indent: int) -> Iterator[str]:
    pad = "  " * indent
    if isinstance(value, Mapping):
        width = max(len(_title(k)) for k in value) + 2
        for key, item in sorted(value.items()):
            if isinstance(item, Mapping | list):
                yield f"{pad}{_title(key)}:"
                yield from _describe_lines(item, indent + 1)
            else:
                yield f"{pad}{(_title(key) + ':').ljust(width)}{item}"
    else:  # list items follow one another at the list's own indent, as kubectl prints them
        for item in value:
            yield from _describe_lines(item, indent)


def render_describe() -> str:
    """The Status and Events part of `kubectl describe bookstore downtown`."""
    lines = [
        "Name:         downtown",
        "Namespace:    shops",
        "API Version:  bookstore.dev/v1alpha1",
        "Kind:         Bookstore",
        "...",
        "Status:",
    ]
    lines += list(_describe_lines(SAMPLE_STATUS, 1))
    lines.append("Events:")
    lines.append("  Type    Reason           Age   From                Message")
    lines.append("  ----    ------           ----  ----                -------")
    for kind, reason, message in SAMPLE_EVENTS:
        lines.append(f"  {kind:<8}{reason:<17}12m   bookstore-operator  {message}")
    return "\n".join(lines)


def _type_name(node: Mapping[str, Any]) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "IntOrString"
    kind = str(node.get("type", "Object"))
    if kind == "array":
        return f"[]{_type_name(node.get('items', {}))}"
    return {
        "object": "Object",
        "string": "string",
        "integer": "integer",
        "boolean": "boolean",
        "number": "number",
    }.get(kind, kind)


def render_explain(crd: Mapping[str, Any], field: str = "spec") -> str:
    """`kubectl explain bookstore.spec` rendered from the CRD's descriptions."""
    node = schema_of(crd)["properties"][field]
    wrap = textwrap.TextWrapper(width=76, initial_indent="    ", subsequent_indent="    ")
    fields_wrap = textwrap.TextWrapper(width=78, initial_indent="    ", subsequent_indent="    ")
    lines = [
        f"GROUP:      {crd['spec']['group']}",
        f"KIND:       {crd['spec']['names']['kind']}",
        f"VERSION:    {served_version(crd)['name']}",
        "",
        f"FIELD: {field} <{_type_name(node)}>",
        "",
        "DESCRIPTION:",
    ]
    lines += [*wrap.wrap(node.get("description", "<empty>")), "", "FIELDS:"]
    for name, child in node.get("properties", {}).items():
        lines.append(f"  {name}\t<{_type_name(child)}>")
        lines += fields_wrap.wrap(child.get("description", "<no description>"))
        lines.append("")
    return "\n".join(lines).rstrip()


def _walk(node: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, node
    if node.get("type") == "array" and node.get("items", {}).get("type") == "object":
        node = node["items"]
        path += "[]"
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")


def inline_default(value: Any) -> str:
    """A default as one inline code span of JSON: valid YAML, but never YAML's `...` end marker."""
    text = json.dumps(value, separators=(", ", ": "), sort_keys=True).replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def render_reference(crd: Mapping[str, Any]) -> str:
    """A table of every spec field: path, type, default, description."""
    rows = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for path, node in _walk(schema_of(crd)["properties"]["spec"], "spec"):
        if path == "spec" or ".allowFrom[]." in path or ".resources." in path:
            continue  # standard Kubernetes types: described at their parent
        shown = "" if "default" not in node else inline_default(node["default"])
        description = " ".join(node.get("description", "").split()).replace("|", "\\|")
        rows.append(f"| `{path}` | {_type_name(node)} | {shown} | {description} |")
    return "\n".join(rows)


def render_blocks(crd: Mapping[str, Any]) -> dict[str, str]:
    """Every generated README block, by name."""
    usage = "\n".join(
        [
            "```console",
            "$ kubectl get bookstores",
            render_get(crd),
            "```",
            "",
            "```console",
            "$ kubectl describe bookstore downtown",
            render_describe(),
            "```",
            "",
            "```console",
            "$ kubectl explain bookstore.spec",
            render_explain(crd),
            "```",
        ]
    )
    return {"kubectl-get": usage, "spec-reference": render_reference(crd)}


def apply_blocks(text: str, blocks: Mapping[str, str]) -> str:
    """Replace the content between each block's BEGIN/END GENERATED markers."""
    for name, body in blocks.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {name} -->\n).*?(<!-- END GENERATED: {name} -->)", re.S
        )
        found = pattern.search(text)
        if found is None:
            raise ValueError(f"README.md has no GENERATED block named {name!r}")
        begin, end = found.groups()
        text = f"{text[: found.start()]}{begin}{body}\n{end}{text[found.end() :]}"
    return text


def main(argv: list[str] | None = None) -> int:
    """Rewrite the README's generated blocks, or with --check fail when they are stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is stale")
    args = parser.parse_args(argv)
    current = README_PATH.read_text()
    wanted = apply_blocks(current, render_blocks(load_crd()))
    if args.check:
        if wanted != current:
            print("README.md is stale: run `make docs`", file=sys.stderr)
            return 1
        return 0
    README_PATH.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
