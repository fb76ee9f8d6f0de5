"""The in-cluster PostgreSQL: StatefulSet, headless Service, bootstrap ConfigMap, volume growth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bookstore_operator.builders.common import (
    CATALOG_PASSWORD_KEY,
    DEFAULT_DATABASE_RESOURCES,
    ORDERS_PASSWORD_KEY,
    POSTGRES_PASSWORD_KEY,
    POSTGRES_PORT,
    POSTGRES_UID,
    Manifest,
    container_security_context,
    labels,
    metadata,
    pod_security_context,
    resources,
    selector_labels,
    version_label,
)
from bookstore_operator.builders.quantity import canonical_quantity, parse_quantity
from bookstore_operator.models import Bookstore

DATA_DIR = "/var/lib/postgresql/data"
# The claim template's name: the StatefulSet controller names pod i's claim `data-<sts>-<i>`.
DATA_VOLUME = "data"
INIT_SCRIPT = "10-bookstore-databases.sh"

# Runs once, from /docker-entrypoint-initdb.d, on an empty data directory; written to be
# harmless when run again. Passwords come from the environment, never from this ConfigMap,
# and reach SQL only as psql variables quoted with %L.
BOOTSTRAP_SCRIPT = """\
#!/bin/sh
# Creates one login role and one database, owned by it, per Bookstore service.
set -eu
for service in catalog orders; do
  case "$service" in
    catalog) password="$CATALOG_PASSWORD" ;;
    orders) password="$ORDERS_PASSWORD" ;;
  esac
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" --dbname postgres \\
    --set=role="$service" --set=password="$password" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')\\gexec
SELECT format('ALTER ROLE %I WITH LOGIN PASSWORD %L', :'role', :'password')\\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'role', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'role')\\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'role')\\gexec
SQL
done
"""


def build_postgres_init_config_map(store: Bookstore) -> Manifest | None:
    """`<name>-postgres-init`: the bootstrap script; None with an external database."""
    if store.spec.database.is_external:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(store, store.child_name("postgres-init"), "database"),
        "data": {INIT_SCRIPT: BOOTSTRAP_SCRIPT},
    }


def build_postgres_service(store: Bookstore) -> Manifest | None:
    """`<name>-postgres`: the headless Service that gives the StatefulSet's pod its DNS name."""
    if store.spec.database.is_external:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(store, store.child_name("postgres"), "database"),
        "spec": {
            "clusterIP": "None",
            "selector": selector_labels(store, "database"),
            "ports": [
                {
                    "name": "postgres",
                    "port": POSTGRES_PORT,
                    "targetPort": "postgres",
                    "protocol": "TCP",
                    "appProtocol": "postgresql",
                }
            ],
        },
    }


def _pg_isready(period: int, failures: int) -> Manifest:
    return {
        "exec": {"command": ["pg_isready", "-U", "postgres", "-h", "127.0.0.1"]},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _postgres_container(store: Bookstore) -> Manifest:
    secret = store.child_name("db")
    env = [
        {"name": "POSTGRES_PASSWORD", "key": POSTGRES_PASSWORD_KEY},
        {"name": "CATALOG_PASSWORD", "key": CATALOG_PASSWORD_KEY},
        {"name": "ORDERS_PASSWORD", "key": ORDERS_PASSWORD_KEY},
    ]
    return {
        "name": "postgres",
        "image": store.spec.database.image,
        "imagePullPolicy": store.image_pull_policy,
        "ports": [{"name": "postgres", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
        "env": [
            *(
                {
                    "name": e["name"],
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": e["key"]}},
                }
                for e in env
            ),
            # A subdirectory: the volume's root may hold lost+found, which initdb refuses.
            {"name": "PGDATA", "value": f"{DATA_DIR}/pgdata"},
        ],
        # First start runs initdb and the bootstrap script: up to 10 minutes.
        "startupProbe": _pg_isready(period=5, failures=120),
        "readinessProbe": _pg_isready(period=5, failures=3),
        "livenessProbe": _pg_isready(period=10, failures=6),
        "resources": resources(store.spec.database.resources, DEFAULT_DATABASE_RESOURCES),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": DATA_VOLUME, "mountPath": DATA_DIR},
            {"name": "run", "mountPath": "/var/run/postgresql"},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir
            {"name": "init", "mountPath": "/docker-entrypoint-initdb.d", "readOnly": True},
        ],
    }


def _volume_claim(store: Bookstore) -> Manifest:
    spec: Manifest = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": canonical_quantity(store.spec.database.storage)}},
    }
    if store.spec.database.storage_class_name:
        spec["storageClassName"] = store.spec.database.storage_class_name
    return {"metadata": {"name": DATA_VOLUME, "labels": labels(store, "database")}, "spec": spec}


def postgres_claim_name(store: Bookstore, ordinal: int) -> str:
    """`data-<name>-postgres-<i>`: the PVC the StatefulSet controller made for pod i."""
    return f"{DATA_VOLUME}-{store.child_name('postgres')}-{ordinal}"


def build_claim_growth(store: Bookstore, claim: Mapping[str, Any]) -> Manifest | None:
    """The merge patch growing a live data PVC to spec.database.storage; None if it has as much.

    Claim templates are immutable once the StatefulSet exists, so a larger spec is applied to
    each existing PVC instead. Quantities compare by value ("10240Mi" is "10Gi"), and a PVC
    that requests more than the spec is left alone: a volume never shrinks.
    """
    requests = (claim.get("spec") or {}).get("resources", {}).get("requests") or {}
    wanted = canonical_quantity(store.spec.database.storage)
    if "storage" in requests and parse_quantity(requests["storage"]) >= parse_quantity(wanted):
        return None
    return {"spec": {"resources": {"requests": {"storage": wanted}}}}


def build_postgres_stateful_set(store: Bookstore) -> Manifest | None:
    """`<name>-postgres`: one PostgreSQL pod whose volume outlives it per deletionPolicy."""
    if store.spec.database.is_external:
        return None
    name = store.child_name("postgres")
    version = version_label(store.spec.database.image)
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(store, name, "database", version),
        "spec": {
            "replicas": 1,
            "serviceName": name,
            "selector": {"matchLabels": selector_labels(store, "database")},
            "podManagementPolicy": "OrderedReady",
            "updateStrategy": {"type": "RollingUpdate"},
            "revisionHistoryLimit": 5,
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": store.spec.database.deletion_policy,
                "whenScaled": "Retain",
            },
            "template": {
                "metadata": {"labels": {**labels(store, "database"), **version}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": pod_security_context(POSTGRES_UID),
                    # A clean shutdown (checkpoint) beats a fast one.
                    "terminationGracePeriodSeconds": 60,
                    "containers": [_postgres_container(store)],
                    "volumes": [
                        {"name": "run", "emptyDir": {}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                        {
                            "name": "init",
                            # Executable, so the entrypoint runs it rather than sourcing it.
                            "configMap": {
                                "name": store.child_name("postgres-init"),
                                "defaultMode": 0o555,
                            },
                        },
                    ],
                },
            },
            "volumeClaimTemplates": [_volume_claim(store)],
        },
    }
