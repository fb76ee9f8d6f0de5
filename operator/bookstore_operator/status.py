"""Pure status computation: what the Bookstore reports, derived from its children's real state.

Nothing here talks to the API. `compute_status` takes what the reconciler observed and the
previous status, and returns the complete new status (only the fields the CRD declares).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from kubernetes.utils.quantity import parse_quantity

from bookstore_operator import backup_health
from bookstore_operator.backup_health import BackupsObserved
from bookstore_operator.models import Bookstore, Component
from bookstore_operator.rollout import (
    Rollout,
    migrating_message,
    progress_reason,
    rollout_problem,
)
from bookstore_operator.schedules import parse_time

# DESIGN.md fixes the services' port; the builders use the same number for the Services.
SERVICE_PORT = 8000
Phase = Literal["Pending", "Progressing", "Ready", "Degraded", "Failed"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """Something the user must fix; `phase` says how bad it is."""

    reason: str
    message: str
    phase: Literal["Failed", "Degraded"] = "Failed"


@dataclasses.dataclass(frozen=True)
class Observed:
    """What one reconcile saw: the live workloads and what it could not do."""

    catalog: Mapping[str, Any] | None = None
    orders: Mapping[str, Any] | None = None
    database: Mapping[str, Any] | None = None  # the StatefulSet; None with an external database
    problems: Sequence[Problem] = ()
    in_sync: bool = True  # every child already matched its desired state
    changed: bool = False  # this reconcile wrote to children
    claims: Sequence[Mapping[str, Any]] = ()  # the database's data PVCs that exist
    rollout: Rollout | None = None  # None: no version change to follow (unit tests)
    backups: BackupsObserved | None = None  # None: backups not looked at (unit tests)
    # MonitoringReady (monitoring.MonitoringReport.verdict); None: monitoring disabled. It
    # never touches Ready or the phase: alerting is not serving.
    monitoring: Verdict | None = None


@dataclasses.dataclass(frozen=True)
class Verdict:
    """One condition's outcome before it is stamped with times and generations."""

    ok: bool
    reason: str
    message: str
    rolling: bool = False  # not ready because a rollout is still under way


