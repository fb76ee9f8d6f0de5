"""A change of version: a new Bookstore's restore first (spec.database.restoreFrom), the
migration Jobs next, the Deployments after, a stuck rollout undone.

Long work is a state read from the API, never a coroutine that waits: each reconcile reads
where the change stands (the Deployments' image and conditions, the Jobs named after the
version, their pods' termination messages) and returns; a Job's or a Deployment's next event
wakes the next reconcile. An operator restarted in the middle finds the same Jobs by name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Literal

from kubernetes.client.exceptions import ApiException

from bookstore_operator import builders, kube, restores
from bookstore_operator.errors import ChildWriteError
from bookstore_operator.models import Bookstore
from bookstore_operator.rollout import Migration, Rollout, Stage

# The bounded tail of a failed migration pod's log that reaches status and events.
LOG_TAIL_LINES = 20
LOG_LIMIT_BYTES = 4096
DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"


@dataclasses.dataclass(frozen=True)
class Plan:
    """Where the version change stands and what this reconcile does about it."""

    rollout: Rollout
    workloads: Bookstore  # the Bookstore at the version the Deployments are to run
    missing_jobs: tuple[dict[str, Any], ...] = ()  # restore or migration Jobs to create

    @property
    def hold_workloads(self) -> bool:
        """Nothing writes the Deployments or their autoscalers while migrations are pending."""
        return self.rollout.holding


async def observe_rollout(client: kube.Kube, store: Bookstore, previous: Mapping[str, Any]) -> Plan:
    """Read where a change of version stands; writes nothing.

    The version serving is status.version. A different spec version first runs one migration
    Job per service (once the database is ready), then rolls the Deployments; new pods that
    miss the Deployment controller's deadline are a stuck rollout, rolled back to the serving
    version when spec.upgrade.autoRollback is true, until spec.version changes again.
    A Bookstore made from a backup (spec.database.restoreFrom) first runs its restore Job
    (stage Restoring), once the database is ready; nothing migrates or starts before it
    succeeded.
    """
    serving = str(previous.get("version") or "")
    target = store.version
    upgrade = store.spec.upgrade

    def rollout(stage: Stage, **fields: Any) -> Rollout:
        deadline = upgrade.progress_deadline_seconds
        return Rollout(serving, target, stage, deadline_seconds=deadline, **fields)

    if serving and previous.get("rolledBackFrom") == target:
        return Plan(rollout("RolledBack", rolled_back_from=target), store.at_version(serving))
    if target == serving:
        return Plan(rollout("Serving"), store)
    deployments = {
        service: await client.get(
            "apps/v1", "Deployment", store.namespace, store.child_name(service)
        )
        for service in builders.SERVICES
    }
    if all(_runs(deployment, store.image) for deployment in deployments.values()):
        # Deployments only get the new image after every migration succeeded.
        stuck = tuple(name for name, found in deployments.items() if _deadline_exceeded(found))
        if not stuck:
            return Plan(rollout("RollingOut"), store)
        if serving and upgrade.auto_rollback:
            back = rollout("RolledBack", rolled_back_from=target, stuck=stuck)
            return Plan(back, store.at_version(serving))
        return Plan(rollout("RolloutStuck", stuck=stuck), store)
    restore, restore_job = await restores.observe_restore(client, store, previous)
    database_ready = await _database_ready(client, store)
    if restore is not None and not restore.done:
        if restore_job is not None and not database_ready:
            waiting = dataclasses.replace(restore, state="WaitingForDatabase")
            return Plan(rollout("Restoring", restore=waiting), store)
        jobs = (restore_job,) if restore_job is not None else ()
        return Plan(rollout("Restoring", restore=restore), store, jobs)
    if not database_ready:
        return Plan(rollout("WaitingForDatabase", restore=restore), store)
    migrations: list[Migration] = []
    missing: list[dict[str, Any]] = []
    for service in builders.SERVICES:
        manifest = builders.build_migration_job(store, service)
        name = manifest["metadata"]["name"]
        job = await client.get("batch/v1", "Job", store.namespace, name)
        if job is None:
            missing.append(manifest)
            migrations.append(Migration(service, name, "Running"))
        else:
            migrations.append(await _migration(client, store, service, job))
    stage = _stage(migrations)
    observed = rollout(stage, migrations=tuple(migrations), restore=restore)
    return Plan(observed, store, tuple(missing))


async def start_migrations(client: kube.Kube, plan: Plan) -> list[str]:
    """Create the restore or migration Jobs the plan found missing; returns what was created.

    Jobs are created once and never applied again (their spec is immutable): a Job that
    appeared meanwhile (409) is the one wanted, as its name derives from the version.
    """
    created = []
    for manifest in plan.missing_jobs:
        what = f"Job/{manifest['metadata']['name']}"
        try:
            await client.create(manifest)
        except ApiException as exc:
            if exc.status == 409:
                continue
            raise ChildWriteError(what, exc) from exc
        created.append(what)
    return created


def _stage(migrations: list[Migration]) -> Stage:
    failed = [m for m in migrations if m.state == "Failed"]
    if any(m.refused for m in failed):
        return "DowngradeRefused"
    if failed:
        return "MigrationFailed"
    if all(m.state == "Succeeded" for m in migrations):
        return "RollingOut"
    return "Migrating"


def _runs(deployment: Mapping[str, Any] | None, image: str) -> bool:
    """The Deployment exists and its pod template runs `image`."""
    if deployment is None:
        return False
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    return any(container.get("image") == image for container in containers)


def _deadline_exceeded(deployment: Mapping[str, Any] | None) -> bool:
    """The Deployment controller gave up waiting for the current template's pods."""
    if deployment is None:
        return False
    status = deployment.get("status") or {}
    current = int(status.get("observedGeneration", 0)) >= int(
        deployment["metadata"].get("generation", 1)
    )
    return current and any(
        c.get("type") == "Progressing"
        and c.get("status") == "False"
        and c.get("reason") == DEADLINE_EXCEEDED
        for c in status.get("conditions") or []
    )


