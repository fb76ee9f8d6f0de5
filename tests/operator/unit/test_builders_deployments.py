"""The catalog and orders Deployments: env wiring, replicas vs autoscaling, rollout, resources."""

from __future__ import annotations

from typing import Any

import pytest
from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.models import Bookstore

from tests.operator.unit.stores import store_for


def deployment(store: Bookstore, component: str) -> dict[str, Any]:
    manifest = build_children(store)[ChildKey("apps/v1", "Deployment", store.child_name(component))]
    assert manifest is not None
    return manifest


def container(store: Bookstore, component: str) -> dict[str, Any]:
    [only] = deployment(store, component)["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def env_of(store: Bookstore, component: str) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(store, component)["env"]}


def secret_ref(env: dict[str, Any]) -> tuple[str, str]:
    ref = env["valueFrom"]["secretKeyRef"]
    return ref["name"], ref["key"]


@pytest.mark.parametrize("component", ["catalog", "orders"])
def test_internal_database_url_has_no_password_and_the_password_comes_from_the_db_secret(
    component: str,
) -> None:
    env = env_of(store_for("defaults"), component)
    assert env["DATABASE_URL"]["value"] == (
        f"postgresql://{component}@downtown-postgres:5432/{component}"
    )
    assert secret_ref(env["DATABASE_PASSWORD"]) == ("downtown-db", f"{component}-password")
    assert "DATABASE_HOST" not in env


@pytest.mark.parametrize("component", ["catalog", "orders"])
def test_external_database_url_is_assembled_from_the_users_secret_after_its_parts(
    component: str,
) -> None:
    names = [e["name"] for e in container(store_for("external-database"), component)["env"]]
    env = env_of(store_for("external-database"), component)
    for var, key in [
        ("DATABASE_HOST", "host"),
        ("DATABASE_PORT", "port"),
        ("DATABASE_USER", "username"),
        ("DATABASE_PASSWORD", "password"),
    ]:
        assert secret_ref(env[var]) == ("shop-postgres", key)
        # Dependent env expansion only sees variables defined earlier in the list.
        assert names.index(var) < names.index("DATABASE_URL")
    assert env["DATABASE_URL"]["value"] == (
        "postgresql://$(DATABASE_USER)@$(DATABASE_HOST):$(DATABASE_PORT)/shop?sslmode=require"
    )


@pytest.mark.parametrize(
    ("spec_name", "secret"),
    [("defaults", "downtown-api-key"), ("user-api-key", "shop-api-key")],
)
@pytest.mark.parametrize("component", ["catalog", "orders"])
def test_api_key_comes_from_the_generated_or_named_secret(
    spec_name: str, secret: str, component: str
) -> None:
    assert secret_ref(env_of(store_for(spec_name), component)["API_KEY"]) == (secret, "api-key")


def test_orders_finds_catalog_by_its_service_and_only_catalog_loads_sample_data() -> None:
    store = store_for("custom-images")
    orders, catalog = env_of(store, "orders"), env_of(store, "catalog")
    assert orders["CATALOG_URL"]["value"] == "http://downtown-catalog:8000"
    assert catalog["SAMPLE_DATA"]["value"] == "true"
    assert env_of(store_for("defaults"), "catalog")["SAMPLE_DATA"]["value"] == "false"
    assert "SAMPLE_DATA" not in orders
    assert "CATALOG_URL" not in catalog


@pytest.mark.parametrize("component", ["catalog", "orders"])
def test_container_runs_its_command_from_the_resolved_image(component: str) -> None:
    store = store_for("custom-images")
    spec = container(store, component)
    assert spec["image"] == "registry.example.com:5000/shop/bookstore:1.2.3-rc.1"
    assert spec["command"] == [f"bookstore-{component}"]
    assert spec["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert spec["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert "startupProbe" in spec
    labels = deployment(store, component)["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/version"] == "1.2.3-rc.1"


@pytest.mark.parametrize("component", ["catalog", "orders"])
def test_pods_never_migrate_at_start_so_a_minute_to_start_is_enough(component: str) -> None:
    spec = container(store_for("defaults"), component)
    assert env_of(store_for("defaults"), component)["MIGRATE_ON_START"] == {
        "name": "MIGRATE_ON_START",
        "value": "false",
    }
    probe = spec["startupProbe"]
    assert probe["httpGet"] == {"path": "/health/live", "port": "http"}
    assert probe["periodSeconds"] * probe["failureThreshold"] == 60


@pytest.mark.parametrize("component", ["catalog", "orders"])
def test_autoscaled_deployment_starts_at_min_replicas_and_its_hpa_targets_it(
    component: str,
) -> None:
    store = store_for("defaults")
    # Only at creation: kube.creation_only keeps replicas out of every later apply.
    assert deployment(store, component)["spec"]["replicas"] == 2
    hpa = build_children(store)[
        ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", store.child_name(component))
    ]
    assert hpa is not None
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": store.child_name(component),
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (
        (2, 5) if component == "catalog" else (2, 10)
    )
    assert [m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]] == [
        70,
        80,
    ]


@pytest.mark.parametrize(("component", "replicas"), [("catalog", 3), ("orders", 0)])
def test_fixed_replicas_without_autoscaling_and_no_hpa(component: str, replicas: int) -> None:
    store = store_for("fixed-replicas")
    assert deployment(store, component)["spec"]["replicas"] == replicas
    key = ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", store.child_name(component))
    assert build_children(store)[key] is None


def test_a_null_utilization_target_drops_its_metric() -> None:
    children = build_children(store_for("cpu-only-autoscaling"))
    hpa = children[ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", "downtown-catalog")]
    assert hpa is not None
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    children = build_children(store_for("no-autoscaling-metrics"))
    hpa = children[ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", "downtown-orders")]
    assert hpa is not None
    assert "metrics" not in hpa["spec"]


@pytest.mark.parametrize("component", ["catalog", "orders"])
def test_rollout_never_drops_below_the_desired_count(component: str) -> None:
    spec = deployment(store_for("defaults"), component)["spec"]
    assert spec["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    pod = spec["template"]["spec"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["terminationGracePeriodSeconds"] > 5  # longer than the preStop pause


@pytest.mark.parametrize(
    ("component", "requests", "limits"),
    [
        # The default memory limit (256Mi) is raised to the request the user gave.
        ("catalog", {"cpu": "100m", "memory": "1Gi"}, {"cpu": "1", "memory": "1Gi"}),
        # A limit alone also sets the request, as the API server does.
        ("orders", {"cpu": "2", "memory": "2Gi"}, {"cpu": "2", "memory": "2Gi"}),
    ],
)
def test_partial_resources_are_completed_without_a_limit_below_its_request(
    component: str, requests: dict[str, str], limits: dict[str, str]
) -> None:
    resources = container(store_for("custom-resources"), component)["resources"]
    assert resources == {"requests": requests, "limits": limits}


def test_default_resources_set_requests_and_limits() -> None:
    assert container(store_for("defaults"), "catalog")["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "1", "memory": "256Mi"},
    }
