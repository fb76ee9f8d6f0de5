"""The only module that talks to the Kubernetes API: read, create, apply, delete, status.

Calls go through `client.Kube` (raw, generic, bounded and timed; re-exported here). Children
are written with server-side apply as field
manager `bookstore-operator` (see `apply`): keyed lists merge with what webhooks inject,
fields the spec dropped are removed, and fields others own (HPA-owned replicas, server
defaults) stay theirs. Generated Secrets are created once and never written again. A workload
an earlier operator release wrote keeps its pod template until the Bookstore's spec or version
changes (`templates`), so upgrading the operator restarts no pod.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException

from bookstore_operator import metrics, templates
from bookstore_operator.apply import (
    FIELD_MANAGER,
    HANDOVER_MANAGER,
    apply_body,
    needs_apply,
    owns,
    rebuilt,
)
from bookstore_operator.builders import ChildKey
from bookstore_operator.client import BOOKSTORE_API_VERSION, USER_AGENT, Kube, resource_path
from bookstore_operator.errors import ChildWriteError
from bookstore_operator.models import Bookstore

__all__ = ["BOOKSTORE_API_VERSION", "USER_AGENT", "ApplyReport", "Kube", "resource_path"]

logger = logging.getLogger(__name__)

# Spec fields the API server refuses to change once the object exists (422): set at creation,
# then left out of every apply (see creation_only).
FIXED_AT_CREATION: dict[tuple[str, str], tuple[str, ...]] = {
    ("apps/v1", "StatefulSet"): ("volumeClaimTemplates",),
}
STATUS_WRITE_ATTEMPTS = 3
# The children this process has found live, per Bookstore (namespace, name): a wanted child
# missing later was deleted by someone else, so recreating it is a drift repair, while a child
# never seen is only being made. Forgotten with the Bookstore (forget_bookstore).
_seen_children: dict[tuple[str, str], set[str]] = {}


def forget_bookstore(namespace: str, name: str) -> None:
    """A Bookstore is gone: drop its gauges (metrics.BOOKSTORES) and which children were seen."""
    metrics.BOOKSTORES.forget(namespace, name)
    _seen_children.pop((namespace, name), None)


@dataclasses.dataclass
class ApplyReport:
    """What one pass over the children found and did."""

    live: dict[ChildKey, dict[str, Any] | None] = dataclasses.field(default_factory=dict)
    created: list[str] = dataclasses.field(default_factory=list)
    updated: list[str] = dataclasses.field(default_factory=list)
    deleted: list[str] = dataclasses.field(default_factory=list)
    foreign: list[str] = dataclasses.field(default_factory=list)
    drifted: list[str] = dataclasses.field(default_factory=list)
    # Updated because what the operator builds changed (a new operator release, a changed
    # input such as an external database's Secret), not because the live object drifted.
    rebuilt: list[str] = dataclasses.field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)


def label(key: ChildKey) -> str:
    """`Deployment/downtown-catalog`, for events and messages."""
    return f"{key.kind}/{key.name}"


def is_owned(live: Mapping[str, Any], store: Bookstore) -> bool:
    """True when the object carries our Bookstore's controller ownerReference."""
    refs = live.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == store.uid and ref.get("controller") for ref in refs)


def creation_only(key: ChildKey, autoscaled: Collection[str]) -> tuple[str, ...]:
    """Spec fields set when the child is created and never applied again.

    A StatefulSet's claim templates are immutable (a larger spec.database.storage grows each
    PVC instead: reconciler.reconcile_storage). An autoscaled Deployment starts at
    minReplicas, then its HPA owns `replicas`: applying it again would fight the HPA.
    """
    fixed = FIXED_AT_CREATION.get((key.api_version, key.kind), ())
    if key.kind == "Deployment" and key.name in autoscaled:
        fixed = (*fixed, "replicas")
    return fixed


def autoscaled(desired: Mapping[ChildKey, dict[str, Any] | None]) -> set[str]:
    """Names of the Deployments an HPA we want scales."""
    return {
        manifest["spec"]["scaleTargetRef"]["name"]
        for key, manifest in desired.items()
        if manifest is not None and key.kind == "HorizontalPodAutoscaler"
    }


