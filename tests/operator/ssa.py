"""Server-side apply as a real API server does it, for the emulator and the convergence tests.

Ownership is tracked per field manager and operation like `metadata.managedFields` (the
FieldsV1 format: `f:<field>`, `k:{<keys>}` for a keyed-list item with `.` for the item
itself). An Apply merges the configuration into the object (maps by key, keyed lists by
their list-map keys, anything else replaced), takes the fields it sets (from other managers
when forced, else a 409 on a differing value) and removes the fields the same manager
applied before and no longer applies unless another manager owns them. An Update (create,
merge or JSON patch) takes only the fields whose value it changed, like a real server.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from bookstore_operator.apply import KEY_DEFAULTS, list_keys

Path = tuple[str, ...]
Owners = dict[tuple[str, str, str], set[Path]]  # (manager, operation, subresource) -> fields
# Set by the API server, never owned by a manager.
UNOWNED = frozenset({"apiVersion", "kind", "status"})
UNOWNED_METADATA = frozenset(
    {
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "managedFields",
        "deletionTimestamp",
    }
)
_MISSING = object()


class ApplyConflictError(Exception):
    """Apply without force changed fields another manager owns."""

    def __init__(self, fields: list[tuple[str, Path]]) -> None:
        self.fields = fields
        shown = ", ".join(f"{'.'.join(p)} (owned by {m})" for m, p in fields)
        super().__init__(f"Apply failed with {len(fields)} conflict(s): {shown}")


def _item_id(item: Any, keys: tuple[str, ...]) -> str:
    ident = {key: item.get(key, KEY_DEFAULTS.get(key)) for key in keys}
    return "k:" + json.dumps(ident, sort_keys=True, separators=(",", ":"))


def field_set(obj: Mapping[str, Any]) -> set[Path]:
    """Every field path an object (or applied configuration) sets, as FieldsV1 would."""
    found: set[Path] = set()
    for key, value in obj.items():
        if key in UNOWNED:
            continue
        if key == "metadata":
            for mkey, mvalue in (value or {}).items():
                if mkey not in UNOWNED_METADATA:
                    _collect(mvalue, ("metadata", mkey), ("f:metadata", f"f:{mkey}"), found)
        else:
            _collect(value, (key,), (f"f:{key}",), found)
    return found


def _collect(value: Any, names: Path, prefix: Path, found: set[Path]) -> None:
    keys = list_keys(names)
    if isinstance(value, Mapping) and value:
        for key, sub in value.items():
            _collect(sub, (*names, key), (*prefix, f"f:{key}"), found)
    elif isinstance(value, list) and keys is not None:
        for item in value:
            where = (*prefix, _item_id(item, keys))
            found.add((*where, "."))
            for key, sub in item.items():
                _collect(sub, (*names, key), (*where, f"f:{key}"), found)
    else:
        found.add(prefix)


def _names(path: Path) -> Path:
    return tuple(step[2:] for step in path if step.startswith("f:"))


def lookup(obj: Any, path: Path) -> Any:
    """The value at a FieldsV1 path, or _MISSING."""
    node = obj
    for depth, step in enumerate(path):
        if step == ".":
            return node
        if step.startswith("f:") and isinstance(node, Mapping) and step[2:] in node:
            node = node[step[2:]]
        elif step.startswith("k:") and isinstance(node, list):
            keys = list_keys(_names(path[:depth])) or ()
            node = next((i for i in node if _item_id(i, keys) == step), _MISSING)
            if node is _MISSING:
                return _MISSING
        else:
            return _MISSING
    return node


def _remove(obj: Any, path: Path) -> None:
    """Delete the field or list item at a path (a no-op when absent)."""
    item = path[-1] == "."
    parent = lookup(obj, path[:-2] if item else path[:-1])
    step = path[-2] if item else path[-1]
    if step.startswith("f:") and isinstance(parent, dict):
        parent.pop(step[2:], None)
    elif step.startswith("k:") and isinstance(parent, list):
        keys = list_keys(_names(path[:-2])) or ()
        parent[:] = [i for i in parent if _item_id(i, keys) != step]


def _prune_emptied(obj: Any, before: Any, config: Any) -> None:
    """Drop maps that removal left empty (not empty before, and not set so by the config)."""
    if not isinstance(obj, dict):
        return
    for key in list(obj):
        old = before.get(key) if isinstance(before, Mapping) else None
        wanted = config.get(key) if isinstance(config, Mapping) else None
        _prune_emptied(obj[key], old, wanted)
        if obj[key] == {} and old not in ({}, None) and wanted is None:
            del obj[key]


def merge(live: Any, config: Any, names: Path = ()) -> Any:
    """The applied configuration merged into the live object."""
    if isinstance(config, Mapping):
        result = dict(live) if isinstance(live, Mapping) else {}
        for key, value in config.items():
            result[key] = merge(result.get(key), value, (*names, key))
        return result
    keys = list_keys(names)
    if isinstance(config, list) and keys is not None and isinstance(live, list):
        result_list = copy.deepcopy(live)
        positions = {_item_id(item, keys): i for i, item in enumerate(result_list)}
        for item in config:
            ident = _item_id(item, keys)
            if ident in positions:
                result_list[positions[ident]] = merge(result_list[positions[ident]], item, names)
            else:
                result_list.append(copy.deepcopy(item))
        return result_list
    return copy.deepcopy(config)


def apply(
    live: Mapping[str, Any] | None,
    config: Mapping[str, Any],
    owners: Owners,
    manager: str,
    *,
    force: bool,
) -> dict[str, Any]:
    """The object after `manager` applies `config`; `owners` is updated in place."""
    me = (manager, "Apply", "")
    applied = field_set(config)
    if live is None:
        owners.clear()
        owners[me] = applied
        return copy.deepcopy(dict(config))
    conflicts = [
        (other, path)
        for other, fields in owners.items()
        if other != me
        for path in fields & applied
        if path[-1] != "." and lookup(live, path) != lookup(config, path)
    ]
    if conflicts and not force:
        raise ApplyConflictError([(other[0], path) for other, path in conflicts])
    for other, path in conflicts:
        owners[other].discard(path)
    previous = owners.get(me, set())
    owners[me] = applied
    kept = set().union(*(fields for key, fields in owners.items() if key != me))
    result: dict[str, Any] = merge(live, config)
    for path in sorted(previous - applied - kept, key=len):
        inside = path[:-1] if path[-1] == "." else None
        if inside is not None and any(p[: len(inside)] == inside for p in kept | applied):
            continue  # the item holds fields someone still owns: only our leaves go
        _remove(result, path)
    _prune_emptied(result, live, config)
    _drop_empty(owners)
    return result


def update(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any],
    owners: Owners,
    manager: str,
    subresource: str = "",
) -> None:
    """Record an Update: the manager takes the fields whose value it changed."""
    before = field_set(old) if old is not None else set()
    after = field_set(new)
    changed = {p for p in after if old is None or lookup(old, p) != lookup(new, p)}
    gone = before - after
    for fields in owners.values():
        fields -= changed | gone
    if changed:
        owners.setdefault((manager, "Update", subresource), set()).update(changed)
    _drop_empty(owners)


def _drop_empty(owners: Owners) -> None:
    for key in [key for key, fields in owners.items() if not fields]:
        del owners[key]


def to_managed_fields(owners: Owners, api_version: str) -> list[dict[str, Any]]:
    """`metadata.managedFields` entries (FieldsV1) for the ownership map."""
    entries = []
    for (manager, operation, subresource), fields in sorted(owners.items()):
        tree: dict[str, Any] = {}
        for path in sorted(fields):
            node = tree
            for step in path:
                node = node.setdefault(step, {})
        entry = {
            "manager": manager,
            "operation": operation,
            "apiVersion": api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": tree,
        }
        if subresource:
            entry["subresource"] = subresource
        entries.append(entry)
    return entries


def from_managed_fields(entries: list[dict[str, Any]] | None) -> Owners:
    """The ownership map back from `metadata.managedFields`."""
    owners: Owners = {}
    for entry in entries or []:
        key = (entry["manager"], entry["operation"], entry.get("subresource", ""))
        paths: set[Path] = set()
        _paths(entry.get("fieldsV1") or {}, (), paths)
        owners[key] = paths
    return owners


def _paths(tree: Mapping[str, Any], prefix: Path, found: set[Path]) -> None:
    for step, sub in tree.items():
        if sub:
            _paths(sub, (*prefix, step), found)
        else:
            found.add((*prefix, step))
