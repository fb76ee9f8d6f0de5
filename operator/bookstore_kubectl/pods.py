"""Why one pod does not run: its scheduling, volumes, containers and events, with a likely fix.

Pure functions over the objects the API server returned (see cluster.Snapshot); the wording of
the waiting reasons and event messages is the kubelet's and the scheduler's.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from typing import Any

from bookstore_kubectl.cluster import Obj, Snapshot, name_of

PULL_FAILURES = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})
CONFIG_FAILURES = frozenset({"CreateContainerConfigError", "CreateContainerError"})
SECRET_MISSING = re.compile(r'secret "(?P<name>[^"]+)" not found', re.IGNORECASE)
KEY_MISSING = re.compile(
    r"couldn't find key (?P<key>\S+) in Secret (?:(?P<ns>[^/\s]+)/)?(?P<name>[^\s,;]+)",
    re.IGNORECASE,
)
NOT_FOUND_HINTS = ("not found", "manifest unknown", "name unknown", "does not exist")
REFUSED_HINTS = ("unauthorized", "authentication required", "denied", "forbidden")
MESSAGE_LIMIT = 200


@dataclasses.dataclass(frozen=True)
class Trouble:
    """What keeps a pod (or a claim) from serving: the steps of the chain and the fix."""

    steps: tuple[str, ...]
    fix: str


def clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """One line, at most `limit` characters (the end of a long message is what matters)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def image_field(component: str) -> str:
    """The spec field that chooses a component's image."""
    if component in ("database", "backup"):
        return "spec.database.image"
    return "spec.version"