def desired_body(
    key: ChildKey,
    manifest: Mapping[str, Any],
    live: Mapping[str, Any] | None,
    autoscaled: Collection[str],
) -> dict[str, Any]:
    """What to apply: the full manifest to create; later, without creation-only fields.

    An immutable field is applied again with its live value instead of being left out:
    our manager owns it since creation, and a field an apply drops is removed, which the
    API server refuses (422) for a StatefulSet's claim templates.
    """
    fixed = creation_only(key, autoscaled)
    if live is None:
        return apply_body(manifest, fixed, creating=True)
    body = apply_body(manifest, fixed)
    spec = live.get("spec") or {}
    for field in FIXED_AT_CREATION.get((key.api_version, key.kind), ()):
        if field in spec:
            body["spec"][field] = copy.deepcopy(spec[field])
    return body


async def apply_children(
    kube: Kube, store: Bookstore, desired: Mapping[ChildKey, dict[str, Any] | None], *, write: bool
) -> ApplyReport:
    """Bring every child to its desired state (or, with write=False, only look at them)."""
    report = ApplyReport()
    scaled = autoscaled(desired)
    spec_applied = SpecApplied(kube, store)
    for key, manifest in desired.items():
        live = await kube.get(key.api_version, key.kind, store.namespace, key.name)
        report.live[key] = live
        seen = _seen_children.setdefault((store.namespace, store.name), set())
        if live is not None:
            seen.add(label(key))
        if live is not None and not is_owned(live, store):
            if manifest is not None:
                report.foreign.append(label(key))
            continue
        try:
            if manifest is None:
                await _remove(kube, store, key, live, report, write=write)
            else:
                manifest = await release_manifest(manifest, live, spec_applied)
                body = desired_body(key, manifest, live, scaled)
                scaled_here = "replicas" in creation_only(key, scaled)
                await _converge(
                    kube, key, manifest, body, live, report, write=write, hpa=scaled_here, seen=seen
                )
        except ApiException as exc:
            raise ChildWriteError(label(key), exc) from exc
    return report


class SpecApplied:
    """Whether the Bookstore's spec was applied at its generation (templates.spec_applied),
    read from the API server once, and only when a workload could keep its template."""

    def __init__(self, kube: Kube, store: Bookstore) -> None:
        self._kube, self._store = kube, store
        self._answer: bool | None = None

    async def __call__(self) -> bool:
        if self._answer is None:
            store = self._store
            found = await self._kube.get(
                BOOKSTORE_API_VERSION, "Bookstore", store.namespace, store.name
            )
            self._answer = templates.spec_applied(found, store.generation)
        return self._answer


async def release_manifest(
    manifest: dict[str, Any],
    live: Mapping[str, Any] | None,
    spec_applied: Callable[[], Awaitable[bool]],
) -> dict[str, Any]:
    """The manifest to apply: a workload an earlier release wrote keeps its pod template while
    rolling it would bring nothing the spec asked for (see `templates`); every other gets
    this release's marker."""
    template = None if live is None else templates.held_template(manifest, live)
    if live is not None and template is not None and await spec_applied():
        return templates.holding(manifest, template, live)
    return templates.marked(manifest)


async def _remove(
    kube: Kube,
    store: Bookstore,
    key: ChildKey,
    live: dict[str, Any] | None,
    report: ApplyReport,
    *,
    write: bool,
) -> None:
    """A child the spec no longer wants: delete it if it exists."""
    if live is None:
        return
    report.drifted.append(label(key))
    if write:
        await kube.delete(key.api_version, key.kind, store.namespace, key.name)
        report.live[key] = None
        report.deleted.append(label(key))
        _seen_children.get((store.namespace, store.name), set()).discard(label(key))


async def _converge(
    kube: Kube,
    key: ChildKey,
    manifest: dict[str, Any],
    body: dict[str, Any],
    live: dict[str, Any] | None,
    report: ApplyReport,
    *,
    write: bool,
    hpa: bool,
    seen: set[str],
) -> None:
    """One wanted child: create it when absent, else apply our fields when they differ.

    Recreating a child this process saw live before, and re-applying one someone edited,
    count as drift repairs.

    Generated Secrets are created once and never written again (a new password under a
    running database locks the services out).
    """
    if live is None:
        report.drifted.append(label(key))
        if write:
            if key.kind == "Secret":
                report.live[key] = await kube.create(manifest)
            else:
                report.live[key] = await kube.apply(body)
            report.created.append(label(key))
            if label(key) in seen:  # it was there: someone deleted it
                metrics.drift_repaired(key.kind)
            seen.add(label(key))
        return
    if key.kind == "Secret" or not needs_apply(live, body):
        return
    report.drifted.append(label(key))
    if not write:
        return
    if hpa:
        await hand_over_replicas(kube, live, manifest)
    applied = await kube.apply(body)
    report.live[key] = applied
    if _version(applied) != _version(live):
        report.updated.append(label(key))
        if rebuilt(live, body):  # what we build changed (spec, inputs, operator release)
            report.rebuilt.append(label(key))
        else:  # we applied this very body before: someone changed the live object
            metrics.drift_repaired(key.kind)
    else:  # the API server found nothing to change: not drift after all
        report.drifted.remove(label(key))
        logger.debug("Applying %s changed nothing.", label(key))


