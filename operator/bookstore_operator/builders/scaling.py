"""HorizontalPodAutoscalers and PodDisruptionBudgets of the catalog and orders Deployments."""

from __future__ import annotations

from bookstore_operator.builders.common import (
    Manifest,
    Service,
    metadata,
    selector_labels,
)
from bookstore_operator.models import Bookstore


def _utilization(resource: str, target: int | None) -> list[Manifest]:
    if target is None:
        return []
    return [
        {
            "type": "Resource",
            "resource": {
                "name": resource,
                "target": {"type": "Utilization", "averageUtilization": target},
            },
        }
    ]


def build_horizontal_pod_autoscaler(store: Bookstore, service: Service) -> Manifest | None:
    """`<name>-<service>` (autoscaling/v2); None when the service's autoscaling is disabled."""
    autoscaling = (store.spec.catalog if service == "catalog" else store.spec.orders).autoscaling
    if not autoscaling.enabled:
        return None
    name = store.child_name(service)
    spec: Manifest = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
    }
    # A null target drops its metric; with none left the HPA uses its default (80% CPU).
    metrics = [
        *_utilization("cpu", autoscaling.target_cpu_utilization_percentage),
        *_utilization("memory", autoscaling.target_memory_utilization_percentage),
    ]
    if metrics:
        spec["metrics"] = metrics
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(store, name, service),
        "spec": spec,
    }


def build_pod_disruption_budget(store: Bookstore, service: Service) -> Manifest:
    """`<name>-<service>`: one pod at a time may be evicted, so drains never block."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(store, store.child_name(service), service),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": selector_labels(store, service)},
            # A crash-looping pod must not hold a node drain hostage.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }
