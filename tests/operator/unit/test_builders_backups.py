"""Backup and restore Jobs and the backups volume: valid, "restricted", least privilege, named
within 63 characters, owned by the right object (and the volume by none)."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from bookstore_catalog.config import SCHEMA as CATALOG_SCHEMA
from bookstore_operator.builders import build_children, build_database_secret
from bookstore_operator.builders.backups import (
    BACKUP_KIND,
    BACKUP_ROOT,
    BACKUP_SCRIPT,
    CLEANUP_DEADLINE_SECONDS,
    CLEANUP_SCRIPT,
    RESTORE_CONTAINER,
    RESTORE_REFUSED_EXIT_CODE,
    RESTORE_SCRIPT,
    VERSION_TABLES,
    backup_databases,
    build_backup_claim,
    build_backup_job,
    build_cleanup_job,
    build_restore_job,
)
from bookstore_operator.builders.common import selector_labels
from bookstore_operator.models import Bookstore
from bookstore_operator.settings import OperatorSettings
from bookstore_orders.config import SCHEMA as ORDERS_SCHEMA

from tests.contract.kubelet import Sources, resolve_env
from tests.operator.unit.stores import (
    all_bookstore_bodies,
    bookstore_body,
    parse_store,
    store_for,
)
from tests.operator.unit.test_manifests_valid import VERSIONS
from tests.pod_security import restricted_violations

BODIES = all_bookstore_bodies()
BACKUP = "downtown-nightly-1"
BACKUP_UID = "7d4e1f5a-0b6c-4c1e-9a57-2f3c8e1d9b00"
# The backup script writes its manifest as compact JSON (no spaces).
COMPACT = (",", ":")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def jobs(store: Bookstore, backup: str = BACKUP) -> list[dict[str, Any]]:
    return [
        build_backup_job(store, backup, BACKUP_UID),
        build_restore_job(store, backup, source_store_name="uptown"),
    ]


def all_jobs(store: Bookstore, backup: str = BACKUP) -> list[dict[str, Any]]:
    """The backup and restore Jobs, and the Job removing a deleted backup's files."""
    return [*jobs(store, backup), build_cleanup_job(store, backup, BACKUP_UID)]


def manifests(store: Bookstore) -> list[dict[str, Any]]:
    return [*all_jobs(store), build_backup_claim(store, "10Gi", "standard")]


def container(job: dict[str, Any]) -> dict[str, Any]:
    [found] = job["spec"]["template"]["spec"]["containers"]
    return dict(found)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("body_name", BODIES)
def test_backup_manifests_validate_strictly(body_name: str, version: str) -> None:
    for manifest in manifests(parse_store(BODIES[body_name])):
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize("body_name", BODIES)
def test_backup_and_restore_pods_meet_pod_security_restricted(body_name: str) -> None:
    for job in all_jobs(parse_store(BODIES[body_name])):
        pod = job["spec"]["template"]["spec"]
        assert restricted_violations(pod) == []
        assert pod["restartPolicy"] == "Never"
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 999
        [main] = pod["containers"]
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert {m["mountPath"] for m in main["volumeMounts"]} == {"/tmp", BACKUP_ROOT}
        assert set(main["resources"]) == {"requests", "limits"}
        assert job["spec"]["backoffLimit"] >= 1
        assert job["spec"]["activeDeadlineSeconds"] > 0


@pytest.mark.parametrize("spec_name", ["defaults", "custom-images", "external-database"])
def test_jobs_run_one_constant_script_with_the_database_image(spec_name: str) -> None:
    store = store_for(spec_name)
    backup, restore = jobs(store)
    assert container(backup)["command"] == ["sh", "-c", BACKUP_SCRIPT]
    assert container(restore)["command"] == ["sh", "-c", RESTORE_SCRIPT]
    for job in (backup, restore):
        assert "args" not in container(job)
        assert container(job)["image"] == store.spec.database.image
    if not store.spec.database.is_external:
        postgres = build_children(store)
        [stateful_set] = [m for m in postgres.values() if m and m["kind"] == "StatefulSet"]
        assert container(backup)["image"] == container(stateful_set)["image"]


def _secret_refs(job: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (ref["name"], ref["key"])
        for variable in container(job)["env"]
        if (ref := variable.get("valueFrom", {}).get("secretKeyRef"))
    }


def test_in_cluster_jobs_log_in_as_each_service_never_as_the_superuser() -> None:
    store = store_for("defaults")
    for job in jobs(store):
        assert _secret_refs(job) == {
            ("downtown-db", "catalog-password"),
            ("downtown-db", "orders-password"),
        }
        env = {v["name"]: v.get("value") for v in container(job)["env"]}
        assert env["CATALOG_DATABASE_URL"] == "postgresql://catalog@downtown-postgres:5432/catalog"
        assert env["ORDERS_DATABASE_URL"] == "postgresql://orders@downtown-postgres:5432/orders"
        assert env["DATABASES"] == "orders catalog"
    assert backup_databases(store) == ("orders", "catalog")


def test_external_jobs_connect_like_the_services_from_the_users_secret() -> None:
    store = store_for("external-database")
    sources = Sources(
        secrets={
            "shop-postgres": {
                "host": "db.example.com",
                "port": "6432",
                "username": "shop",
                "password": "s3cret",
            }
        }
    )
    for job in jobs(store):
        keys = {("shop-postgres", key) for key in ("host", "port", "username", "password")}
        assert _secret_refs(job) == keys
        env = resolve_env(container(job), sources)  # the kubelet's $(VAR) expansion
        assert env["DATABASES"] == "shared"
        assert (
            env["SHARED_DATABASE_URL"]
            == "postgresql://shop@db.example.com:6432/shop?sslmode=require"
        )
        assert env["SHARED_DATABASE_PASSWORD"] == "s3cret"


@pytest.mark.parametrize("spec_name", ["defaults", "external-database"])
def test_no_credential_is_written_into_a_job(spec_name: str) -> None:
    store = store_for(spec_name)
    secret = build_database_secret(store)
    for job in jobs(store):
        for variable in container(job)["env"]:
            if "PASSWORD" in variable["name"]:
                assert set(variable) == {"name", "valueFrom"}
            value = variable.get("value", "")
            if "://" in value:  # a URL names its user, never a password
                assert ":" not in value.split("://", 1)[1].partition("@")[0]
        if secret is not None:
            rendered = str(job)
            assert not any(value in rendered for value in secret["data"].values())


def test_backup_job_is_owned_by_its_bookstore_backup_and_restore_job_by_its_bookstore() -> None:
    store = store_for("defaults")
    backup, restore = jobs(store)
    assert backup["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "bookstore.dev/v1alpha1",
            "kind": BACKUP_KIND,
            "name": BACKUP,
            "uid": BACKUP_UID,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert restore["metadata"]["ownerReferences"] == [store.owner_reference]
    env = {v["name"]: v.get("value") for v in container(backup)["env"]}
    assert (env["BACKUP_NAME"], env["BACKUP_UID"]) == (BACKUP, BACKUP_UID)


def test_backup_writes_to_its_store_volume_and_restore_reads_the_source_volume() -> None:
    backup, restore = jobs(store_for("defaults"))
    claims = [
        job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"]
        for job in (backup, restore)
    ]
    assert claims == ["downtown-backups", "uptown-backups"]
    read_only = [container(job)["volumeMounts"][0]["readOnly"] for job in (backup, restore)]
    assert read_only == [False, True]


def test_job_pods_are_labelled_as_the_instance_but_never_selected_as_the_database() -> None:
    store = store_for("defaults")
    database = selector_labels(store, "database")
    for job in jobs(store):
        pod_labels = job["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/instance"] == "downtown"
        assert pod_labels["app.kubernetes.io/component"] == "backup"
        assert not database.items() <= pod_labels.items()


@pytest.mark.parametrize(
    ("store_name", "backup"),
    [
        ("downtown", BACKUP),
        ("a" * 50, "b" * 63),
        ("downtown", "nightly." + "x" * 240),
        ("downtown", "n" * 55 + "-." + "z" * 20),
    ],
)
def test_job_names_are_dns_labels_of_at_most_63_characters(store_name: str, backup: str) -> None:
    store = parse_store(bookstore_body({}, name=store_name))
    for job in all_jobs(store, backup):
        name = job["metadata"]["name"]
        assert len(name) <= 63
        assert DNS_LABEL.match(name.replace(".", "-")), name
        assert name[-1].isalnum()
    other = jobs(store, backup + "0")
    assert [j["metadata"]["name"] for j in other] != [
        j["metadata"]["name"] for j in jobs(store, backup)
    ]


def test_short_job_names_say_what_they_are() -> None:
    backup, restore = jobs(store_for("defaults"))
    assert backup["metadata"]["name"] == f"{BACKUP}-dump"
    assert restore["metadata"]["name"] == f"downtown-restore-{BACKUP}"


def test_a_refused_restore_fails_the_job_at_once() -> None:
    restore = jobs(store_for("defaults"))[1]
    [rule] = restore["spec"]["podFailurePolicy"]["rules"]
    assert rule == {
        "action": "FailJob",
        "onExitCodes": {
            "containerName": RESTORE_CONTAINER,
            "operator": "In",
            "values": [RESTORE_REFUSED_EXIT_CODE],
        },
    }
    assert f"exit {RESTORE_REFUSED_EXIT_CODE}; }}" in RESTORE_SCRIPT


def test_scripts_read_the_services_own_version_tables() -> None:
    assert {
        "catalog": CATALOG_SCHEMA.version_table,
        "orders": ORDERS_SCHEMA.version_table,
    } == VERSION_TABLES
    for script in (BACKUP_SCRIPT, RESTORE_SCRIPT):
        for service, table in VERSION_TABLES.items():
            assert f"{service}:{table}" in script


@pytest.mark.parametrize(("size", "canonical"), [("10Gi", "10Gi"), ("10240Mi", "10Gi")])
def test_backup_claim_outlives_the_bookstore_and_takes_size_and_class(
    size: str, canonical: str
) -> None:
    store = store_for("defaults")
    claim = build_backup_claim(store, size, "fast-ssd")
    assert claim["metadata"]["name"] == "downtown-backups"
    assert "ownerReferences" not in claim["metadata"]
    assert claim["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "bookstore-operator"
    assert claim["metadata"]["labels"]["app.kubernetes.io/component"] == "backup"
    assert claim["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": canonical}},
        "storageClassName": "fast-ssd",
    }
    assert "storageClassName" not in build_backup_claim(store, size)["spec"]


