"""What a real API server checks when the CRD is created, and on every write, that kmock does not.

The first real cluster refused the CRD: kube-apiserver evaluates every CEL rule against each
schema `default` as written (apiextensions-apiserver `schema/defaulting/validation.go`: the raw
default, with oldSelf = the default, and again without oldSelf when validation ratcheting is
on), and a rule reading a key the default lacks errors with "no such key". These tests evaluate
every rule the same way with cel-python, and against every object a user can send or the
defaulting can produce, so that a whole class of refusals is caught here, not on a cluster.

Checked here (Kubernetes "Validation" and "Defaulting" sections of the CRD documentation and
apiextensions `validation.go`):
- every default: pruned (no undeclared fields), valid against its own schema, and passing the
  CEL rules of its node and of everything inside it, raw and with nested defaults applied;
- every rule on partial objects (empty, one field set, one field removed, a field added or
  removed on update) evaluates without error;
- transition rules (oldSelf) only on correlatable nodes (no list ancestor but a list-type map);
- rules name only declared fields; messages are present and on one line; `reason` is one of the
  four the server accepts; `fieldPath` names a declared field;
- list-type map keys are required (or defaulted) scalars; no default under metadata or under
  additionalProperties;
- the CEL cost estimate of each rule and of the whole CRD stays under the server's static
  limits (a conservative bound: collection bounds x rule size x string bound).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest

from tests.operator.unit.crd_support import (
    BACKUP_CRD_PATH,
    Schema,
    apply_defaults,
    backup_bodies,
    cel_violations,
    load_crd,
    openapi_schema,
    prune,
    rules,
    to_json_schema,
    walk,
)
from tests.operator.unit.stores import all_bookstore_bodies

# apiextensions ValidationRule.reason accepts exactly these.
REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}
# k8s.io/apiserver/pkg/apis/cel: StaticEstimatedCostLimit and StaticEstimatedCRDCostLimit.
RULE_COST_LIMIT = 10_000_000
CRD_COST_LIMIT = 100_000_000
MACROS = re.compile(r"((?:self|oldSelf)(?:\.\w+)*)\.(?:all|exists|exists_one|map|filter)\(")
MEMBERS = re.compile(r"\b(self|oldSelf)((?:\.\w+)+)")
MACRO_FUNCTIONS = {"all", "exists", "exists_one", "map", "filter", "size", "matches"}
QUANTITY_METHODS = {"isLessThan", "isGreaterThan", "compareTo", "add", "sub", "asInteger"}


def samples(schema: Schema, bodies: Iterator[dict[str, Any]]) -> dict[str, list[Any]]:
    """Realistic values per schema path, taken from every example and spec in the tests."""
    found: dict[str, list[Any]] = {}

    def collect(node: Schema, value: Any, path: str) -> None:
        found.setdefault(path, []).append(value)
        if isinstance(value, dict) and "properties" in node:
            for key, item in value.items():
                if key in node["properties"]:
                    collect(node["properties"][key], item, f"{path}.{key}")
        elif isinstance(value, list) and "items" in node:
            for item in value:
                collect(node["items"], item, f"{path}[]")

    for body in bodies:
        collect(schema, apply_defaults(schema, body), "")
    return found


@dataclasses.dataclass(frozen=True)
class Subject:
    """One CRD under test: its schema, every node by path, and realistic values per path."""

    schema: Schema
    nodes: dict[str, Schema]
    samples: dict[str, list[Any]]

    @classmethod
    def of(cls, schema: Schema, bodies: Callable[[], Iterator[dict[str, Any]]]) -> Subject:
        return cls(schema, dict(walk(schema)), samples(schema, bodies()))


SCHEMA = openapi_schema(load_crd())
SUBJECTS = {
    "bookstores": Subject.of(SCHEMA, lambda: iter(all_bookstore_bodies().values())),
    "bookstorebackups": Subject.of(
        openapi_schema(load_crd(BACKUP_CRD_PATH)), lambda: iter(backup_bodies().values())
    ),
}
# (CRD, path) of every node with a default, with rules, and every (CRD, path, rule).
DEFAULTED = [(c, p) for c, s in SUBJECTS.items() for p, n in s.nodes.items() if "default" in n]
RULE_NODES = [
    (c, p)
    for c, s in SUBJECTS.items()
    for p, n in s.nodes.items()
    if n.get("x-kubernetes-validations")
]
RULES = [(c, p, rule) for c, s in SUBJECTS.items() for p, rule in rules(s.schema)]


def case_id(case: Any) -> str:
    return f"{case[0]}:{case[1] or '<root>'}"


def partial_objects(subject: Subject, path: str, node: Schema) -> Iterator[tuple[str, Any]]:
    """Objects a rule-bearing node can hold: raw (a parent's default or a user wrote it) and as
    stored (defaults applied), empty, with one field set, and with one field left out."""
    full = next(iter(subject.samples.get(path, [])), None)
    if node.get("type") != "object":
        values = [node.get("default"), *subject.samples.get(path, [])]
        for value in {repr(v): v for v in values if v is not None}.values():
            yield f"value {value!r}", value
        return
    yield "empty", {}
    yield "empty, defaulted", apply_defaults(node, {})
    for name, child in node.get("properties", {}).items():
        for value in subject.samples.get(f"{path}.{name}", [child.get("default")])[:1]:
            if value is not None:
                yield f"only {name}", {name: value}
                yield f"only {name}, defaulted", apply_defaults(node, {name: value})
        if isinstance(full, dict) and name in full:
            yield f"all but {name}", {k: v for k, v in full.items() if k != name}
    if full is not None:
        yield "a realistic value", full


def evaluation_errors(node: Schema, new: Any, old: Any) -> list[str]:
    """The node's own rules that cannot be evaluated on these values (descendants' rules are
    checked on their own nodes)."""
    own = {key: value for key, value in node.items() if key not in ("properties", "items")}
    return [failure for failure in cel_violations(own, new, old) if "evaluation error" in failure]


@pytest.mark.parametrize("case", DEFAULTED, ids=case_id)
def test_every_default_is_pruned_and_valid_as_written(case: tuple[str, str]) -> None:
    node = SUBJECTS[case[0]].nodes[case[1]]
    default = node["default"]
    assert prune(node, default) == default, "a default must not carry undeclared fields"
    jsonschema.Draft7Validator(to_json_schema(node)).validate(default)


@pytest.mark.parametrize("case", DEFAULTED, ids=case_id)
def test_every_default_passes_every_rule_as_the_api_server_checks_it_at_crd_creation(
    case: tuple[str, str],
) -> None:
    path = case[1]
    node = SUBJECTS[case[0]].nodes[path]
    default = copy.deepcopy(node["default"])
    # validation.go: Validate(default, oldSelf=default), then (ratcheting) without oldSelf.
    assert cel_violations(node, default, default, path) == []
    assert cel_violations(node, default, None, path) == []


@pytest.mark.parametrize("case", DEFAULTED, ids=case_id)
def test_every_default_passes_every_rule_once_nested_defaults_fill_it(
    case: tuple[str, str],
) -> None:
    path = case[1]
    node = SUBJECTS[case[0]].nodes[path]
    stored = apply_defaults(node, copy.deepcopy(node["default"]))
    assert cel_violations(node, stored, stored, path) == []
    assert cel_violations(node, stored, None, path) == []


@pytest.mark.parametrize("case", RULE_NODES, ids=case_id)
def test_every_rule_evaluates_without_error_on_partial_objects(case: tuple[str, str]) -> None:
    subject, path = SUBJECTS[case[0]], case[1]
    node = subject.nodes[path]
    variants = dict(partial_objects(subject, path, node))
    errors = []
    for what, value in variants.items():
        for old_what, old in [("create", None), ("same", value), *variants.items()]:
            for failure in evaluation_errors(node, value, old):
                errors.append(
                    f"{what} (old: {old_what if old is not value else 'same'}): {failure}"
                )
    assert errors == []


def test_the_partial_objects_reach_every_rule_bearing_node() -> None:
    assert {crd for crd, _ in RULE_NODES} == set(SUBJECTS)
    for crd, path in RULE_NODES:
        subject = SUBJECTS[crd]
        node = subject.nodes[path]
        wanted = 3 if node.get("type") == "object" else 1
        assert len(dict(partial_objects(subject, path, node))) >= wanted, path


def test_the_refused_default_is_caught_by_these_checks() -> None:
    """The rule the real API server refused, unguarded, fails the default check above."""
    node = {
        "type": "object",
        "default": {},
        "properties": {
            "minReplicas": {"type": "integer", "default": 2},
            "maxReplicas": {"type": "integer", "default": 5},
        },
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.maxReplicas", "message": "min <= max"}
        ],
    }
    [failure] = cel_violations(node, node["default"], node["default"])
    assert "no such member" in failure or "no such key" in failure


def ancestors(subject: Subject, path: str) -> Iterator[tuple[str, Schema]]:
    """Every schema node above `path`, root first."""
    for other, node in subject.nodes.items():
        if path != other and path.startswith(other) and path[len(other) : len(other) + 1] in ".[{":
            yield other, node


@pytest.mark.parametrize("case", [c for c in RULES if "oldSelf" in c[2]["rule"]], ids=case_id)
def test_transition_rules_sit_only_on_correlatable_nodes(
    case: tuple[str, str, dict[str, Any]],
) -> None:
    crd, path, _ = case
    for ancestor, node in ancestors(SUBJECTS[crd], path):
        if node.get("type") == "array":
            assert node.get("x-kubernetes-list-type") == "map", f"{ancestor} is not a list-map"
        assert not isinstance(node.get("additionalProperties"), dict) or ancestor == path


def resolve(node: Schema, members: list[str]) -> Schema | None:
    """The schema node a `.a.b` member chain reaches, or None when it names no declared field."""
    for member in members:
        if "properties" in node:
            if member not in node["properties"]:
                return None
            node = node["properties"][member]
        elif isinstance(node.get("additionalProperties"), dict):
            node = node["additionalProperties"]  # a map: any key may be read
        elif member in MACRO_FUNCTIONS | QUANTITY_METHODS:
            return node
        else:
            return None
    return node


@pytest.mark.parametrize("case", RULES, ids=case_id)
def test_rules_name_only_declared_fields(case: tuple[str, str, dict[str, Any]]) -> None:
    crd, path, rule = case
    node = SUBJECTS[crd].nodes[path]
    for _, chain in MEMBERS.findall(rule["rule"]):
        members = chain.strip(".").split(".")
        if members[-1] in MACRO_FUNCTIONS | QUANTITY_METHODS:
            members = members[:-1]
        assert resolve(node, members) is not None, f"{chain} in {rule['rule']!r}"


@pytest.mark.parametrize("case", RULES, ids=case_id)
def test_rule_messages_reasons_and_field_paths_are_what_the_server_accepts(
    case: tuple[str, str, dict[str, Any]],
) -> None:
    crd, path, rule = case
    assert rule.get("message", "").strip(), "a message is required (and must be when multi-line)"
    assert "\n" not in rule["message"]
    assert "\n" not in rule["rule"]
    assert rule.get("reason", "FieldValueInvalid") in REASONS
    if "fieldPath" in rule:
        assert rule["fieldPath"].startswith(".")
        node = SUBJECTS[crd].nodes[path]
        assert resolve(node, rule["fieldPath"].strip(".").split(".")) is not None


@pytest.mark.parametrize(
    "case",
    [
        (c, p)
        for c, s in SUBJECTS.items()
        for p, n in s.nodes.items()
        if n.get("x-kubernetes-list-type") == "map"
    ],
    ids=case_id,
)
def test_list_map_keys_are_required_or_defaulted_scalars(case: tuple[str, str]) -> None:
    node = SUBJECTS[case[0]].nodes[case[1]]
    items = node["items"]
    for key in node["x-kubernetes-list-map-keys"]:
        assert items["properties"][key]["type"] in ("string", "integer", "boolean", "number")
        assert key in items.get("required", []) or "default" in items["properties"][key]


def test_no_default_under_metadata_or_a_map() -> None:
    for _, path in DEFAULTED:
        assert not path.startswith(".metadata"), path
        assert "{}" not in path, path


def cardinality(subject: Subject, path: str) -> int:
    """How many times a node can occur in one object: the product of its collections' bounds."""
    count = 1
    for _, node in ancestors(subject, path):
        count *= int(node.get("maxItems", node.get("maxProperties", 1)))
    return count


