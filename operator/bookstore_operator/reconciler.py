"""One idempotent reconcile: check inputs, apply children, observe them, report status.

A flat list of steps (after CloudNativePG's reconciler): every API call goes through
`kube`, every status field comes from `status.compute_status`, and every failure leaves
through `errors.classify` in the handlers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes.client.exceptions import ApiException

from bookstore_operator import backup_health, builders, kube, upgrades
from bookstore_operator.backup_policy import BackupReport, reconcile_backups
from bookstore_operator.errors import ChildWriteError, UserFixableError, classify
from bookstore_operator.inputs import check_database_secret, check_inputs
from bookstore_operator.models import Bookstore
from bookstore_operator.monitoring import announce_monitoring, reconcile_monitoring
from bookstore_operator.schedules import format_time
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.status import (
    Observed,
    Problem,
    compute_status,
    current_storage,
    rollout_problems,
)

# How an API server refuses to grow a PVC: 403 (StorageClass without allowVolumeExpansion,
# or a statically provisioned volume) or 422 (the claim cannot change that way).
RESIZE_REFUSED = frozenset({403, 422})
# A child write that conflicts (409) is retried at once, this many times in all, this far apart.
CONFLICT_ATTEMPTS = 3
CONFLICT_PAUSE_SECONDS = 0.2
Desired = dict[builders.ChildKey, dict[str, Any] | None]


async def reconcile(
    client: kube.Kube,
    body: Mapping[str, Any],
    settings: OperatorSettings,
    logger: kopf.Logger,
    now: datetime.datetime | None = None,
) -> None:
    """Make the children match the Bookstore's spec and report how it is doing.

    `now` is the operator's clock (handlers pass it; tests drive it): backup schedules and
    status times follow it.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    store = Bookstore.parse(body, settings)
    problems: list[Problem] = []
    store = await check_inputs(client, store, problems)
    new_passwords = await check_database_secret(client, store, problems)
    previous = body.get("status") or {}
    plan = await upgrades.observe_rollout(client, store, previous)
    inputs_ok = not problems
    report, refusals = await reconcile_children(client, store, problems, new_passwords, plan)
    await reconcile_migrations(client, store, plan, report, problems, refusals, inputs_ok)
    claims = await reconcile_storage(client, store, report, problems, refusals)
    backups = await reconcile_backup_policy(client, store, body, now, problems, refusals)
    monitoring = await reconcile_monitoring(client, store)
    observed = await observe(client, store, report, problems, claims, plan)
    observed = dataclasses.replace(
        observed, backups=backups.observed, monitoring=monitoring.verdict
    )
    status = compute_status(store, observed, previous, format_time(now))
    announce(body, report, previous, status)
    announce_backups(body, backups, previous, status)
    announce_monitoring(body, monitoring, previous, status)
    if await kube.write_status(client, body, status):
        logger.info("Status: phase %s, generation %s.", status["phase"], store.generation)
    if refusals:
        raise refusals[0]  # after the status says so; classify() picks how kopf retries
    if any(p.phase == "Failed" for p in problems):
        raise UserFixableError(problems[0].reason, problems[0].message)


async def reconcile_children(
    client: kube.Kube,
    store: Bookstore,
    problems: list[Problem],
    new_passwords: bool,
    plan: upgrades.Plan,
) -> tuple[kube.ApplyReport, list[ChildWriteError]]:
    """Apply the children unless inputs are missing; paused means look, do not touch.

    A child the API server refuses becomes a problem (so the status says so in this very
    reconcile) and the others are still applied, except after a refused Secret: the
    workloads need it. The refusals are returned for the caller to raise after the status.
    The Deployments run the version the upgrade plan says, and are left alone while a
    migration is pending or failed.
    """
    report = kube.ApplyReport()
    refusals: list[ChildWriteError] = []
    if problems:
        return report, refusals
    children = builders.build_children(
        store, workloads=plan.workloads, hold_workloads=plan.hold_workloads
    )
    for desired in (generated_secrets(store, new_passwords), children):
        for unit in apply_units(desired):
            try:
                merge_report(report, await apply_unit(client, store, unit))
            except ChildWriteError as refusal:
                refusals.append(refusal)
        if refusals:
            break
    problems += [refusal_problem(refusal) for refusal in refusals]
    return report, refusals