def compute_status(
    store: Bookstore, observed: Observed, previous_status: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """The whole status for `store`, given what was observed and the previous status."""
    # A generation already reported means this reconcile's writes repaired drift: they do
    # not make the Bookstore unready unless a workload really rolls out again.
    spec_changed = previous_status.get("observedGeneration") != store.generation
    database = _database_verdict(store, observed)
    catalog = _deployment_verdict("catalog", observed.catalog, store.spec.catalog)
    orders = _deployment_verdict("orders", observed.orders, store.spec.orders)
    components = (database, catalog, orders)
    ready = _ready_verdict(store, observed, components, spec_changed=spec_changed)
    progressing = _progressing_verdict(
        store, observed, components, spec_changed=spec_changed, ready=ready.ok
    )
    verdicts = {
        "Ready": ready,
        "DatabaseReady": database,
        "CatalogReady": catalog,
        "OrdersReady": orders,
        "Progressing": progressing,
    }
    previous = {c.get("type"): c for c in previous_status.get("conditions") or []}
    health = _backup_health(observed.backups, now)
    if health is not None:
        verdicts[backup_health.CONDITION] = Verdict(health.ok, health.reason, health.message)
    if observed.monitoring is not None:
        verdicts["MonitoringReady"] = observed.monitoring
    conditions = [
        _condition(kind, verdict, previous.get(kind), store.generation, now)
        for kind, verdict in verdicts.items()
    ]
    phase = _phase(observed, ready, progressing)
    status: dict[str, Any] = {
        "observedGeneration": store.generation,
        # Failing backups make a serving Bookstore Degraded, but not unready: Ready means it
        # serves (kubectl wait, status.version), and LastBackupSucceeded says what is wrong.
        "phase": "Degraded" if phase == "Ready" and health and health.degraded else phase,
        "version": _serving_version(store, observed.rollout, previous_status, ready=ready.ok),
        "conditions": conditions,
        "catalog": _replicas(observed.catalog),
        "orders": _replicas(observed.orders),
        "endpoints": {
            component: f"http://{store.child_name(component)}.{store.namespace}.svc:{SERVICE_PORT}"
            for component in ("catalog", "orders")
        },
    }
    status.update(_upgrade_fields(observed.rollout, ready=ready.ok))
    database_status: dict[str, Any] = {}
    storage = current_storage(observed.claims)
    if storage is not None and not store.spec.database.is_external:
        database_status["storage"] = storage
    revisions = _schema_revisions(observed.rollout, previous_status)
    if revisions:
        database_status["schemaRevision"] = revisions
    restored = restored_from(observed.rollout, previous_status)
    if restored:
        database_status["restoredFrom"] = restored
    if database_status:
        status["database"] = database_status
    backup = backup_health.status_fields(observed.backups) if observed.backups else {}
    if backup:
        status["backup"] = backup
    return status


def _backup_health(backups: BackupsObserved | None, now: str) -> backup_health.Health | None:
    """LastBackupSucceeded, or None while no backup finished and nothing is wrong."""
    moment = parse_time(now)
    if backups is None or moment is None:
        return None
    return backup_health.health(backups, moment)


def rollout_problems(rollout: Rollout) -> list[Problem]:
    """The problem a version change reports, if the user must act on it."""
    found = rollout_problem(rollout)
    return [] if found is None else [Problem(*found)]


def _serving_version(
    store: Bookstore, rollout: Rollout | None, previous: Mapping[str, Any], *, ready: bool
) -> str:
    """status.version: the version serving everywhere, which moves only once a rollout ends."""
    if rollout is None or rollout.stage == "Serving":
        return store.version if ready else str(previous.get("version") or "")
    if rollout.stage == "RollingOut" and ready:
        return rollout.target
    return rollout.serving


def _upgrade_fields(rollout: Rollout | None, *, ready: bool) -> dict[str, Any]:
    if rollout is None:
        return {}
    fields: dict[str, Any] = {}
    finished = rollout.stage == "RollingOut" and ready
    if rollout.stage not in ("Serving", "RolledBack") and not finished:
        fields["targetVersion"] = rollout.target
    if rollout.rolled_back_from:
        fields["rolledBackFrom"] = rollout.rolled_back_from
    return fields


def _schema_revisions(rollout: Rollout | None, previous: Mapping[str, Any]) -> dict[str, str]:
    """The schema revision per service: the last one a migration Job reported."""
    revisions = {
        str(service): str(revision)
        for service, revision in (
            (previous.get("database") or {}).get("schemaRevision") or {}
        ).items()
    }
    for migration in rollout.migrations if rollout is not None else ():
        revision = migration.revision or migration.head
        if migration.state == "Succeeded" and revision:
            revisions[migration.service] = revision
    return revisions


def restored_from(rollout: Rollout | None, previous: Mapping[str, Any]) -> dict[str, str]:
    """status.database.restoredFrom: the backup this Bookstore was restored from, once its
    restore succeeded; kept from then on (the record that it must never run again)."""
    recorded = (previous.get("database") or {}).get("restoredFrom")
    restore = rollout.restore if rollout is not None else None
    if restore is not None and restore.state == "Succeeded":
        fields = {"backup": restore.backup, "bookstore": restore.source}
        fields["completedAt"] = restore.completed_at
        return {key: value for key, value in fields.items() if value}
    return {str(k): str(v) for k, v in recorded.items()} if isinstance(recorded, Mapping) else {}


def current_storage(claims: Sequence[Mapping[str, Any]]) -> str | None:
    """The data volume's size now: the smallest capacity (else request) among the PVCs.

    The CRD lets spec.database.storage go back down to this size, the way out of a resize
    the cluster refused.
    """
    sizes = [size for size in (_claim_size(claim) for claim in claims) if size]
    return min(sizes, key=parse_quantity) if sizes else None


def _claim_size(claim: Mapping[str, Any]) -> str | None:
    capacity = ((claim.get("status") or {}).get("capacity") or {}).get("storage")
    requests = ((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}
    size = capacity or requests.get("storage")
    return str(size) if size else None


def _condition(
    kind: str, verdict: Verdict, previous: Mapping[str, Any] | None, generation: int, now: str
) -> dict[str, Any]:
    status = "True" if verdict.ok else "False"
    unchanged = previous is not None and previous.get("status") == status
    return {
        "type": kind,
        "status": status,
        "reason": verdict.reason,
        "message": verdict.message,
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged and previous else now,
        "observedGeneration": generation,
    }


def _desired_replicas(workload: Mapping[str, Any]) -> int:
    spec, status = workload.get("spec") or {}, workload.get("status") or {}
    return int(spec.get("replicas", status.get("replicas", 1)))


def _rolled_out(workload: Mapping[str, Any]) -> bool:
    """The controller has seen the latest spec (observedGeneration >= generation)."""
    generation = workload.get("metadata", {}).get("generation", 1)
    return int((workload.get("status") or {}).get("observedGeneration", 0)) >= int(generation)


def _minimum_replicas(spec: Component) -> int:
    """The fewest ready pods the spec promises: the HPA's floor, else the fixed count."""
    return spec.autoscaling.min_replicas if spec.autoscaling.enabled else spec.replicas


def _deployment_verdict(
    component: str, deployment: Mapping[str, Any] | None, spec: Component
) -> Verdict:
    if deployment is None:
        return Verdict(False, "DeploymentMissing", f"Deployment for {component} does not exist yet")
    status = deployment.get("status") or {}
    desired = _desired_replicas(deployment)
    ready = int(status.get("readyReplicas", 0))
    updated = int(status.get("updatedReplicas", 0))
    available = any(
        c.get("type") == "Available" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    counts = f"{ready}/{desired} replicas ready, {updated} updated"
    if not _rolled_out(deployment) or updated < desired:
        return Verdict(
            False, "RolloutInProgress", f"{component} rollout in progress: {counts}", True
        )
    if ready < desired or not available:
        return Verdict(
            False, "DeploymentUnavailable", f"{component} is not available: {counts}", True
        )
    minimum = _minimum_replicas(spec)
    if ready < minimum:
        field = "autoscaling.minReplicas" if spec.autoscaling.enabled else "replicas"
        return Verdict(
            False,
            "BelowMinReplicas",
            f"{component} has {ready} ready replicas, fewer than spec.{component}.{field}"
            f" ({minimum}): waiting for more",
            True,
        )
    return Verdict(True, "DeploymentAvailable", f"{component} is available: {counts}")


def _database_verdict(store: Bookstore, observed: Observed) -> Verdict:
    secret_problems = [p for p in observed.problems if p.reason.startswith("ExternalSecret")]
    external = store.spec.database.external
    if external is not None and store.spec.database.is_external:
        if secret_problems:
            return Verdict(False, secret_problems[0].reason, secret_problems[0].message)
        where = f"Secret {external.secret_name}"
        return Verdict(True, "ExternalDatabaseConfigured", f"Using the database in {where}")
    statefulset = observed.database
    if statefulset is None:
        return Verdict(False, "StatefulSetMissing", "PostgreSQL StatefulSet does not exist yet")
    desired = _desired_replicas(statefulset)
    ready = int((statefulset.get("status") or {}).get("readyReplicas", 0))
    counts = f"{ready}/{desired} PostgreSQL replicas ready"
    if not _rolled_out(statefulset) or ready < desired:
        return Verdict(False, "StatefulSetNotReady", counts, True)
    return Verdict(True, "StatefulSetReady", counts)


def _progressing_verdict(
    store: Bookstore,
    observed: Observed,
    components: Sequence[Verdict],
    *,
    spec_changed: bool,
    ready: bool,
) -> Verdict:
    if store.spec.paused:
        return Verdict(
            False, "Paused", "spec.paused is true: the operator makes no changes to the children"
        )
    if observed.problems:
        return Verdict(False, observed.problems[0].reason, observed.problems[0].message)
    rollout = observed.rollout
    if rollout is not None and rollout.holding:
        return Verdict(True, progress_reason(rollout), migrating_message(rollout))
    if rollout is not None and rollout.stage == "RollingOut" and not ready:
        return Verdict(True, "RollingOut", _rolling_out_message(rollout, observed))
    waiting = [v.message for v in components if v.rolling]
    applied = spec_changed and (observed.changed or not observed.in_sync)
    if applied or waiting:
        detail = "; ".join(waiting) or "applying changes to the children"
        return Verdict(True, "RolloutInProgress", f"Generation {store.generation}: {detail}")
    return Verdict(False, "RolloutComplete", f"Generation {store.generation} is fully rolled out")


def _rolling_out_message(rollout: Rollout, observed: Observed) -> str:
    updated = desired = 0
    for deployment in (observed.catalog, observed.orders):
        if deployment is None:
            continue
        desired += _desired_replicas(deployment)
        if _rolled_out(deployment):
            updated += int((deployment.get("status") or {}).get("updatedReplicas", 0))
    return f"Version {rollout.target}: {updated}/{desired} pods updated"


def _ready_verdict(
    store: Bookstore, observed: Observed, components: Sequence[Verdict], *, spec_changed: bool
) -> Verdict:
    if observed.problems:
        return Verdict(False, observed.problems[0].reason, observed.problems[0].message)
    if store.spec.paused and not observed.in_sync:
        return Verdict(
            False, "Paused", "spec.paused is true: the current spec is not applied to the children"
        )
    if observed.rollout is not None and observed.rollout.holding:
        rollout = observed.rollout
        return Verdict(False, progress_reason(rollout), migrating_message(rollout))
    not_ready = [v.message for v in components if not v.ok]
    if not_ready:
        return Verdict(False, "ComponentsNotReady", "; ".join(not_ready))
    if spec_changed and (observed.changed or not observed.in_sync):
        return Verdict(False, "RolloutInProgress", "Changes were just applied to the children")
    return Verdict(True, "AllComponentsReady", f"Generation {store.generation} serves traffic")


def _phase(observed: Observed, ready: Verdict, progressing: Verdict) -> Phase:
    if any(p.phase == "Failed" for p in observed.problems):
        return "Failed"
    if observed.problems:
        return "Degraded"
    if ready.ok:
        return "Ready"
    if progressing.ok:
        return "Progressing"
    if observed.catalog is None and observed.orders is None:
        return "Pending"
    return "Degraded"


def _replicas(deployment: Mapping[str, Any] | None) -> dict[str, Any]:
    if deployment is None:
        return {"replicas": 0, "readyReplicas": 0, "ready": "0/0"}
    desired = _desired_replicas(deployment)
    ready = int((deployment.get("status") or {}).get("readyReplicas", 0))
    return {"replicas": desired, "readyReplicas": ready, "ready": f"{ready}/{desired}"}