async def _database_ready(client: kube.Kube, store: Bookstore) -> bool:
    """Migrations need the database: an external one is taken as there; ours must be ready."""
    if store.spec.database.is_external:
        return True
    statefulset = await client.get(
        "apps/v1", "StatefulSet", store.namespace, store.child_name("postgres")
    )
    return int(((statefulset or {}).get("status") or {}).get("readyReplicas", 0)) >= 1


async def _migration(
    client: kube.Kube, store: Bookstore, service: str, job: Mapping[str, Any]
) -> Migration:
    """A Job's outcome: its conditions, then its last pod's exit code and message."""
    name = job["metadata"]["name"]
    conditions = {
        c.get("type"): c
        for c in (job.get("status") or {}).get("conditions") or []
        if c.get("status") == "True"
    }
    state: Literal["Running", "Succeeded", "Failed"]
    if "Complete" in conditions:
        state = "Succeeded"
    elif "Failed" in conditions:
        state = "Failed"
    else:
        return Migration(service, name, "Running")
    pod = await _last_pod(client, store.namespace, name)
    terminated = _terminated(pod)
    message = str(terminated.get("message") or "").strip()
    report = _report(message)
    detail = str(report.get("message") or "") if report else message
    if state == "Failed" and pod is not None:
        tail = await _log_tail(client, store.namespace, pod["metadata"]["name"])
        if tail and tail not in detail:
            detail = f"{detail}; last log lines: {tail}" if detail else f"last log lines: {tail}"
    if state == "Failed" and not detail:
        failed = conditions["Failed"]
        detail = f"{failed.get('reason', 'Failed')}: {failed.get('message', '')}".strip(": ")
    exit_code = terminated.get("exitCode")
    return Migration(
        service,
        name,
        state,
        exit_code=int(exit_code) if exit_code is not None else None,
        outcome=str(report.get("outcome") or ""),
        revision=_text(report.get("revision")),
        head=_text(report.get("head")),
        detail=detail,
    )


async def _last_pod(client: kube.Kube, namespace: str, job: str) -> dict[str, Any] | None:
    """The Job's most recent pod (the Job controller labels its pods with the Job's name)."""
    path = kube.resource_path("v1", "Pod", namespace)
    found = await client.request(
        "GET", path, query={"labelSelector": f"{builders.JOB_NAME_LABEL}={job}"}
    )
    pods: list[dict[str, Any]] = list((found or {}).get("items") or [])
    pods.sort(key=lambda pod: str(pod["metadata"].get("creationTimestamp", "")))
    return pods[-1] if pods else None


def _terminated(pod: Mapping[str, Any] | None) -> dict[str, Any]:
    """The migrate container's terminated state (or last terminated state), else {}."""
    for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != builders.MIGRATION_CONTAINER:
            continue
        for key in ("state", "lastState"):
            terminated = (status.get(key) or {}).get("terminated")
            if terminated:
                return dict(terminated)
    return {}


def _report(message: str) -> dict[str, Any]:
    """The JSON object `migrate` writes to its termination log, or {} when it wrote none."""
    try:
        report = json.loads(message)
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


async def _log_tail(client: kube.Kube, namespace: str, pod: str) -> str:
    """The last lines of the migrate container's log, bounded; "" when it cannot be read."""
    path = kube.resource_path("v1", "Pod", namespace, pod, "log")
    query = {
        "container": builders.MIGRATION_CONTAINER,
        "tailLines": str(LOG_TAIL_LINES),
        "limitBytes": str(LOG_LIMIT_BYTES),
    }
    try:
        log = await client.request("GET", path, query=query)
    except ApiException:
        return ""  # the pod or its log is gone: the termination message still says why
    return " | ".join(line for line in str(log or "").splitlines() if line.strip())


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