async def reconcile_migrations(
    client: kube.Kube,
    store: Bookstore,
    plan: upgrades.Plan,
    report: kube.ApplyReport,
    problems: list[Problem],
    refusals: list[ChildWriteError],
    inputs_ok: bool,
) -> None:
    """Create the restore or migration Jobs the plan needs (after the Secrets and the database
    they use), unless paused, an input is missing or a Secret was refused; report what the
    restore or upgrade needs the user to fix."""
    secret_refused = any(refusal.child.startswith("Secret/") for refusal in refusals)
    if inputs_ok and not secret_refused and not store.spec.paused:
        try:
            report.created.extend(await upgrades.start_migrations(client, plan))
        except ChildWriteError as refusal:
            refusals.append(refusal)
            problems.append(refusal_problem(refusal))
    problems += rollout_problems(plan.rollout)


async def reconcile_backup_policy(
    client: kube.Kube,
    store: Bookstore,
    body: Mapping[str, Any],
    now: datetime.datetime,
    problems: list[Problem],
    refusals: list[ChildWriteError],
) -> BackupReport:
    """Scheduled and requested backups, and retention; a refused write is a problem."""
    backups = await reconcile_backups(client, store, body, now)
    refusals.extend(backups.refusals)
    problems += [refusal_problem(refusal) for refusal in backups.refusals]
    return backups


def apply_units(desired: Desired) -> list[Desired]:
    """The children in creation order, one at a time, except a Deployment goes with its HPA.

    A refused child then stops only itself. kube.apply_children learns which Deployments an
    HPA scales (it leaves their replicas to the HPA) from the HPAs in the same call.
    """
    deployments = {key.name for key in desired if key.kind == "Deployment"}
    scalers = {
        manifest["spec"]["scaleTargetRef"]["name"]: (key, manifest)
        for key, manifest in desired.items()
        if manifest is not None
        and key.kind == "HorizontalPodAutoscaler"
        and manifest["spec"]["scaleTargetRef"]["name"] in deployments
    }
    paired = {key for key, _ in scalers.values()}
    units: list[Desired] = []
    for key, manifest in desired.items():
        if key in paired:
            continue  # applied with its Deployment
        unit: Desired = {key: manifest}
        if key.kind == "Deployment" and key.name in scalers:
            scaler_key, scaler = scalers[key.name]
            unit[scaler_key] = scaler
        units.append(unit)
    return units


async def apply_unit(client: kube.Kube, store: Bookstore, unit: Desired) -> kube.ApplyReport:
    """Apply some children; a conflict (409) is read again and retried at once, a few times."""
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return await kube.apply_children(client, store, unit, write=not store.spec.paused)
        except ChildWriteError as refusal:
            if refusal.status != 409 or attempt == CONFLICT_ATTEMPTS:
                raise
            await asyncio.sleep(CONFLICT_PAUSE_SECONDS * attempt)
    raise AssertionError("unreachable: the last attempt returns or raises")


def refusal_problem(refusal: ChildWriteError) -> Problem:
    """A refused child write as status reports it: Failed when retrying cannot help."""
    permanent = isinstance(classify(refusal), kopf.PermanentError)
    return Problem(
        refusal.refusal,
        f"The API server refused {refusal.child} ({refusal.advice}): {refusal.detail}",
        "Failed" if permanent else "Degraded",
    )


def merge_report(report: kube.ApplyReport, part: kube.ApplyReport) -> None:
    """Add what one apply pass found and did to the reconcile's report."""
    for field in ("created", "updated", "deleted", "foreign", "drifted", "rebuilt"):
        getattr(report, field).extend(getattr(part, field))
    report.live.update(part.live)


