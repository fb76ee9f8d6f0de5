"""`why`: from the Bookstore's Ready condition to the child at fault, its pods and their events.

Pure: it reads a cluster.Snapshot and returns the chains to print. The children are looked at
directly (not only through the conditions), so a status the operator has not refreshed (it is
down, or behind) still leads to the real culprit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from bookstore_kubectl.cluster import COMPONENT_LABEL, Obj, Snapshot, labels_of, name_of
from bookstore_kubectl.pods import Trouble, clip, explain_claim, explain_pod, secret_fix

COMPONENTS = ("database", "catalog", "orders")
CONDITION_OF = {"database": "DatabaseReady", "catalog": "CatalogReady", "orders": "OrdersReady"}
# Ready reasons while the Deployments are held back on purpose (they may not exist yet).
HOLDING = frozenset(
    {"Migrating", "MigrationFailed", "DowngradeRefused", "Restoring", "WaitingForBackup"}
)
SECRET_REASONS = frozenset(
    {
        "ExternalSecretMissing",
        "ExternalSecretInvalid",
        "ApiKeySecretMissing",
        "ApiKeySecretInvalid",
        "DatabaseCredentialsLost",
        "DatabaseCredentialsInvalid",
    }
)


@dataclasses.dataclass(frozen=True)
class Finding:
    """One chain from a part of the Bookstore down to the cause, and what to do about it."""

    steps: tuple[str, ...]
    fix: str


@dataclasses.dataclass(frozen=True)
class Report:
    """The answer to `why`: the Ready condition in one line, and the findings (none: healthy)."""

    headline: str
    findings: tuple[Finding, ...]

    @property
    def healthy(self) -> bool:
        return not self.findings


def condition(snap: Snapshot, kind: str) -> Mapping[str, Any] | None:
    for found in (snap.bookstore.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def diagnose(snap: Snapshot) -> Report:
    """What is wrong with the Bookstore, from the Ready condition down to pods and events."""
    status = snap.bookstore.get("status") or {}
    ready = condition(snap, "Ready")
    headline = _headline(snap, ready)
    findings: list[Finding] = []
    spec = snap.bookstore.get("spec") or {}
    if spec.get("paused"):
        findings.append(
            Finding(("spec.paused is true: the operator changes nothing",), "set spec.paused false")
        )
    reason = str((ready or {}).get("reason") or "")
    ready_false = ready is not None and ready.get("status") != "True"
    if ready_false and reason in SECRET_REASONS:
        findings.append(_secret_finding(snap, ready or {}))
    findings.extend(_job_findings(snap, ready or {}))
    for component in COMPONENTS:
        found = _component_finding(snap, component, holding=reason in HOLDING)
        if found is not None:
            findings.append(found)
    findings.extend(_backup_findings(snap))
    if ready is None:
        findings.append(
            Finding(
                ("Bookstore: no Ready condition: the operator has not reported on it",),
                "check that the operator runs (kubectl get pods -l"
                " app.kubernetes.io/name=bookstore-operator -A) and its log",
            )
        )
    elif ready_false and not findings:
        findings.append(_condition_finding(snap, ready))
    elif (
        int(status.get("observedGeneration") or 0)
        < int(snap.bookstore["metadata"].get("generation") or 0)
        and not findings
    ):
        findings.append(
            Finding(
                ("Bookstore: the status is older than the spec (observedGeneration behind)",),
                "wait a moment; if it stays behind, check that the operator runs",
            )
        )
    return Report(headline, tuple(findings))


def _headline(snap: Snapshot, ready: Mapping[str, Any] | None) -> str:
    status = snap.bookstore.get("status") or {}
    where = f"Bookstore {snap.namespace}/{snap.name}"
    if ready is None:
        return f"{where}: no status yet"
    phase = status.get("phase") or "unknown"
    return (
        f"{where}: Ready {ready.get('status')} ({ready.get('reason') or 'no reason'}),"
        f" phase {phase}"
    )


def _secret_finding(snap: Snapshot, ready: Mapping[str, Any]) -> Finding:
    spec = snap.bookstore.get("spec") or {}
    reason = str(ready.get("reason"))
    if reason.startswith("ApiKey"):
        secret = (spec.get("auth") or {}).get("apiKeySecretName") or f"{snap.name}-api-key"
    elif reason.startswith("External"):
        secret = ((spec.get("database") or {}).get("external") or {}).get("secretName") or "?"
    else:
        secret = f"{snap.name}-db"
    return Finding(
        (f"Ready: {reason}", f"Secret {secret}: {clip(ready.get('message') or '')}"),
        secret_fix(snap, secret),
    )


def _condition_finding(snap: Snapshot, ready: Mapping[str, Any]) -> Finding:
    """A reason with no child to blame: the operator's message, and the fix it calls for."""
    reason = str(ready.get("reason") or "")
    status = snap.bookstore.get("status") or {}
    serving = status.get("version") or "the serving version"
    fixes = {
        "DowngradeRefused": f"set spec.version back to {serving}",
        "ChildNotOwned": "delete or rename the object the message names",
        "QuotaExceeded": "raise the ResourceQuota or free room; the operator retries",
        "StorageResizeRefused": (
            "set spec.database.storage back to status.database.storage"
            f" ({(status.get('database') or {}).get('storage', '?')}), or allow volume expansion"
            " on the StorageClass"
        ),
        "RolloutStuck": "look at the new pods' events; change spec.version to go on",
        "AdmissionDenied": "change the admission policy or the spec",
        "Paused": "set spec.paused false",
    }
    fix = fixes.get(reason, f"kubectl describe bookstore {snap.name} -n {snap.namespace}")
    return Finding((f"Ready: {reason}", clip(ready.get("message") or "no message", 400)), fix)