@pytest.mark.parametrize("spec_name", ["defaults", "external-database"])
def test_cleanup_job_needs_no_database_and_no_secret(spec_name: str) -> None:
    store = store_for(spec_name)
    cleanup = build_cleanup_job(store, BACKUP, BACKUP_UID)
    assert cleanup["metadata"]["name"] == f"{BACKUP}-cleanup"
    assert container(cleanup)["command"] == ["sh", "-c", CLEANUP_SCRIPT]
    assert container(cleanup)["env"] == [
        {"name": "BACKUP_ROOT", "value": BACKUP_ROOT},
        {"name": "BACKUP_NAME", "value": BACKUP},
        {"name": "BACKUP_UID", "value": BACKUP_UID},
    ]
    assert not container(cleanup).get("envFrom")
    [owner] = cleanup["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (BACKUP_KIND, BACKUP, BACKUP_UID)
    assert cleanup["spec"]["activeDeadlineSeconds"] == CLEANUP_DEADLINE_SECONDS
    volumes = cleanup["spec"]["template"]["spec"]["volumes"]
    assert {"name": "backups", "persistentVolumeClaim": {"claimName": "downtown-backups"}} in (
        volumes
    )
    mount = next(m for m in container(cleanup)["volumeMounts"] if m["mountPath"] == BACKUP_ROOT)
    assert mount["readOnly"] is False


def test_cleanup_job_is_built_for_a_bookstore_that_is_gone() -> None:
    """Backups outlive their Bookstore: the cleanup Job is built from the name alone."""
    gone = Bookstore.parse(
        {"metadata": {"name": "downtown", "namespace": "shop", "uid": ""}}, OperatorSettings()
    )
    cleanup = build_cleanup_job(gone, BACKUP, BACKUP_UID)
    assert container(cleanup)["image"] == "postgres:16"
    assert restricted_violations(cleanup["spec"]["template"]["spec"]) == []
    kubernetes_validate.validate(cleanup, VERSIONS[-1], strict=True)


def run_cleanup(root: Path, name: str, uid: str = BACKUP_UID) -> subprocess.CompletedProcess[str]:
    env = {
        "BACKUP_ROOT": str(root),
        "BACKUP_NAME": name,
        "BACKUP_UID": uid,
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(
        ["/bin/sh", "-c", CLEANUP_SCRIPT], env=env, capture_output=True, text=True, check=False
    )


def test_cleanup_script_removes_its_backup_and_only_its_backup(tmp_path: Path) -> None:
    mine, partial, other, neighbour = (tmp_path / n for n in ("mine", "partial", "other", "n"))
    for directory in (mine, partial, other, neighbour):
        directory.mkdir()
    (mine / "manifest.json").write_text(
        json.dumps({"backup": "mine", "uid": BACKUP_UID}, separators=COMPACT)
    )
    (mine / "orders.dump").write_text("dump")
    (partial / ".orders.dump.partial").write_text("half")
    (other / "manifest.json").write_text(
        json.dumps({"backup": "other", "uid": "another-uid"}, separators=COMPACT)
    )
    (neighbour / "manifest.json").write_text("{}")

    for name in ("mine", "partial", "other", "absent"):
        assert run_cleanup(tmp_path, name).returncode == 0
    assert not mine.exists()
    assert not partial.exists()  # a failed or interrupted attempt leaves no manifest
    assert (other / "manifest.json").exists()  # a later backup of the same name
    assert neighbour.exists()
    for name in ("", "..", "../n", "-x", "a/b"):
        refused = run_cleanup(tmp_path, name)
        assert refused.returncode == 1
        assert "is not a Kubernetes object name" in refused.stderr
    assert neighbour.exists()