def explain_pod(snap: Snapshot, pod: Obj, component: str) -> Trouble | None:
    """Why `pod` of `component` is not ready or failed, or None when nothing is wrong with it."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if meta.get("deletionTimestamp") or status.get("phase") == "Succeeded":
        return None
    head = f"pod {name_of(pod)}"
    for cs in [
        *(status.get("initContainerStatuses") or []),
        *(status.get("containerStatuses") or []),
    ]:
        found = _explain_container(snap, pod, cs, component)
        if found is not None:
            return Trouble((f"{head}: {found.steps[0]}", *found.steps[1:]), found.fix)
    if status.get("phase") == "Pending":
        return _explain_pending(snap, pod, component, head)
    if status.get("phase") == "Failed":
        reason = status.get("reason") or "Failed"
        return Trouble(
            (f"{head}: {reason}", clip(status.get("message") or "no message")),
            f"kubectl describe pod {name_of(pod)} -n {snap.namespace}",
        )
    if not _ready(pod):
        probe = _last_event(snap, pod, "Unhealthy")
        if probe is not None:
            return Trouble(
                (f"{head}: running, not ready", clip(probe.get("message") or "")),
                _not_ready_fix(snap, component, name_of(pod)),
            )
    return None


def _explain_container(
    snap: Snapshot, pod: Obj, cs: Mapping[str, Any], component: str
) -> Trouble | None:
    state = cs.get("state") or {}
    waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
    reason = str(waiting.get("reason") or "")
    container = cs.get("name", "")
    if reason in PULL_FAILURES:
        return _pull_failure(snap, pod, cs, reason, component)
    if reason == "CrashLoopBackOff":
        last = (cs.get("lastState") or {}).get("terminated") or {}
        steps = (
            f"container {container}: CrashLoopBackOff (restarted {cs.get('restartCount', 0)}"
            " times)",
            _termination(last),
        )
        return Trouble(steps, _crash_fix(snap, pod, container, last, component))
    if reason in CONFIG_FAILURES or (reason == "ContainerCreating" and _mount_failure(snap, pod)):
        message = str(waiting.get("message") or "")
        if reason == "ContainerCreating":
            message = str((_mount_failure(snap, pod) or {}).get("message") or "")
            reason = "FailedMount"
        return _config_failure(snap, container, reason, message)
    if reason and reason not in ("ContainerCreating", "PodInitializing"):
        return Trouble(
            (f"container {container}: {reason}", clip(waiting.get("message") or "no message")),
            f"kubectl describe pod {name_of(pod)} -n {snap.namespace}",
        )
    if terminated and int(terminated.get("exitCode", 0)) != 0:
        return Trouble(
            (f"container {container}: terminated", _termination(terminated)),
            _crash_fix(snap, pod, container, terminated, component),
        )
    return None


def _pull_failure(
    snap: Snapshot, pod: Obj, cs: Mapping[str, Any], reason: str, component: str
) -> Trouble:
    image = str(cs.get("image") or _spec_image(pod, cs.get("name", "")))
    pulled = _last_event(snap, pod, "Failed", contains="image")
    waiting = str((cs.get("state") or {}).get("waiting", {}).get("message") or "")
    if waiting.startswith("Back-off pulling image"):
        waiting = ""  # says nothing of why; the kubelet's reason is in the events
    detail = str((pulled or {}).get("message") or waiting)
    lowered = detail.lower()
    field = image_field(component)
    fields = f"{field}{_value(snap, field)}" + (
        "" if component in ("database", "backup") else " and spec.image"
    )
    if any(hint in lowered for hint in REFUSED_HINTS):
        what = f"the registry refused to serve image {image} (unauthorized)"
        fix = (
            f"check {field}, and that the nodes may pull from the registry (a public image, or"
            " pull credentials on the nodes)"
        )
    elif reason == "InvalidImageName":
        what, fix = f"image {image} is not a valid image name", f"check {field} and spec.image"
    elif any(hint in lowered for hint in NOT_FOUND_HINTS):
        what, fix = f"image {image} not found", f"check {fields}"
    elif not detail:
        what = f"image {image} cannot be pulled (no event says why any more)"
        fix = f"check {fields}, and that the nodes reach the registry"
    else:
        what = f"image {image} cannot be pulled: {clip(detail)}"
        fix = f"check {field} and that the nodes reach the registry"
    return Trouble((reason, what), fix)


def _value(snap: Snapshot, field: str) -> str:
    """` (value)` of a spec field named `spec.a.b`, when it is set."""
    value: Any = snap.bookstore
    for part in field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return f" ({value})" if value else ""


def _spec_image(pod: Obj, container: str) -> str:
    spec = pod.get("spec") or {}
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if c.get("name") == container:
            return str(c.get("image", ""))
    return ""


def _termination(terminated: Mapping[str, Any]) -> str:
    if not terminated:
        return "no earlier termination recorded"
    code = terminated.get("exitCode", "?")
    reason = terminated.get("reason") or ""
    message = _report(str(terminated.get("message") or ""))
    said = f": {message}" if message else (f" ({reason})" if reason else "")
    if reason == "OOMKilled":
        said = " (OOMKilled: out of memory)"
    return f"exit code {code}{said}"


def _report(message: str) -> str:
    """A termination message in one line: `migrate`'s JSON report gives its outcome, the
    schema revisions and the end of its error (the last lines say the most)."""
    try:
        report = json.loads(message)
    except ValueError:
        report = None
    if not isinstance(report, dict) or "message" not in report:
        return clip(message)
    lines = [line for line in str(report.get("message") or "").splitlines() if line.strip()]
    text = " ".join(lines[-1].split()) if lines else "no message"  # a traceback's error line
    text = text if len(text) <= MESSAGE_LIMIT else f"...{text[-MESSAGE_LIMIT:]}"
    revisions = f" (schema at {report.get('revision') or 'none'}, head {report.get('head')})"
    return f"{report.get('outcome', 'failed')}{revisions if report.get('head') else ''}: {text}"


def _crash_fix(
    snap: Snapshot, pod: Obj, container: str, terminated: Mapping[str, Any], component: str
) -> str:
    logs = f"kubectl logs {name_of(pod)} -c {container} --previous -n {snap.namespace}"
    message = str(terminated.get("message") or "").lower()
    if terminated.get("reason") == "OOMKilled":
        where = "database" if component == "database" else component
        return f"raise spec.{where}.resources.limits.memory; {logs}"
    if "refused the login" in message or "password authentication failed" in message:
        return (
            f"the password in Secret {snap.name}-db (or the external Secret) is not the"
            f" database's: restore the right Secret; {logs}"
        )
    return f"read its log: {logs}"


def _config_failure(snap: Snapshot, container: str, reason: str, message: str) -> Trouble:
    key = KEY_MISSING.search(message)
    missing = SECRET_MISSING.search(message)
    if key is not None:
        secret = key.group("name")
        what = f"Secret {secret} has no key {key.group('key')}"
    elif missing is not None:
        secret = missing.group("name")
        what = f"Secret {secret} does not exist"
    else:
        return Trouble(
            (f"container {container}: {reason}", clip(message or "no message")),
            f"kubectl describe pod -n {snap.namespace} (look at the container's env and volumes)",
        )
    return Trouble((f"container {container}: {reason}", what), secret_fix(snap, secret))


def secret_fix(snap: Snapshot, secret: str) -> str:
    """How to bring back a Secret a Bookstore's pods need, by what the spec says it is."""
    spec = snap.bookstore.get("spec") or {}
    api_key = ((spec.get("auth") or {}).get("apiKeySecretName")) or ""
    external = (((spec.get("database") or {}).get("external") or {}).get("secretName")) or ""
    if secret == api_key:
        return f"create Secret {secret} with the key api-key (spec.auth.apiKeySecretName)"
    if secret == external:
        return (
            f"create Secret {secret} with host, port, username and password"
            " (spec.database.external.secretName)"
        )
    if secret == f"{snap.name}-db":
        return (
            f"restore Secret {secret} (postgres-password, catalog-password, orders-password) from"
            " a backup, without ownerReferences; the operator never makes new passwords while the"
            " data volume exists"
        )
    if secret == f"{snap.name}-api-key":
        return "the operator recreates this Secret: check that the operator runs"
    return f"create Secret {secret} in namespace {snap.namespace}"