async def hand_over_replicas(
    kube: Kube, live: Mapping[str, Any], manifest: Mapping[str, Any]
) -> None:
    """Keep a Deployment's replicas when its HPA takes over from our apply.

    When our apply stops sending a field it owned, the API server removes it, and a
    Deployment without `replicas` defaults to 1: switching autoscaling on would scale the
    service down to one pod until the HPA reacts. So, while our Apply manager still owns
    `replicas` (autoscaling was off, or the HPA has not changed it since creation), a second
    Apply manager first applies max(current, minReplicas) (the Kubernetes documentation's
    "transferring ownership"). A merge patch would not do: an Update that changes nothing
    takes no ownership. The handover manager's share goes when the HPA next writes replicas.
    """
    body = handover_body(live, manifest)
    if body is not None:
        await kube.apply(body, field_manager=HANDOVER_MANAGER)


def handover_body(live: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The handover apply (see hand_over_replicas), or None when our apply owns no replicas."""
    current = (live.get("spec") or {}).get("replicas")
    if current is None or not owns(live, FIELD_MANAGER, "Apply", ("spec", "replicas")):
        return None
    meta = live["metadata"]
    return {
        "apiVersion": live["apiVersion"],
        "kind": live["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": max(int(current), int(manifest["spec"]["replicas"]))},
    }


def removing(previous: Mapping[str, Any], wanted: Mapping[str, Any]) -> dict[str, Any]:
    """`wanted` as a merge patch over `previous`: a key it lacks, at any depth, is nulled
    (a merge patch keeps what it does not mention, e.g. status.backup.nextScheduledBackup)."""
    patch: dict[str, Any] = {key: None for key in previous if key not in wanted}
    for key, value in wanted.items():
        before = previous.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            patch[key] = removing(before, value)
        else:
            patch[key] = value
    return patch


def _version(obj: Mapping[str, Any]) -> str | None:
    version: str | None = obj.get("metadata", {}).get("resourceVersion")
    return version


async def write_status(
    kube: Kube,
    body: Mapping[str, Any],
    status: Mapping[str, Any],
    *,
    api_version: str = BOOKSTORE_API_VERSION,
    kind: str = "Bookstore",
    still_ours: Callable[[Mapping[str, Any], Mapping[str, Any]], bool] | None = None,
) -> bool:
    """Patch an object's status subresource when it changed; retry on a conflict.

    The patch carries the resourceVersion we read, so a concurrent writer makes it fail
    with 409 instead of being overwritten; we then re-read and try again while
    `still_ours(body, fresh)` holds (default: the object is still at the generation this
    status describes). Keys the new status drops are removed at any depth. A Bookstore's
    status feeds the per-Bookstore gauges (metrics.BOOKSTORES), written or not.
    """
    meta = body["metadata"]
    if kind == "Bookstore":
        metrics.BOOKSTORES.observe(meta["namespace"], meta["name"], status)
    current: Mapping[str, Any] = body
    for _ in range(STATUS_WRITE_ATTEMPTS):
        previous = current.get("status") or {}
        if dict(previous) == dict(status):
            return False
        patch = {
            "metadata": {"resourceVersion": current["metadata"]["resourceVersion"]},
            "status": removing(previous, status),
        }
        try:
            await kube.merge_patch(
                api_version, kind, meta["namespace"], meta["name"], patch, subresource="status"
            )
        except ApiException as exc:
            if exc.status != 409:
                raise
            fresh = await kube.get(api_version, kind, meta["namespace"], meta["name"])
            if fresh is None and kind == "Bookstore":
                forget_bookstore(meta["namespace"], meta["name"])
            if fresh is None or not (still_ours or _same_generation)(body, fresh):
                return False  # gone or changed again: the next reconcile reports the new state
            current = fresh
            continue
        return True
    logger.warning(
        "Status of %s %s/%s kept conflicting; the next reconcile retries.",
        kind,
        meta["namespace"],
        meta["name"],
    )
    return False


def _same_generation(body: Mapping[str, Any], fresh: Mapping[str, Any]) -> bool:
    return bool(fresh["metadata"].get("generation") == body["metadata"].get("generation"))