async def reconcile_storage(
    client: kube.Kube,
    store: Bookstore,
    report: kube.ApplyReport,
    problems: list[Problem],
    refusals: list[ChildWriteError],
) -> list[dict[str, Any]]:
    """Grow each existing data PVC to spec.database.storage (claim templates are immutable).

    A refused resize (the StorageClass does not allow expansion: 403/422) is a Degraded
    problem, not an error: every resync tries again. Returns the data PVCs that exist.
    """
    if store.spec.database.is_external:
        return []
    statefulset = report.live.get(workload_keys(store)["database"])
    claims = []
    for ordinal in range(int(((statefulset or {}).get("spec") or {}).get("replicas", 1))):
        name = builders.postgres_claim_name(store, ordinal)
        claim = await client.get("v1", "PersistentVolumeClaim", store.namespace, name)
        if claim is None:
            continue
        claims.append(claim)
        growth = None if statefulset is None else builders.build_claim_growth(store, claim)
        if growth is None:
            continue
        what = f"PersistentVolumeClaim/{name}"
        report.drifted.append(what)
        if store.spec.paused:
            continue
        try:
            claims[-1] = await client.merge_patch(
                "v1", "PersistentVolumeClaim", store.namespace, name, growth
            )
        except ApiException as exc:
            refusal = ChildWriteError(what, exc)
            if exc.status in RESIZE_REFUSED:
                advice = resize_advice(store, claim, refusal)
                problems.append(Problem("StorageResizeRefused", advice, "Degraded"))
            else:
                problems.append(refusal_problem(refusal))
                refusals.append(refusal)
            continue
        report.updated.append(what)
    return claims


def resize_advice(store: Bookstore, claim: Mapping[str, Any], refusal: ChildWriteError) -> str:
    """What the user can do when the API server will not grow the data volume."""
    storage_class = (claim.get("spec") or {}).get("storageClassName") or "(the cluster default)"
    current = current_storage([claim]) or "the volume's size"
    return (
        f"Growing {refusal.child} to {store.spec.database.storage} (spec.database.storage)"
        f" was refused: {refusal.detail}. Either set spec.database.storage back to {current}"
        f" (the volume's current size, status.database.storage), or allow volume expansion on"
        f" StorageClass {storage_class} (allowVolumeExpansion: true) or grow the volume by"
        " hand; the operator retries on every resync"
    )


async def observe(
    client: kube.Kube,
    store: Bookstore,
    report: kube.ApplyReport,
    problems: list[Problem],
    claims: list[dict[str, Any]],
    plan: upgrades.Plan,
) -> Observed:
    """The workloads' real state (read now if the apply pass did not) and every problem."""
    keys = workload_keys(store)
    for key in keys.values():
        if key not in report.live:
            report.live[key] = await client.get(
                key.api_version, key.kind, store.namespace, key.name
            )
    problems += [
        Problem(
            "ChildNotOwned",
            f"{name} exists but is not owned by this Bookstore; the operator leaves it alone:"
            " delete or rename it",
            "Degraded",
        )
        for name in report.foreign
    ]
    return Observed(
        catalog=report.live.get(keys["catalog"]),
        orders=report.live.get(keys["orders"]),
        database=None if store.spec.database.is_external else report.live.get(keys["database"]),
        problems=tuple(problems),
        in_sync=not report.drifted,
        changed=report.changed,
        claims=tuple(claims),
        rollout=plan.rollout,
    )


def generated_secrets(store: Bookstore, new_passwords: bool) -> Desired:
    """The create-only Secrets, applied before the children that read them.

    `<name>-db` only when check_database_secret found it missing with no volume to protect:
    even if it vanishes after that check, this reconcile makes no new passwords.
    """
    database = builders.build_database_secret(store) if new_passwords else None
    return {
        builders.ChildKey("v1", "Secret", manifest["metadata"]["name"]): manifest
        for manifest in (database, builders.build_api_key_secret(store))
        if manifest is not None
    }


def workload_keys(store: Bookstore) -> dict[str, builders.ChildKey]:
    """The children whose real state the status reports."""
    return {
        "catalog": builders.ChildKey("apps/v1", "Deployment", store.child_name("catalog")),
        "orders": builders.ChildKey("apps/v1", "Deployment", store.child_name("orders")),
        "database": builders.ChildKey("apps/v1", "StatefulSet", store.child_name("postgres")),
    }


