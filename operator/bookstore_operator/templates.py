"""Pod templates across operator releases: upgrading the operator alone restarts no pod.

Every Deployment and StatefulSet this release writes carries `bookstore.dev/template-release`
(TEMPLATE_RELEASE, bumped whenever the builders change a pod template). A live workload that
an earlier release wrote keeps the pod template that release applied, as long as rolling it
would bring nothing the user asked for:
(a) its containers run the images the spec wants now (the version did not change);
(b) the Bookstore's spec is the one that release applied (`spec_applied`);
(c) no other field manager took over a pod template field the spec sets (hand edits are
    repaired, with the new template).
Such a workload is applied with the template our field manager owns in it (read from
`metadata.managedFields`, so server defaults and others' fields stay theirs) and its old
marker, so server-side apply removes nothing; every other field still converges. The next
change of the spec or the version, which rolls the pods anyway, brings the new template and
this release's marker. Any marker value that is not an older release's number (e.g.
`adopt`, set by hand) asks for the new template at once.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from bookstore_operator.apply import FIELD_MANAGER, KEY_DEFAULTS

# Bump whenever the builders change what a workload's pod template holds.
# 1: release 0.1.0 (no marker). 2: MIGRATE_ON_START=false, a one-minute startupProbe.
TEMPLATE_RELEASE = 2
RELEASE_ANNOTATION = "bookstore.dev/template-release"
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet"})
# Phases in which the operator had applied every child at status.observedGeneration (Failed and
# Degraded may come from inputs it lacked or a refused write; Pending from no workload yet).
APPLIED_PHASES = frozenset({"Ready", "Progressing"})

Manifest = dict[str, Any]
FieldsV1 = Mapping[str, Any]


def marked(manifest: Mapping[str, Any]) -> Manifest:
    """The manifest with this release's marker, when it is a workload's."""
    result = dict(manifest)
    if manifest.get("kind") in WORKLOAD_KINDS:
        meta = dict(manifest["metadata"])
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            RELEASE_ANNOTATION: str(TEMPLATE_RELEASE),
        }
        result["metadata"] = meta
    return result


def spec_applied(bookstore: Mapping[str, Any] | None, generation: int) -> bool:
    """True when the Bookstore's status says its spec at `generation` was applied to every
    child: the spec did not change since (observedGeneration == generation) and that
    reconcile found nothing that stopped it from writing (phase Ready or Progressing)."""
    if bookstore is None:
        return False
    status = bookstore.get("status") or {}
    return (
        bookstore.get("metadata", {}).get("generation") == generation
        and status.get("observedGeneration") == generation
        and status.get("phase") in APPLIED_PHASES
    )


def held_template(manifest: Mapping[str, Any], live: Mapping[str, Any]) -> Manifest | None:
    """The pod template a live workload from an earlier release may keep, given (a) and (c)
    of the module docstring; None when the desired template is to be applied."""
    if manifest.get("kind") not in WORKLOAD_KINDS or not _older_release(live):
        return None
    ours = _our_fields(live)
    template_fields = ((ours.get("f:spec") or {}).get("f:template")) or None
    template = (live.get("spec") or {}).get("template")
    desired = manifest["spec"]["template"]
    if template_fields is None or not isinstance(template, Mapping):
        return None
    kept: Manifest = owned(template, template_fields)
    if _images(kept) != _images(desired) or _taken_by_others(live, desired):
        return None
    return kept


def holding(
    manifest: Mapping[str, Any], template: Mapping[str, Any], live: Mapping[str, Any]
) -> Manifest:
    """The manifest with the held template and the live marker (if any) instead of ours."""
    result = copy.deepcopy(dict(manifest))
    result["spec"]["template"] = copy.deepcopy(dict(template))
    annotations = dict(result["metadata"].get("annotations") or {})
    annotations.pop(RELEASE_ANNOTATION, None)
    previous = _marker(live)
    if previous is not None:
        annotations[RELEASE_ANNOTATION] = previous
    result["metadata"]["annotations"] = annotations
    return result


def owned(value: Any, fields: FieldsV1) -> Any:
    """The part of `value` that a FieldsV1 tree names (`f:` fields, `k:`/`v:` list items).

    A leaf (`{}`) is owned whole; `.` (the map or list item itself) adds nothing more.
    """
    if not fields:
        return copy.deepcopy(value)
    if isinstance(value, Mapping):
        return {
            step[2:]: owned(value[step[2:]], sub)
            for step, sub in fields.items()
            if step.startswith("f:") and step[2:] in value
        }
    if isinstance(value, list):
        kept = []
        for item in value:
            sub = next((s for step, s in fields.items() if _names_item(step, item)), None)
            if sub is not None:
                kept.append(owned(item, sub))
        return kept
    return copy.deepcopy(value)


def _names_item(step: str, item: Any) -> bool:
    """True when a FieldsV1 step (`k:{...}` list-map keys, `v:...` a set value) is `item`."""
    if step.startswith("k:") and isinstance(item, Mapping):
        keys: dict[str, Any] = json.loads(step[2:])
        return all(item.get(k, KEY_DEFAULTS.get(k)) == v for k, v in keys.items())
    if step.startswith("v:"):
        return bool(json.loads(step[2:]) == item)
    return False


def _marker(live: Mapping[str, Any]) -> str | None:
    marker = (live.get("metadata", {}).get("annotations") or {}).get(RELEASE_ANNOTATION)
    return None if marker is None else str(marker)


def _older_release(live: Mapping[str, Any]) -> bool:
    """No marker (release 0.1.0), or an earlier release's number."""
    marker = _marker(live)
    return marker is None or (marker.isdigit() and int(marker) < TEMPLATE_RELEASE)


def _our_fields(live: Mapping[str, Any]) -> FieldsV1:
    for entry in live.get("metadata", {}).get("managedFields") or []:
        if (
            entry.get("manager") == FIELD_MANAGER
            and entry.get("operation") == "Apply"
            and not entry.get("subresource")
        ):
            fields: FieldsV1 = entry.get("fieldsV1") or {}
            return fields
    return {}


def _images(template: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    spec = template.get("spec") or {}
    return {
        (kind, container.get("name", "")): container.get("image")
        for kind in ("initContainers", "containers")
        for container in spec.get(kind) or []
    }


def _taken_by_others(live: Mapping[str, Any], desired_template: Mapping[str, Any]) -> bool:
    """True when another field manager owns a pod template field the spec sets (a hand edit
    of an image, an env var, resources...): drift, which the desired template repairs."""
    for entry in live.get("metadata", {}).get("managedFields") or []:
        ours = entry.get("manager") == FIELD_MANAGER and entry.get("operation") == "Apply"
        if ours or entry.get("subresource"):
            continue
        spec = (entry.get("fieldsV1") or {}).get("f:spec") or {}
        if _overlaps(spec.get("f:template") or {}, desired_template):
            return True
    return False


def _overlaps(fields: FieldsV1, desired: Any) -> bool:
    """True when a FieldsV1 tree owns a leaf that `desired` sets."""
    for step, sub in fields.items():
        if step.startswith("f:") and isinstance(desired, Mapping) and step[2:] in desired:
            if not sub or _overlaps(sub, desired[step[2:]]):
                return True
        elif step.startswith(("k:", "v:")) and isinstance(desired, list):
            match = next((item for item in desired if _names_item(step, item)), None)
            if match is not None and (step.startswith("v:") or _overlaps(sub, match)):
                return True
    return False