def _explain_pending(snap: Snapshot, pod: Obj, component: str, head: str) -> Trouble | None:
    for claim_name in _claims_of(pod):
        claim = snap.claim(claim_name)
        if claim is None:
            return Trouble(
                (f"{head}: Pending", f"claim {claim_name} does not exist"),
                "the StatefulSet controller makes it:"
                f" kubectl describe statefulset -n {snap.namespace}",
            )
        phase = (claim.get("status") or {}).get("phase")
        if phase != "Bound":
            trouble = explain_claim(snap, claim)
            return Trouble((f"{head}: Pending", *trouble.steps), trouble.fix)
    scheduled = next(
        (
            c
            for c in (pod.get("status") or {}).get("conditions") or []
            if c.get("type") == "PodScheduled"
        ),
        None,
    )
    event = _last_event(snap, pod, "FailedScheduling")
    if (scheduled and scheduled.get("status") == "False") or event is not None:
        message = (event or {}).get("message") or (scheduled or {}).get("message") or ""
        where = "database" if component in ("database", "backup") else component
        return Trouble(
            (f"{head}: Pending", f"FailedScheduling: {clip(message)}"),
            f"no node fits it: add nodes or room, or lower spec.{where}.resources.requests",
        )
    return None


def explain_claim(snap: Snapshot, claim: Obj) -> Trouble:
    """Why a claim is not Bound: its provisioning events, and the StorageClass to check."""
    name = name_of(claim)
    phase = (claim.get("status") or {}).get("phase") or "Pending"
    events = [e for e in snap.events_of(claim) if e.get("type") == "Warning"] or snap.events_of(
        claim
    )
    detail = clip(events[-1].get("message") or "") if events else "no events"
    storage_class = (claim.get("spec") or {}).get("storageClassName")
    field = (
        "spec.backup.volume" if name == f"{snap.name}-backups" else "spec.database.storageClassName"
    )
    if storage_class:
        fix = (
            f"check that StorageClass {storage_class} exists and provisions"
            f" (kubectl get storageclass), or set {field}"
        )
    else:
        fix = (
            f"the claim names no StorageClass and none is the default: set {field}, or mark a"
            " StorageClass default"
        )
    return Trouble((f"claim {name}: {phase}", detail), fix)


def _claims_of(pod: Obj) -> list[str]:
    return [
        v["persistentVolumeClaim"]["claimName"]
        for v in (pod.get("spec") or {}).get("volumes") or []
        if v.get("persistentVolumeClaim")
    ]


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _last_event(snap: Snapshot, obj: Obj, reason: str, contains: str = "") -> Obj | None:
    found = [
        e
        for e in snap.events_of(obj)
        if e.get("reason") == reason and contains in str(e.get("message") or "")
    ]
    return found[-1] if found else None


def _mount_failure(snap: Snapshot, pod: Obj) -> Obj | None:
    return _last_event(snap, pod, "FailedMount")


def _not_ready_fix(snap: Snapshot, component: str, pod: str) -> str:
    if component == "database":
        return f"kubectl logs {pod} -n {snap.namespace}"
    return (
        f"its /health/ready fails: is the database ready (DatabaseReady)? kubectl logs {pod}"
        f" -n {snap.namespace}"
    )