def _component_finding(snap: Snapshot, component: str, *, holding: bool) -> Finding | None:
    """A component whose workload is missing or not fully ready, down to its worst pod."""
    spec = snap.bookstore.get("spec") or {}
    if component == "database" and ((spec.get("database") or {}).get("external") or {}).get(
        "secretName"
    ):
        return None  # an external database: no workload of ours to look at
    workload = snap.workload(component)
    cond = condition(snap, CONDITION_OF[component])
    if workload is None:
        if holding or snap.bookstore.get("status") is None:
            return None
        return Finding(
            (f"{component}: its {_kind(component)} does not exist",),
            "the operator creates it: check that the operator runs, and the Bookstore's events",
        )
    ready, desired = _counts(workload)
    if ready >= desired and (cond is None or cond.get("status") == "True"):
        return None
    head = f"{component}: {ready}/{desired} ready"
    updated = (workload.get("status") or {}).get("updatedReplicas")
    if updated is not None and int(updated) < desired:
        head += f", {updated}/{desired} updated"  # a rollout under way: the new pods matter
    refused = _replica_failure(workload)
    if refused:
        return Finding(
            (head, f"{workload['kind']} {name_of(workload)}: {refused}"),
            "the pods cannot be created: fix what refuses them (ResourceQuota, admission policy)",
        )
    pods = snap.pods_of(component)
    troubles = [t for t in (explain_pod(snap, pod, component) for pod in _newest_first(pods)) if t]
    if troubles:
        first = troubles[0]
        others = len(troubles) - 1
        more = f" (and {others} more pod{'s' if others > 1 else ''})" if others else ""
        return Finding((head, *first.steps[:-1], first.steps[-1] + more), first.fix)
    claim = _unbound_claim(snap, component)
    if claim is not None:
        return Finding((head, *claim.steps), claim.fix)
    if ready >= desired:
        return None  # the condition lags behind the workload: nothing to blame
    if not pods:
        return Finding(
            (head, "no pods"),
            f"kubectl describe {workload['kind'].lower()} {name_of(workload)} -n {snap.namespace}",
        )
    return Finding(
        (head, "pods are starting"),
        f"wait, or watch: kubectl get pods -l app.kubernetes.io/instance={snap.name} -n"
        f" {snap.namespace}",
    )


def _kind(component: str) -> str:
    return "StatefulSet" if component == "database" else "Deployment"


def _counts(workload: Obj) -> tuple[int, int]:
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    desired = int(spec.get("replicas", status.get("replicas", 1)))
    return int(status.get("readyReplicas") or 0), desired


