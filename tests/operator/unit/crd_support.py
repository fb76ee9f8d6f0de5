"""The Bookstore CRD as the API server applies it: defaulting, schema validation, CEL rules,
printer-column JSONPaths — emulated closely enough to test the CRD without a cluster."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import yaml
from bookstore_operator.builders.quantity import parse_quantity
from celpy import celtypes

CRD_PATH = Path(__file__).resolve().parents[3] / "crds" / "bookstore.dev_bookstores.yaml"
BACKUP_CRD_PATH = CRD_PATH.with_name("bookstore.dev_bookstorebackups.yaml")
Schema = dict[str, Any]


def load_crd(path: Path = CRD_PATH) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    return crd


def backup_bodies() -> dict[str, dict[str, Any]]:
    """BookstoreBackups as users create them and as the operator's status leaves them."""
    meta = {"name": "nightly-1", "namespace": "shop", "labels": {"bookstore.dev/bookstore": "d"}}
    spec = {"bookstore": "downtown", "method": "logical"}
    files = [
        {
            "database": "orders",
            "file": "orders.dump",
            "sizeBytes": 8886,
            "serverVersion": "16.4",
            "revisions": {"orders": "0005"},
        },
        {"database": "catalog", "file": "catalog.dump", "sizeBytes": 11306, "revisions": {}},
    ]
    completed = {
        "phase": "Completed",
        "observedGeneration": 1,
        "startedAt": "2025-01-01T03:00:01Z",
        "completedAt": "2025-01-01T03:00:09Z",
        "sizeBytes": 20192,
        "size": "19.7Ki",
        "files": files,
        "revisions": {"orders": "0005", "catalog": "0004"},
    }
    failed = {
        "phase": "Failed",
        "observedGeneration": 1,
        "completedAt": "2025-01-01T03:00:09Z",
        "message": "The backup Job failed (exit code 1): backup: pg_dump of orders failed",
    }
    base = {"apiVersion": "bookstore.dev/v1alpha1", "kind": "BookstoreBackup", "metadata": meta}
    return {
        "created": {**base, "spec": {"bookstore": "downtown"}},
        "completed": {**base, "spec": spec, "status": completed},
        "failed": {**base, "spec": spec, "status": failed},
        "pending": {**base, "spec": spec, "status": {"phase": "Pending", "message": "paused"}},
    }


def openapi_schema(crd: dict[str, Any]) -> Schema:
    [version] = crd["spec"]["versions"]
    schema: Schema = version["schema"]["openAPIV3Schema"]
    return schema


def walk(schema: Schema, path: str = "") -> Iterator[tuple[str, Schema]]:
    """Every schema node with its path (`.spec.catalog`, `.spec.networkPolicy.allowFrom[]`)."""
    yield path, schema
    for name, child in schema.get("properties", {}).items():
        yield from walk(child, f"{path}.{name}")
    if "items" in schema:
        yield from walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk(schema["additionalProperties"], f"{path}{{}}")


def to_json_schema(node: Schema, strict: bool = True) -> Schema:
    """Translate the Kubernetes dialect: nullable becomes a null type, and objects with
    properties reject unknown fields (the API server's strict field validation) except
    metadata, whose schema only restricts the name."""
    out = {k: v for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "nullable"}
    if node.get("nullable"):
        out["type"] = [node["type"], "null"]
    if "properties" in node:
        out["properties"] = {
            k: to_json_schema(v, strict=k != "metadata") for k, v in node["properties"].items()
        }
        if strict and node["properties"]:
            out["additionalProperties"] = False
    if "items" in node:
        out["items"] = to_json_schema(node["items"])
    if isinstance(node.get("additionalProperties"), dict):
        out["additionalProperties"] = to_json_schema(node["additionalProperties"])
    return out


def apply_defaults(node: Schema, value: Any) -> Any:
    """Structural defaulting: absent (or null, unless nullable) fields take their default."""
    if isinstance(value, dict) and "properties" in node:
        value = dict(value)
        for name, child in node["properties"].items():
            if value.get(name, ...) is None and not child.get("nullable"):
                del value[name]
            if name not in value and "default" in child:
                value[name] = copy.deepcopy(child["default"])
            if name in value:
                value[name] = apply_defaults(child, value[name])
    elif isinstance(value, list) and "items" in node:
        value = [apply_defaults(node["items"], item) for item in value]
    return value


