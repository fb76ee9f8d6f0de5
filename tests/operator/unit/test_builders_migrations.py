"""The migration Jobs: named after the version, the new image, the service's env, bounded."""

from __future__ import annotations

import re

import pytest
from bookstore_operator.builders import (
    SERVICES,
    build_children,
    build_migration_job,
    migration_job_name,
)
from bookstore_operator.builders.deployments import service_env
from bookstore_operator.models import Bookstore

from tests.operator.unit.stores import bookstore_body, parse_store, store_for

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def at(version: str, image: str = "", name: str = "downtown") -> Bookstore:
    spec = {"version": version, **({"image": image} if image else {})}
    return parse_store(bookstore_body(spec, name))


@pytest.mark.parametrize("service", SERVICES)
def test_job_runs_migrate_with_the_new_image_and_the_services_env(service: str) -> None:
    store = store_for("custom-images")
    job = build_migration_job(store, service)
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == store.image
    assert container["command"] == [f"bookstore-{service}", "migrate"]
    assert container["env"] == service_env(store, service)
    assert job["metadata"]["ownerReferences"] == [store.owner_reference]


def test_job_is_bounded_never_restarts_and_fails_at_once_on_a_refused_downgrade() -> None:
    spec = build_migration_job(store_for("defaults"), "catalog")["spec"]
    assert spec["backoffLimit"] == 2
    assert spec["activeDeadlineSeconds"] == 600
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["podFailurePolicy"]["rules"] == [
        {
            "action": "FailJob",
            "onExitCodes": {"containerName": "migrate", "operator": "In", "values": [3]},
        }
    ]


def test_job_pods_are_not_selected_by_the_service_or_the_deployment() -> None:
    store = store_for("defaults")
    labels = build_migration_job(store, "catalog")["spec"]["template"]["metadata"]["labels"]
    children = build_children(store)
    selector = next(
        m["spec"]["selector"]
        for key, m in children.items()
        if m is not None and key.kind == "Service" and key.name == "downtown-catalog"
    )
    assert not selector.items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "migration"
    assert labels["app.kubernetes.io/managed-by"] == "bookstore-operator"


@pytest.mark.parametrize(
    ("version", "image", "name"),
    [
        ("0.1.0", "", "downtown"),
        ("1.2.3-rc.1", "registry.example.com:5000/shop/bookstore", "downtown"),
        ("A_" + "9" * 126, "", "a" * 40),
        ("___", "", "x"),
    ],
)
def test_job_name_is_a_dns_label_of_at_most_63_characters(
    version: str, image: str, name: str
) -> None:
    for service in SERVICES:
        job_name = migration_job_name(at(version, image, name), service)
        assert len(job_name) <= 63
        assert DNS_LABEL.match(job_name), job_name
        assert job_name.startswith(f"{name}-{service}-")


def test_each_version_and_image_gets_its_own_job_and_the_same_one_again() -> None:
    names = {
        migration_job_name(at(version, image), "catalog")
        for version, image in (("0.1.0", ""), ("0.2.0", ""), ("0.2.0", "registry.example.com/b"))
    }
    assert len(names) == 3
    assert migration_job_name(at("0.1.0"), "catalog") == migration_job_name(
        at("0.1.0"),
        "catalog",
    )
    long_a, long_b = ("9" * 100 + "a", "9" * 100 + "b")
    assert migration_job_name(at(long_a), "orders") != migration_job_name(at(long_b), "orders")


def test_held_workloads_leave_the_deployments_and_autoscalers_out_and_nothing_else() -> None:
    store = store_for("defaults")
    full, held = build_children(store), build_children(store, hold_workloads=True)
    left_out = set(full) - set(held)
    assert {key.kind for key in left_out} == {"Deployment", "HorizontalPodAutoscaler"}
    assert all(held[key] == full[key] for key in held)


def test_rolled_back_deployments_run_the_serving_version_with_the_spec_deadline() -> None:
    store = parse_store(
        bookstore_body({"version": "0.2.0", "upgrade": {"progressDeadlineSeconds": 120}})
    )
    children = build_children(store, workloads=store.at_version("0.1.0"))
    deployment = next(
        m for key, m in children.items() if m is not None and key.kind == "Deployment"
    )
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == store.image.replace(":0.2.0", ":0.1.0")
    assert deployment["spec"]["progressDeadlineSeconds"] == 120
    assert (
        build_children(store_for("defaults"))[
            next(key for key in children if key.kind == "Deployment")
        ]["spec"]["progressDeadlineSeconds"]
        == 600
    )