def _replica_failure(workload: Obj) -> str:
    for cond in (workload.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            return f"{cond.get('reason')}: {clip(cond.get('message') or '')}"
    return ""


def _newest_first(pods: list[Obj]) -> list[Obj]:
    return sorted(
        pods, key=lambda p: str(p["metadata"].get("creationTimestamp") or ""), reverse=True
    )


def _unbound_claim(snap: Snapshot, component: str) -> Trouble | None:
    for claim in snap.claims:
        if labels_of(claim).get(COMPONENT_LABEL) != component:
            continue
        if (claim.get("status") or {}).get("phase") != "Bound":
            return explain_claim(snap, claim)
    return None


def _failed(job: Obj) -> Mapping[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed" and cond.get("status") == "True":
            return dict(cond)
    return None


def _job_findings(snap: Snapshot, ready: Mapping[str, Any]) -> list[Finding]:
    """Migration (and restore) Jobs that failed or cannot run, when the status names them or
    no status says anything yet."""
    message = " ".join(
        str(c.get("message") or "") for c in (ready, condition(snap, "Progressing") or {})
    )
    findings = []
    for job in snap.jobs:
        component = labels_of(job).get(COMPONENT_LABEL)
        if component not in ("migration", "backup") or name_of(job).endswith("-dump"):
            continue  # backup Jobs are looked at through their BookstoreBackup
        if f"Job/{name_of(job)}" not in message and snap.bookstore.get("status"):
            continue
        found = _job_finding(snap, job, component)
        if found is not None:
            findings.append(found)
    return findings


def _job_finding(snap: Snapshot, job: Obj, component: str) -> Finding | None:
    failed = _failed(job)
    head = (
        f"Job {name_of(job)}: Failed ({failed.get('reason') or 'no reason'})"
        if failed
        else f"Job {name_of(job)}: running"
    )
    pods = _newest_first(snap.pods_of_job(job))
    troubles = [t for t in (explain_pod(snap, p, component) for p in pods) if t]
    status = snap.bookstore.get("status") or {}
    serving = status.get("version")
    retry = (
        f"set spec.version back to {serving}, or fix the image and delete Job {name_of(job)}"
        " to run it again"
        if serving
        else f"fix the image or the database, then delete Job {name_of(job)} to run it again"
    )
    if troubles:
        first = troubles[0]
        fix = first.fix
        if failed and first.fix.startswith("read its log"):
            fix = f"kubectl logs job/{name_of(job)} -n {snap.namespace}; {retry}"
        return Finding((head, *first.steps), fix)
    if failed:
        return Finding(
            (head, clip(failed.get("message") or "no message")),
            f"kubectl logs job/{name_of(job)} -n {snap.namespace}; {retry}",
        )
    return None


def _backup_findings(snap: Snapshot) -> list[Finding]:
    """LastBackupSucceeded False: the newest failed backup, its Job and pod."""
    cond = condition(snap, "LastBackupSucceeded")
    if cond is None or cond.get("status") == "True":
        return []
    failed = [b for b in snap.backups if (b.get("status") or {}).get("phase") == "Failed"]
    head = f"LastBackupSucceeded: {cond.get('reason')}"
    if not failed:
        return [Finding((head, clip(cond.get("message") or "")), _backup_fix(snap, cond))]
    newest = max(failed, key=lambda b: str(b["metadata"].get("creationTimestamp") or ""))
    steps = [head, f"BookstoreBackup {name_of(newest)}: Failed"]
    message = (newest.get("status") or {}).get("message")
    job = next((j for j in snap.jobs if name_of(j) == f"{name_of(newest)}-dump"), None)
    found = _job_finding(snap, job, "backup") if job is not None else None
    if found is not None and found.steps[-1] != clip(message or ""):
        steps.extend(found.steps)
    elif message:
        steps.append(clip(message))
    fix = _backup_fix(snap, cond, name_of(newest))
    if "no space left on device" in " ".join(steps).lower():
        fix = (
            f"the {snap.name}-backups volume is full: lower spec.backup.retention or grow the"
            f" claim (kubectl edit pvc {snap.name}-backups -n {snap.namespace}); then {fix}"
        )
    return [Finding(tuple(steps), fix)]


def _backup_fix(snap: Snapshot, cond: Mapping[str, Any], backup: str = "") -> str:
    if cond.get("reason") == "InvalidBackupSchedule":
        return "fix spec.backup.schedule: five cron fields (UTC) or @daily/@hourly/..."
    logs = f"kubectl logs job/{backup}-dump -n {snap.namespace}; " if backup else ""
    return (
        f"{logs}fix the cause, then take one: kubectl annotate --overwrite bookstore {snap.name}"
        f' -n {snap.namespace} bookstore.dev/backup-now="$(date +%s)"'
    )