def estimated_cost(subject: Subject, path: str, rule: str) -> int:
    """A conservative bound on cel-go's static estimate: every iterated collection at its
    declared bound, each step costing the whole rule, each string at its maxLength."""
    node = subject.nodes[path]
    iterations = 1
    for chain in MACROS.findall(rule):
        target = resolve(node, chain.split(".")[1:])
        assert target is not None, chain
        bound = target.get("maxItems", target.get("maxProperties"))
        assert bound is not None, f"{chain} is iterated but unbounded (maxItems/maxProperties)"
        iterations *= int(bound)
    longest_string = max(
        [int(n.get("maxLength", 1)) for p, n in subject.nodes.items() if p.startswith(path)] or [1]
    )
    return iterations * len(rule) * math.ceil(longest_string / 10)


@pytest.mark.parametrize("case", RULES, ids=case_id)
def test_every_rule_fits_the_per_expression_cost_limit(
    case: tuple[str, str, dict[str, Any]],
) -> None:
    crd, path, rule = case
    assert estimated_cost(SUBJECTS[crd], path, rule["rule"]) < RULE_COST_LIMIT


@pytest.mark.parametrize("crd", sorted(SUBJECTS))
def test_all_rules_together_fit_the_crd_cost_limit(crd: str) -> None:
    subject = SUBJECTS[crd]
    total = sum(
        cardinality(subject, path) * estimated_cost(subject, path, rule["rule"])
        for path, rule in rules(subject.schema)
    )
    assert total < CRD_COST_LIMIT
