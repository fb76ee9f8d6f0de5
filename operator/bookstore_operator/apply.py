"""Server-side apply, decided locally: the body we apply to a child and whether it needs it.

The API server merges an apply by its schema: lists with `x-kubernetes-list-map-keys` merge
item by item with what others wrote (a webhook's sidecar, env var or volume), every other
list is owned whole, and fields our field manager applied before but no longer applies are
removed. So the body carries only the fields we own, and it is sent only when needed (a
steady state writes nothing): when the live object lacks one of them or holds another value
(`contains`, which matches keyed-list items by key, so injected items are not drift), or when
the body changed since our last apply (its hash, kept in an annotation, catches fields the
spec dropped, which no containment check can see).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Collection, Mapping
from typing import Any

FIELD_MANAGER = "bookstore-operator"
# Applies `spec.replicas` once when an HPA takes a Deployment over (see kube.hand_over).
HANDOVER_MANAGER = "bookstore-operator-handover"
APPLIED_HASH = "bookstore.dev/applied-hash"
# Only these metadata fields are ours to set; the rest belongs to the API server.
OWNED_METADATA = ("labels", "annotations", "ownerReferences")

Path = tuple[str, ...]

# x-kubernetes-list-map-keys of the pod template's keyed lists (core/v1 PodSpec, Container);
# tests/operator/unit/test_apply.py checks the table against the Kubernetes OpenAPI schema.
_POD_LISTS: dict[Path, tuple[str, ...]] = {
    ("containers",): ("name",),
    ("initContainers",): ("name",),
    ("ephemeralContainers",): ("name",),
    ("volumes",): ("name",),
    ("imagePullSecrets",): ("name",),
    ("hostAliases",): ("ip",),
    ("topologySpreadConstraints",): ("topologyKey", "whenUnsatisfiable"),
}
_CONTAINER_LISTS: dict[str, tuple[str, ...]] = {
    "env": ("name",),
    "ports": ("containerPort", "protocol"),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
}
_POD_SPEC: Path = ("spec", "template", "spec")
# Path of field names from the object's root (list items left out) -> the keys of its items,
# for every kind the operator writes; a list not named here is atomic (replaced whole).
LIST_KEYS: dict[Path, tuple[str, ...]] = {
    ("metadata", "ownerReferences"): ("uid",),
    ("spec", "ports"): ("port", "protocol"),  # Service
    **{(*_POD_SPEC, *path): keys for path, keys in _POD_LISTS.items()},
    **{
        (*_POD_SPEC, containers, field): keys
        for containers in ("containers", "initContainers", "ephemeralContainers")
        for field, keys in _CONTAINER_LISTS.items()
    },
}
# A key field the item may omit, with the value the API server defaults it to.
KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}


def list_keys(path: Path) -> tuple[str, ...] | None:
    """The keys a list's items merge by, or None for an atomic list."""
    return LIST_KEYS.get(path)


def item_key(item: Any, keys: tuple[str, ...]) -> tuple[Any, ...]:
    """The identity of a keyed-list item (defaulted keys filled in, like the API server)."""
    if not isinstance(item, Mapping):
        return (json.dumps(item),)
    return tuple(item.get(key, KEY_DEFAULTS.get(key)) for key in keys)


def contains(live: Any, desired: Any, path: Path = ()) -> bool:
    """True when `live` holds every field of `desired` with the same value.

    Extra map keys (server defaults, others' fields) and extra keyed-list items (a sidecar)
    are ignored; an atomic list is owned whole, so it must be equal.
    """
    if isinstance(desired, Mapping):
        return isinstance(live, Mapping) and all(
            key in live and contains(live[key], value, (*path, key))
            for key, value in desired.items()
        )
    if isinstance(desired, list):
        keys = list_keys(path)
        if not isinstance(live, list):
            return False
        if keys is None:
            return live == desired
        by_key = {item_key(item, keys): item for item in live}
        return all(
            item_key(item, keys) in by_key and contains(by_key[item_key(item, keys)], item, path)
            for item in desired
        )
    return type(live) is type(desired) and bool(live == desired)


def apply_body(
    manifest: Mapping[str, Any], creation_only: Collection[str] = (), *, creating: bool = False
) -> dict[str, Any]:
    """The applied configuration: identity, our metadata and every field but status.

    Spec fields in `creation_only` are set when the object is created and left out of every
    later apply; the hash annotation covers the body without them, so creating and applying
    record the same hash.
    """
    meta = manifest["metadata"]
    body = {k: copy.deepcopy(v) for k, v in manifest.items() if k not in ("metadata", "status")}
    body["metadata"] = {
        "name": meta["name"],
        "namespace": meta["namespace"],
        **{key: copy.deepcopy(meta[key]) for key in OWNED_METADATA if key in meta},
    }
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != APPLIED_HASH}
    body["metadata"]["annotations"] = annotations
    spec = body.get("spec")
    if creation_only and isinstance(spec, Mapping):
        body["spec"] = {key: value for key, value in spec.items() if key not in creation_only}
    annotations[APPLIED_HASH] = _digest(body)
    if creating and isinstance(spec, Mapping):
        body["spec"] = spec
    return body


def needs_apply(live: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """True when the live object lacks or changed a field we own, or the body changed since
    our last apply (so a field the spec dropped is removed)."""
    recorded = (live.get("metadata", {}).get("annotations") or {}).get(APPLIED_HASH)
    return recorded != body["metadata"]["annotations"][APPLIED_HASH] or not contains(live, body)


def rebuilt(live: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """True when we applied this child before and what we build for it changed since (the
    recorded hash differs), as opposed to a live object that drifted from the same body."""
    recorded = (live.get("metadata", {}).get("annotations") or {}).get(APPLIED_HASH)
    return recorded is not None and recorded != body["metadata"]["annotations"][APPLIED_HASH]


def owns(live: Mapping[str, Any], manager: str, operation: str, path: Path) -> bool:
    """True when `metadata.managedFields` gives the field at `path` to manager+operation."""
    for entry in live.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") != manager or entry.get("operation") != operation:
            continue
        node: Any = entry.get("fieldsV1") or {}
        for name in path:
            node = node.get(f"f:{name}") if isinstance(node, Mapping) else None
        if node is not None:
            return True
    return False


def _digest(body: Mapping[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
