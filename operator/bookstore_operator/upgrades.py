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
from typing import Any

from bookstore_operator import builders, jobs, kube, restores
from bookstore_operator.models import Bookstore
from bookstore_operator.rollout import Migration, Rollout, Stage

# The Deployment controller's reason when new pods missed progressDeadlineSeconds.
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
        to_create = (restore_job,) if restore_job is not None else ()
        return Plan(rollout("Restoring", restore=restore), store, to_create)
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
    return [
        f"Job/{manifest['metadata']['name']}"
        for manifest in plan.missing_jobs
        if await jobs.create_job(client, manifest)
    ]


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
    """A migration Job's outcome, with the report `migrate` wrote as its termination message."""
    name = job["metadata"]["name"]
    container = builders.MIGRATION_CONTAINER
    outcome = await jobs.observe_job(client, store.namespace, job, container, _report_words)
    if not outcome.finished:
        return Migration(service, name, "Running")
    report = _report(outcome.message)
    return Migration(
        service,
        name,
        outcome.state,
        exit_code=outcome.exit_code,
        outcome=str(report.get("outcome") or ""),
        revision=_text(report.get("revision")),
        head=_text(report.get("head")),
        detail=outcome.detail,
    )


def _report_words(message: str) -> str:
    """What a failed migration says: its report's message, else the termination message."""
    report = _report(message)
    return str(report.get("message") or "") if report else message


def _report(message: str) -> dict[str, Any]:
    """The JSON object `migrate` writes to its termination log, or {} when it wrote none."""
    try:
        report = json.loads(message)
    except ValueError:
        return {}
    return report if isinstance(report, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
