"""One idempotent reconcile: check inputs, apply children, observe them, report status.

A flat list of steps (after CloudNativePG's reconciler): every API call goes through
`kube`, every status field comes from `status.compute_status`, and every failure leaves
through `errors.classify` in the handlers.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, cast

import kopf
import pydantic
from kubernetes.client.exceptions import ApiException

from bookstore_operator import builders, kube
from bookstore_operator.errors import ChildWriteError, UserFixableError, classify
from bookstore_operator.models import Bookstore, ExternalDatabaseFacts
from bookstore_operator.settings import OperatorSettings
from bookstore_operator.status import Observed, Problem, compute_status

SECRET_KEYS_HINT = "host, port, username, password (optional: database, sslmode)"  # noqa: S105
# How an API server refuses to grow a PVC: 403 (StorageClass without allowVolumeExpansion,
# or a statically provisioned volume) or 422 (the claim cannot change that way).
RESIZE_REFUSED = frozenset({403, 422})


async def reconcile(
    client: kube.Kube, body: Mapping[str, Any], settings: OperatorSettings, logger: kopf.Logger
) -> None:
    """Make the children match the Bookstore's spec and report how it is doing."""
    store = Bookstore.parse(body, settings)
    problems: list[Problem] = []
    store = await check_inputs(client, store, problems)
    report, rejected = await reconcile_children(client, store, problems)
    await reconcile_storage(client, store, report, problems)
    observed = await observe(client, store, report, problems)
    previous = body.get("status") or {}
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    status = compute_status(store, observed, previous, now)
    announce(body, report, previous, status)
    if await kube.write_status(client, body, status):
        logger.info("Status: phase %s, generation %s.", status["phase"], store.generation)
    if rejected is not None:
        raise rejected
    if any(p.phase == "Failed" for p in problems):
        raise UserFixableError(problems[0].reason, problems[0].message)


async def check_inputs(client: kube.Kube, store: Bookstore, problems: list[Problem]) -> Bookstore:
    """Read the Secrets the spec names; the store gains the external database's facts."""
    facts = await check_external_database(client, store, problems)
    await check_api_key_secret(client, store, problems)
    return store if facts is None else store.model_copy(update={"external_database": facts})


async def reconcile_children(
    client: kube.Kube, store: Bookstore, problems: list[Problem]
) -> tuple[kube.ApplyReport, kopf.PermanentError | None]:
    """Apply the children unless inputs are missing; paused means look, do not touch."""
    if problems:
        return kube.ApplyReport(), None
    try:
        return await apply_all(client, store, write=not store.spec.paused), None
    except ChildWriteError as exc:
        verdict = classify(exc)
        if not isinstance(verdict, kopf.PermanentError):
            raise  # worth retrying as is: kopf does, with the delay classify() picks
        problems.append(
            Problem("ChildRejected", f"The API server rejected {exc.child}: {exc.detail}")
        )
        return kube.ApplyReport(), verdict


async def reconcile_storage(
    client: kube.Kube, store: Bookstore, report: kube.ApplyReport, problems: list[Problem]
) -> None:
    """Grow each existing data PVC to spec.database.storage (claim templates are immutable).

    A refused resize (the StorageClass does not allow expansion: 403/422) is a Degraded
    problem, not an error: everything else is reconciled, and every resync tries again.
    """
    statefulset = report.live.get(workload_keys(store)["database"])
    if statefulset is None or store.spec.database.is_external:
        return
    for ordinal in range(int((statefulset.get("spec") or {}).get("replicas", 1))):
        name = builders.postgres_claim_name(store, ordinal)
        claim = await client.get("v1", "PersistentVolumeClaim", store.namespace, name)
        growth = None if claim is None else builders.build_claim_growth(store, claim)
        if growth is None:
            continue
        what = f"PersistentVolumeClaim/{name}"
        report.drifted.append(what)
        if store.spec.paused:
            continue
        try:
            await client.merge_patch("v1", "PersistentVolumeClaim", store.namespace, name, growth)
        except ApiException as exc:
            refusal = ChildWriteError(what, exc)
            if exc.status not in RESIZE_REFUSED:
                raise refusal from exc
            advice = resize_advice(store, claim or {}, refusal)
            problems.append(Problem("StorageResizeRefused", advice, "Degraded"))
            continue
        report.updated.append(what)


def resize_advice(store: Bookstore, claim: Mapping[str, Any], refusal: ChildWriteError) -> str:
    """What the user can do when the API server will not grow the data volume."""
    storage_class = (claim.get("spec") or {}).get("storageClassName") or "(the cluster default)"
    return (
        f"Growing {refusal.child} to {store.spec.database.storage} (spec.database.storage)"
        f" was refused: {refusal.detail}. Allow volume expansion on StorageClass"
        f" {storage_class} (allowVolumeExpansion: true) or grow the volume by hand; the"
        " operator retries on every resync"
    )


