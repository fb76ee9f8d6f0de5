"""Every example applies and becomes Ready; every request the operator makes is in role.yaml."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from bookstore_operator.schedules import requested_backup_name

from tests.operator.runtime import rbac
from tests.operator.runtime.backups import (
    BACKUPS,
    backup,
    create_backup,
    finish_pod,
    wait_job,
    wait_phase,
)
from tests.operator.runtime.conftest import (
    NAMESPACE,
    Operator,
    api,
    create_bookstore,
    create_secret,
    eventually,
    finish_job,
    mark_workloads_ready,
    migration_jobs,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator

CHILD_PLURALS = (
    "v1/configmaps",
    "v1/services",
    "apps/v1/deployments",
    "apps/v1/statefulsets",
    "autoscaling/v2/horizontalpodautoscalers",
    "policy/v1/poddisruptionbudgets",
    "networking.k8s.io/v1/networkpolicies",
    "networking.k8s.io/v1/ingresses",
)
DATABASE = {"host": "pg.example", "port": "5432", "username": "shop", "password": "s3cret"}
EXAMPLES = {
    path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for path in sorted((pathlib.Path(__file__).parents[3] / "examples").glob("*.yaml"))
}
BACKUP_PLURAL = "bookstore.dev/v1alpha1/bookstorebackups"


def path_of(plural: str, name: str) -> str:
    """The REST path of a namespaced object, from `group/version/plural`."""
    group_version = plural.rsplit("/", 1)[0]
    prefix = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
    return f"{prefix}/namespaces/{NAMESPACE}/{plural.rsplit('/', 1)[1]}/{name}"


def data_claim_storage(emulator: Emulator) -> str | None:
    """The storage the database's PVC requests (None when there is no such PVC)."""
    claim = emulator.live("v1/persistentvolumeclaims", NAMESPACE, "data-downtown-postgres-0")
    return None if claim is None else str(claim["spec"]["resources"]["requests"]["storage"])


@pytest.mark.parametrize("example", sorted(EXAMPLES))
async def test_example_applies_and_becomes_ready(
    emulator: Emulator, operator: Operator, example: str
) -> None:
    documents = EXAMPLES[example]
    stores = [doc for doc in documents if doc["kind"] == "Bookstore"]
    assert stores, f"{example} holds no Bookstore"
    for doc in documents:
        if doc["kind"] == "Secret":
            await api(emulator, "POST", f"/api/v1/namespaces/{NAMESPACE}/secrets", doc)
    for store in stores:
        await create_bookstore(emulator, store["metadata"]["name"], store.get("spec"))
    for store in stores:
        name, spec = store["metadata"]["name"], store.get("spec") or {}
        external = bool(spec.get("database", {}).get("external", {}).get("secretName"))
        await mark_workloads_ready(emulator, name, database=not external)
        await wait_ready(emulator, name)
        ingress = emulator.live("networking.k8s.io/v1/ingresses", NAMESPACE, name)
        assert (ingress is not None) == bool(spec.get("ingress", {}).get("enabled"))


def test_examples_exist() -> None:
    assert set(EXAMPLES) >= {
        "bookstore.yaml",
        "production.yaml",
        "external-database.yaml",
    }


