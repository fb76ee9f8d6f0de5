"""Every child of a Bookstore, keyed by identity, in the order the reconciler applies them."""

from __future__ import annotations

from typing import Any, NamedTuple

from bookstore_operator.builders.common import SERVICES, Service
from bookstore_operator.builders.database import (
    build_postgres_init_config_map,
    build_postgres_service,
    build_postgres_stateful_set,
)
from bookstore_operator.builders.deployments import build_deployment
from bookstore_operator.builders.ingress import build_ingress
from bookstore_operator.builders.network_policies import build_network_policies
from bookstore_operator.builders.scaling import (
    build_horizontal_pod_autoscaler,
    build_pod_disruption_budget,
)
from bookstore_operator.builders.services import build_service
from bookstore_operator.models import Bookstore


class ChildKey(NamedTuple):
    """The identity of a child within the Bookstore's namespace."""

    api_version: str
    kind: str
    name: str


def build_children(
    store: Bookstore, *, workloads: Bookstore | None = None, hold_workloads: bool = False
) -> dict[ChildKey, dict[str, Any] | None]:
    """Every child the operator may own (secrets and migration Jobs aside), None where it
    must not exist.

    The keys depend on the Bookstore's name only, so a child the spec no longer wants is
    always found and deleted; order is creation order: configuration, Services and
    policies before the workloads that use them, autoscalers after their targets.
    `workloads` is the Bookstore at the version the Deployments run (default: `store`; the
    serving version after a rollback); `hold_workloads` leaves the Deployments and their
    HorizontalPodAutoscalers out, so nothing writes them while a migration runs or failed.
    """
    name = store.child_name
    children: dict[ChildKey, dict[str, Any] | None] = {
        ChildKey("v1", "ConfigMap", name("postgres-init")): build_postgres_init_config_map(store),
        ChildKey("v1", "Service", name("postgres")): build_postgres_service(store),
    }
    for service in SERVICES:
        children[ChildKey("v1", "Service", name(service))] = build_service(store, service)
    for suffix, policy in build_network_policies(store).items():
        children[ChildKey("networking.k8s.io/v1", "NetworkPolicy", name(suffix))] = policy
    children[ChildKey("apps/v1", "StatefulSet", name("postgres"))] = build_postgres_stateful_set(
        store
    )
    for service in SERVICES:
        if not hold_workloads:
            children[ChildKey("apps/v1", "Deployment", name(service))] = _deployment(
                workloads or store, service
            )
    for service in SERVICES:
        if not hold_workloads:
            children[ChildKey("autoscaling/v2", "HorizontalPodAutoscaler", name(service))] = (
                build_horizontal_pod_autoscaler(store, service)
            )
        children[ChildKey("policy/v1", "PodDisruptionBudget", name(service))] = (
            build_pod_disruption_budget(store, service)
        )
    children[ChildKey("networking.k8s.io/v1", "Ingress", name())] = build_ingress(store)
    return children


def _deployment(store: Bookstore, service: Service) -> dict[str, Any]:
    """The Deployment, with the Deployment controller's deadline from spec.upgrade: past it,
    the controller reports ProgressDeadlineExceeded and the operator calls the rollout stuck."""
    deployment = build_deployment(store, service)
    deployment["spec"]["progressDeadlineSeconds"] = store.spec.upgrade.progress_deadline_seconds
    return deployment