async def observe(
    client: kube.Kube, store: Bookstore, report: kube.ApplyReport, problems: list[Problem]
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
    )


async def apply_all(client: kube.Kube, store: Bookstore, *, write: bool) -> kube.ApplyReport:
    """Generated Secrets first (create-only), then every other child in creation order."""
    secrets = {
        builders.ChildKey("v1", "Secret", manifest["metadata"]["name"]): manifest
        for manifest in (
            builders.build_database_secret(store),
            builders.build_api_key_secret(store),
        )
        if manifest is not None
    }
    report = await kube.apply_children(client, store, secrets, write=write)
    rest = await kube.apply_children(client, store, builders.build_children(store), write=write)
    for field in ("created", "updated", "deleted", "foreign", "drifted"):
        getattr(report, field).extend(getattr(rest, field))
    report.live.update(rest.live)
    return report


def workload_keys(store: Bookstore) -> dict[str, builders.ChildKey]:
    """The children whose real state the status reports."""
    return {
        "catalog": builders.ChildKey("apps/v1", "Deployment", store.child_name("catalog")),
        "orders": builders.ChildKey("apps/v1", "Deployment", store.child_name("orders")),
        "database": builders.ChildKey("apps/v1", "StatefulSet", store.child_name("postgres")),
    }


async def check_external_database(
    client: kube.Kube, store: Bookstore, problems: list[Problem]
) -> ExternalDatabaseFacts | None:
    """Read the external database Secret; record what the user must fix when it is unusable."""
    external = store.spec.database.external
    if external is None or not store.spec.database.is_external:
        return None
    where = f"Secret {store.namespace}/{external.secret_name} (spec.database.external.secretName)"
    values = await client.read_secret(store.namespace, external.secret_name)
    if values is None:
        problems.append(
            Problem(
                "ExternalSecretMissing",
                f"{where} does not exist: create it with keys {SECRET_KEYS_HINT}",
            )
        )
        return None
    missing = [key for key in builders.EXTERNAL_SECRET_KEYS if not values.get(key)]
    if missing:
        problems.append(
            Problem(
                "ExternalSecretInvalid",
                f"{where} lacks key(s) {', '.join(missing)}: add them (keys: {SECRET_KEYS_HINT})",
            )
        )
        return None
    facts = {key: values[key] for key in ExternalDatabaseFacts.model_fields if values.get(key)}
    try:
        return ExternalDatabaseFacts.model_validate(facts)
    except pydantic.ValidationError as exc:
        fields = ", ".join(str(error["loc"][0]) for error in exc.errors())
        problems.append(
            Problem("ExternalSecretInvalid", f"{where} has an invalid value for: {fields}")
        )
        return None


async def check_api_key_secret(
    client: kube.Kube, store: Bookstore, problems: list[Problem]
) -> None:
    """A user-named API key Secret must exist and hold the key the services read."""
    name = store.spec.auth.api_key_secret_name
    if not name:
        return
    where = f"Secret {store.namespace}/{name} (spec.auth.apiKeySecretName)"
    values = await client.read_secret(store.namespace, name)
    if values is None:
        problems.append(
            Problem(
                "ApiKeySecretMissing",
                f"{where} does not exist: create it with key {builders.API_KEY_SECRET_KEY}",
            )
        )
    elif not values.get(builders.API_KEY_SECRET_KEY):
        problems.append(
            Problem(
                "ApiKeySecretInvalid", f"{where} lacks key {builders.API_KEY_SECRET_KEY}: add it"
            )
        )


def announce(
    body: Mapping[str, Any],
    report: kube.ApplyReport,
    previous: Mapping[str, Any],
    status: Mapping[str, Any],
) -> None:
    """Kubernetes events for what changed: Normal for actions, Warning for new problems."""
    target = kopf.Body(cast(kopf.RawBody, dict(body)))
    for verb, names in (
        ("Created", report.created),
        ("Updated", report.updated),
        ("Deleted", report.deleted),
    ):
        for name in names:
            kopf.info(target, reason=verb, message=f"{verb} {name}")
    before = {c.get("type"): c for c in previous.get("conditions") or []}
    after = {c["type"]: c for c in status["conditions"]}
    ready_before, ready_after = before.get("Ready", {}), after["Ready"]
    progressing_after = after["Progressing"]
    if (
        status["phase"] in ("Failed", "Degraded")
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