def announce(
    body: Mapping[str, Any],
    report: kube.ApplyReport,
    previous: Mapping[str, Any],
    status: Mapping[str, Any],
) -> None:
    """Kubernetes events for what changed: Normal for actions, Warning for new problems.

    Writes made at a generation whose spec was already applied repaired drift: each is one
    `Repaired` event, and Ready does not flap (status.compute_status).
    """
    target = kopf.Body(cast(kopf.RawBody, dict(body)))
    # A version change writes at a generation already reported too: not a repair.
    upgrading = bool(previous.get("targetVersion") or status.get("targetVersion"))
    repaired = (
        previous.get("observedGeneration") == status["observedGeneration"]
        and previous.get("phase") in ("Ready", "Progressing")
        and not upgrading
    )
    for verb, names in (
        ("Created", report.created),
        ("Updated", report.updated),
        ("Deleted", report.deleted),
    ):
        for name in names:
            if repaired and name in report.rebuilt:
                message = f"Updated {name}: this operator builds it differently (same spec)"
                kopf.info(target, reason="Updated", message=message)
            elif repaired:
                message = f"Repaired {name}: {verb.lower()} it, as it differed from the spec"
                kopf.info(target, reason="Repaired", message=message)
            else:
                kopf.info(target, reason=verb, message=f"{verb} {name}")
    restored = (status.get("database") or {}).get("restoredFrom") or {}
    if restored and not (previous.get("database") or {}).get("restoredFrom"):
        source = f" (of Bookstore {restored['bookstore']})" if restored.get("bookstore") else ""
        message = f"Restored the databases from BookstoreBackup {restored['backup']}{source}"
        kopf.info(target, reason="Restored", message=message)
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    after = {c["type"]: c for c in status["conditions"]}
    ready_before, ready_after = before.get("Ready", {}), after["Ready"]
    progressing_after = after["Progressing"]
    if (
        status["phase"] in ("Failed", "Degraded")
        and ready_after["status"] != "True"
        and ready_before.get("reason") != ready_after["reason"]
    ):
        kopf.warn(target, reason=ready_after["reason"], message=ready_after["message"])
    elif ready_after["status"] == "True" and ready_before.get("status") != "True":
        kopf.info(target, reason="RolloutComplete", message=ready_after["message"])
    if (
        progressing_after["reason"] == "Paused"
        and before.get("Progressing", {}).get("reason") != "Paused"
    ):
        kopf.info(target, reason="Paused", message=progressing_after["message"])


def announce_backups(
    body: Mapping[str, Any],
    backups: BackupReport,
    previous: Mapping[str, Any],
    status: Mapping[str, Any],
) -> None:
    """Events for backups: Normal when one is created or deleted by retention, a Warning for
    each backup newly seen failed, and one when backups become failing or the schedule invalid.
    """
    target = kopf.Body(cast(kopf.RawBody, dict(body)))
    for name in backups.created:
        kopf.info(target, reason="BackupCreated", message=f"Created BookstoreBackup/{name}")
    for name in backups.deleted:
        message = f"Deleted BookstoreBackup/{name}: older than spec.backup.retention keeps"
        kopf.info(target, reason="BackupDeleted", message=message)
    for record in backup_health.new_failures(
        backups.observed.records, previous.get("backup") or {}
    ):
        message = f"BookstoreBackup {record.name} failed: {record.message or 'no message'}"
        kopf.warn(target, reason="BackupFailed", message=message)
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    after = {c["type"]: c for c in status["conditions"]}
    health_before = before.get(backup_health.CONDITION, {})
    health_after = after.get(backup_health.CONDITION)
    if (
        health_after is not None
        and health_after["reason"] in ("BackupsFailing", "InvalidBackupSchedule")
        and health_before.get("reason") != health_after["reason"]
    ):
        kopf.warn(target, reason=health_after["reason"], message=health_after["message"])