async def test_cluster_role_allows_every_request_and_nothing_unused(
    emulator: Emulator, operator: Operator
) -> None:
    """Drive every kind of write (create, drift repair, growth, delete when unwanted), compare."""
    spec = {
        "backup": {"retention": 1},
        "ingress": {"enabled": True, "host": "shop.example"},
        "networkPolicy": {"allowFrom": [{"podSelector": {"matchLabels": {"role": "web"}}}]},
    }
    await create_bookstore(emulator, "downtown", spec)
    await mark_workloads_ready(emulator, "downtown")
    await wait_ready(emulator, "downtown")

    # Backups: each backup-now value creates one; retention (1) deletes the older one.
    store_path = path_of("bookstore.dev/v1alpha1/bookstores", "downtown")
    requested = []
    for value in ("1", "2"):
        annotation = {"metadata": {"annotations": {"bookstore.dev/backup-now": value}}}
        await api(emulator, "PATCH", store_path, annotation, merge=True)
        name = requested_backup_name("downtown", value)
        requested.append(name)
        await eventually(
            lambda name=name: emulator.live(BACKUP_PLURAL, NAMESPACE, name), what=f"backup {name}"
        )
        done = {"status": {"phase": "Completed", "completedAt": f"2026-01-0{value}T00:00:00Z"}}
        await api(emulator, "PATCH", f"{path_of(BACKUP_PLURAL, name)}/status", done, merge=True)
    await eventually(
        lambda: (
            not emulator.live(BACKUP_PLURAL, NAMESPACE, requested[0])
            or emulator.live(BACKUP_PLURAL, NAMESPACE, requested[0])["metadata"].get(
                "deletionTimestamp"
            )
        ),
        what="the older backup deleted by retention",
    )

    children = [
        (plural, obj["metadata"]["name"])
        for plural in CHILD_PLURALS
        for obj in emulator.live_items(plural)
    ]
    for plural, name in children:
        edit = {"metadata": {"labels": {"app.kubernetes.io/part-of": "hand-edited"}}}
        await api(emulator, "PATCH", path_of(plural, name), edit, merge=True)
    await eventually(
        lambda: all(
            (emulator.live(plural, NAMESPACE, name) or {})["metadata"]["labels"][
                "app.kubernetes.io/part-of"
            ]
            == "bookstore"
            for plural, name in children
        ),
        what="every hand-edited child restored",
    )

    store_path = path_of("bookstore.dev/v1alpha1/bookstores", "downtown")
    grow = {"spec": {"database": {"storage": "10Gi"}}}
    await api(emulator, "PATCH", store_path, grow, merge=True)
    await eventually(lambda: data_claim_storage(emulator) == "10Gi", what="the data PVC grown")

    # A failed migration: the operator reads the Job's pod and the tail of its log.
    await api(emulator, "PATCH", store_path, {"spec": {"version": "0.2.0"}}, merge=True)
    job = await eventually(
        lambda: [
            j for j in migration_jobs(emulator, "downtown") if "-0-2-0-" in j["metadata"]["name"]
        ],
        what="a migration Job of 0.2.0",
    )
    await finish_job(emulator, job[0], exit_code=1, message="boom", log="Traceback: boom")
    await eventually(
        lambda: any(
            c["reason"] == "MigrationFailed"
            for c in (
                emulator.live("bookstore.dev/v1alpha1/bookstores", NAMESPACE, "downtown") or {}
            )
            .get("status", {})
            .get("conditions", [])
        ),
        what="MigrationFailed",
    )

    # A backup: its volume created, its Job started, its status and label written; deleted
    # while it runs: its Job stopped, then a cleanup Job removes its files.
    await create_backup(emulator, "nightly-1", "downtown")
    await wait_phase(emulator, "nightly-1", "Running")
    await api(emulator, "DELETE", f"{BACKUPS}/nightly-1")
    # Generous: each event of a backup also reconciles its Bookstore first (handlers.py).
    await finish_pod(emulator, await wait_job(emulator, "nightly-1-cleanup", within=90))
    await eventually(
        lambda: backup(emulator, "nightly-1") is None, within=90, what="the backup gone"
    )

    await create_secret(emulator, "shop-pg", DATABASE)
    unwanted = {
        "version": "",
        "ingress": {"enabled": False},
        "networkPolicy": {"allowFrom": []},
        "catalog": {"autoscaling": {"enabled": False}},
        "database": {"external": {"secretName": "shop-pg"}},
    }
    await api(emulator, "PATCH", store_path, {"spec": unwanted}, merge=True)
    await eventually(
        lambda: (
            emulator.live("apps/v1/statefulsets", NAMESPACE, "downtown-postgres") is None
            and emulator.live("networking.k8s.io/v1/ingresses", NAMESPACE, "downtown") is None
        ),
        what="unwanted children deleted",
    )
    await api(emulator, "DELETE", store_path)
    await eventually(
        lambda: emulator.live("bookstore.dev/v1alpha1/bookstores", NAMESPACE, "downtown") is None,
        what="the Bookstore gone",
    )

    assert rbac.denied(emulator.requests_made) == []
    unused = rbac.granted() - rbac.used(emulator.requests_made)
    # Peering is off in these standalone runs, and this emulator serves no Prometheus Operator
    # CRDs (test_monitoring proves each monitoring.coreos.com rule is used); everything else in
    # the role was needed.
    others = {"kopf.dev", "monitoring.coreos.com"}
    assert {permission for permission in unused if permission[0] not in others} == set()


def test_cluster_role_grants_nothing_beyond_what_the_operator_uses() -> None:
    granted = rbac.granted()
    assert not any(verb in {"*", "update", "deletecollection"} for _, _, verb in granted)
    assert ("", "secrets", "list") not in granted
    assert ("", "secrets", "watch") not in granted
    assert ("", "secrets", "patch") not in granted


async def test_peering_operator_announces_itself_and_stays_within_the_role(
    emulator: Emulator,
) -> None:
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": "bookstore-operator"},
    }
    await api(emulator, "POST", "/apis/kopf.dev/v1/clusterkopfpeerings", peering)
    runtime = Operator(emulator)
    await runtime.start(peering="bookstore-operator")
    try:
        await eventually(
            lambda: (
                emulator.live("kopf.dev/v1/clusterkopfpeerings", None, "bookstore-operator") or {}
            ).get("status"),
            what="the operator's keep-alive in the ClusterKopfPeering",
        )
        await create_bookstore(emulator, "downtown")
        await mark_workloads_ready(emulator, "downtown")
        await wait_ready(emulator, "downtown")
    finally:
        await runtime.stop()
    assert rbac.denied(emulator.requests_made) == []
    assert {("kopf.dev", "clusterkopfpeerings", verb) for verb in ("list", "watch", "patch")} <= (
        rbac.used(emulator.requests_made)
    )