def schema_errors(schema: Schema, obj: dict[str, Any]) -> list[str]:
    """Schema violations of a (defaulted) object, as `path: message`."""
    validator = jsonschema.Draft7Validator(
        to_json_schema(schema), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    return [
        ".".join(str(p) for p in error.absolute_path) + f": {error.message}"
        for error in validator.iter_errors(obj)
    ]


class Quantity(celtypes.StringType):
    """A CEL Quantity value (Kubernetes quantity library), exact like resource.Quantity."""

    @property
    def amount(self) -> Decimal:
        return parse_quantity(str(self))


def _quantity(text: celtypes.StringType) -> Quantity:
    parse_quantity(str(text))  # raises (a CEL error) on an invalid quantity
    return Quantity(text)


def _is_quantity(text: celtypes.StringType) -> celtypes.BoolType:
    try:
        parse_quantity(str(text))
    except ValueError:
        return celtypes.BoolType(False)
    return celtypes.BoolType(True)


def _compare(a: Quantity, b: Quantity) -> celtypes.IntType:
    return celtypes.IntType((a.amount > b.amount) - (a.amount < b.amount))


CEL_FUNCTIONS: dict[str, Any] = {
    "quantity": _quantity,
    "isQuantity": _is_quantity,
    "compareTo": _compare,
    "isLessThan": lambda a, b: celtypes.BoolType(a.amount < b.amount),
    "isGreaterThan": lambda a, b: celtypes.BoolType(a.amount > b.amount),
}


def rules(schema: Schema) -> Iterator[tuple[str, dict[str, Any]]]:
    """(schema path, rule) for every x-kubernetes-validations rule."""
    for path, node in walk(schema):
        for rule in node.get("x-kubernetes-validations", []):
            yield path, rule


# Created at import: celpy raises the recursion limit when it first builds its parser.
_ENVIRONMENT = celpy.Environment()


@functools.cache
def _program(rule: str) -> celpy.Runner:
    return _ENVIRONMENT.program(_ENVIRONMENT.compile(rule), functions=CEL_FUNCTIONS)


def evaluate_rule(rule: str, self_value: Any, old_value: Any = None) -> bool:
    """One CEL rule with self (and oldSelf for transition rules)."""
    program = _program(rule)
    activation = {"self": celpy.json_to_cel(self_value)}
    if old_value is not None:
        activation["oldSelf"] = celpy.json_to_cel(old_value)
    result = program.evaluate(activation)
    if isinstance(result, Exception):
        raise result
    return bool(result)


def cel_violations(node: Schema, new: Any, old: Any = None, path: str = "") -> list[str]:
    """Messages of every failing rule, evaluated where it is declared like the API server
    does; a transition rule (one naming oldSelf) only where an old value exists. A rule that
    cannot be evaluated (e.g. "no such key") fails like a violation, as on the API server."""
    failures = []
    for rule in node.get("x-kubernetes-validations", []):
        is_transition = "oldSelf" in rule["rule"]
        if is_transition and old is None:
            continue
        try:
            holds = evaluate_rule(rule["rule"], new, old if is_transition else None)
        except Exception as exc:  # celpy's evaluation errors share no narrower base class
            failures.append(f"{path or '<root>'}: evaluation error in {rule['rule']!r}: {exc}")
            continue
        if not holds:
            failures.append(f"{path or '<root>'}: {rule['message']}")
    if isinstance(new, dict):
        for name, child in node.get("properties", {}).items():
            if name in new:
                old_child = old.get(name) if isinstance(old, dict) else None
                failures += cel_violations(child, new[name], old_child, f"{path}.{name}")
        values = node.get("additionalProperties")
        if isinstance(values, dict):
            for key, value in new.items():
                failures += cel_violations(values, value, None, f"{path}.{key}")
    if isinstance(new, list) and "items" in node:
        for index, item in enumerate(new):
            failures += cel_violations(node["items"], item, None, f"{path}[{index}]")
    return failures


def prune(node: Schema, value: Any) -> Any:
    """The value with every field the structural schema does not declare dropped, as the API
    server prunes a request body, a status write and a default."""
    if isinstance(value, dict) and "properties" in node:
        return {
            k: prune(node["properties"][k], v) for k, v in value.items() if k in node["properties"]
        }
    if isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        return {k: prune(node["additionalProperties"], v) for k, v in value.items()}
    if isinstance(value, list) and "items" in node:
        return [prune(node["items"], item) for item in value]
    return value


_FILTER = re.compile(r'^\[\?\(@\.(?P<key>\w+)=="(?P<value>[^"]*)"\)\]')


def resolve_json_path(obj: Any, expression: str) -> Any:
    """The value kubectl prints for a printer column (the subset of JSONPath CRDs use)."""
    rest = expression
    while rest:
        if match := _FILTER.match(rest):
            obj = next(
                (item for item in obj or [] if item.get(match["key"]) == match["value"]), None
            )
            rest = rest[match.end() :]
        elif match := re.match(r"^\.(\w+)", rest):
            obj = obj.get(match[1]) if isinstance(obj, dict) else None
            rest = rest[match.end() :]
        else:
            raise ValueError(f"unsupported JSONPath: {expression}")
    return obj
