"""PostgreSQL children: present only in-cluster, retention per deletionPolicy, safe bootstrap."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest
from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.builders.database import (
    BOOTSTRAP_SCRIPT,
    INIT_SCRIPT,
    build_claim_growth,
    postgres_claim_name,
)
from bookstore_operator.models import ExternalDatabaseFacts

from tests.operator.unit.stores import EXTERNAL, FACTS, bookstore_body, parse_store, store_for

POSTGRES_KEYS = [
    ChildKey("apps/v1", "StatefulSet", "downtown-postgres"),
    ChildKey("v1", "Service", "downtown-postgres"),
    ChildKey("v1", "ConfigMap", "downtown-postgres-init"),
]


def stateful_set(spec_name: str) -> dict[str, Any]:
    manifest = build_children(store_for(spec_name))[POSTGRES_KEYS[0]]
    assert manifest is not None
    return manifest


@pytest.mark.parametrize("key", POSTGRES_KEYS)
def test_postgres_children_exist_in_cluster_and_not_with_an_external_database(
    key: ChildKey,
) -> None:
    assert build_children(store_for("defaults"))[key] is not None
    assert build_children(store_for("external-database"))[key] is None


def test_external_database_without_facts_yet_still_builds_with_defaults() -> None:
    store = parse_store(bookstore_body(EXTERNAL), facts=None)
    children = build_children(store)
    deployment = children[ChildKey("apps/v1", "Deployment", "downtown-catalog")]
    assert deployment is not None
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    url = next(e["value"] for e in container["env"] if e["name"] == "DATABASE_URL")
    assert url.endswith("/postgres?sslmode=prefer")
    assert FACTS.port == "6432"


@pytest.mark.parametrize(
    ("spec_name", "when_deleted"), [("defaults", "Retain"), ("delete-policy", "Delete")]
)
def test_deletion_policy_becomes_the_volume_retention_policy(
    spec_name: str, when_deleted: str
) -> None:
    assert stateful_set(spec_name)["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": when_deleted,
        "whenScaled": "Retain",
    }


def test_volume_claim_takes_size_and_class_from_the_spec() -> None:
    [claim] = stateful_set("delete-policy")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "20Gi"}}
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    [claim] = stateful_set("defaults")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"] == {"requests": {"storage": "5Gi"}}
    assert "storageClassName" not in claim["spec"]


def test_postgres_runs_as_the_image_user_with_passwords_from_the_db_secret() -> None:
    spec = stateful_set("defaults")["spec"]
    assert spec["replicas"] == 1
    assert spec["serviceName"] == "downtown-postgres"
    pod = spec["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]) == (999, 999)
    [container] = pod["containers"]
    assert container["image"] == "postgres:16"
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {
        "POSTGRES_PASSWORD": {"name": "downtown-db", "key": "postgres-password"},
        "CATALOG_PASSWORD": {"name": "downtown-db", "key": "catalog-password"},
        "ORDERS_PASSWORD": {"name": "downtown-db", "key": "orders-password"},
    }
    pgdata = next(e["value"] for e in container["env"] if e["name"] == "PGDATA")
    data_mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "data")
    assert pgdata.startswith(data_mount + "/")
    assert container["readinessProbe"]["exec"]["command"] == [
        "pg_isready",
        "-U",
        "postgres",
        "-h",
        "127.0.0.1",
    ]
    assert (
        container["livenessProbe"]["failureThreshold"] * container["livenessProbe"]["periodSeconds"]
        > container["readinessProbe"]["failureThreshold"]
        * container["readinessProbe"]["periodSeconds"]
    )
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/var/run/postgresql", "/tmp", "/docker-entrypoint-initdb.d"} <= mounts


def test_headless_service_exposes_postgres_port() -> None:
    service = build_children(store_for("defaults"))[POSTGRES_KEYS[1]]
    assert service is not None
    assert service["spec"]["clusterIP"] == "None"
    assert [p["port"] for p in service["spec"]["ports"]] == [5432]


def test_bootstrap_config_map_never_holds_a_password() -> None:
    config_map = build_children(store_for("defaults"))[POSTGRES_KEYS[2]]
    assert config_map is not None
    assert config_map["data"] == {INIT_SCRIPT: BOOTSTRAP_SCRIPT}
    assert '"$CATALOG_PASSWORD"' in BOOTSTRAP_SCRIPT
    assert '"$ORDERS_PASSWORD"' in BOOTSTRAP_SCRIPT
    assert "WHERE NOT EXISTS" in BOOTSTRAP_SCRIPT  # safe to run twice


@pytest.mark.parametrize(
    "facts",
    [
        {"port": "0"},
        {"port": "70000"},
        {"port": "pg"},
        {"sslmode": "sometimes"},
        {"database": "shop?sslmode=disable"},
        {"database": ""},
    ],
)
def test_external_database_facts_that_would_break_the_url_or_policy_are_rejected(
    facts: dict[str, str],
) -> None:
    with pytest.raises(pydantic.ValidationError):
        ExternalDatabaseFacts.model_validate(facts)


def test_external_database_facts_default_to_postgres_prefer_5432() -> None:
    assert ExternalDatabaseFacts.model_validate({}) == ExternalDatabaseFacts(
        database="postgres", sslmode="prefer", port="5432"
    )


def test_claim_name_is_the_one_the_stateful_set_controller_gives_pod_zero() -> None:
    store = store_for("defaults")
    spec = stateful_set("defaults")["spec"]
    [template] = spec["volumeClaimTemplates"]
    expected = f"{template['metadata']['name']}-{spec['serviceName']}-0"
    assert postgres_claim_name(store, 0) == expected == "data-downtown-postgres-0"


def claim_requesting(storage: str) -> dict[str, Any]:
    return {"spec": {"resources": {"requests": {"storage": storage}}}}


@pytest.mark.parametrize(
    ("wanted", "requested", "grown_to"),
    [
        ("10Gi", "5Gi", "10Gi"),
        ("1.5Gi", "1Gi", "1536Mi"),  # sent in the API server's canonical spelling
        ("10G", "9Gi", "10G"),  # 10e9 bytes is more than 9 * 2**30
        ("5Gi", "5Gi", None),
        ("5120Mi", "5Gi", None),  # same size, other spelling
        ("5Gi", "10Gi", None),  # a volume never shrinks
        ("9Gi", "10G", None),
    ],
)
def test_claim_grows_only_when_the_spec_asks_for_more_than_it_requests(
    wanted: str, requested: str, grown_to: str | None
) -> None:
    store = parse_store(bookstore_body({"database": {"storage": wanted}}))
    growth = build_claim_growth(store, claim_requesting(requested))
    expected = None if grown_to is None else claim_requesting(grown_to)
    assert growth == expected
