"""The Prometheus Operator children: a PodMonitor for the services, a PrometheusRule of alerts.

Both exist only with spec.monitoring.enabled (None otherwise: the reconciler deletes them) and
only where the monitoring.coreos.com CRDs are served (the reconciler checks, see monitoring.py).
The services put no bookstore/namespace labels on their series: Prometheus adds `namespace`
and `pod`, and the PodMonitor's relabelings copy the pods' instance and component labels into
`bookstore` and `component`, the labels the alerts and the dashboard select by.
"""

from __future__ import annotations

from bookstore_operator.builders.alerts import alert_groups
from bookstore_operator.builders.common import (
    COMPONENT_LABEL,
    INSTANCE_LABEL,
    SERVICES,
    Manifest,
    instance_labels,
    labels,
)
from bookstore_operator.models import Bookstore

MONITORING_API_VERSION = "monitoring.coreos.com/v1"
METRICS_PATH = "/metrics"
METRICS_PORT_NAME = "http"  # the services' container port (builders.deployments)


def _meta_label(label: str) -> str:
    """The discovery meta label Prometheus gives a pod label (non-alphanumerics become _)."""
    return "__meta_kubernetes_pod_label_" + "".join(c if c.isalnum() else "_" for c in label)


def monitoring_metadata(store: Bookstore) -> Manifest:
    """`<name>`, the Bookstore's labels over spec.monitoring.labels (ours win: the operator
    finds its children by them), and the controller ownerReference."""
    return {
        "name": store.child_name(),
        "namespace": store.namespace,
        "labels": {**store.spec.monitoring.labels, **labels(store, None)},
        "ownerReferences": [store.owner_reference],
    }


def build_pod_monitor(store: Bookstore) -> Manifest | None:
    """A PodMonitor scraping /metrics of the catalog and orders pods (not the database's, nor
    the migration and backup Jobs'), or None when monitoring is disabled."""
    monitoring = store.spec.monitoring
    if not monitoring.enabled:
        return None
    endpoint: Manifest = {
        "port": METRICS_PORT_NAME,
        "path": METRICS_PATH,
        "scheme": "http",
        "relabelings": [
            {
                "action": "replace",
                "sourceLabels": [_meta_label(INSTANCE_LABEL)],
                "targetLabel": "bookstore",
            },
            {
                "action": "replace",
                "sourceLabels": [_meta_label(COMPONENT_LABEL)],
                "targetLabel": "component",
            },
        ],
    }
    if monitoring.interval:
        endpoint["interval"] = monitoring.interval
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PodMonitor",
        "metadata": monitoring_metadata(store),
        "spec": {
            "selector": {
                "matchLabels": instance_labels(store),
                "matchExpressions": [
                    {"key": COMPONENT_LABEL, "operator": "In", "values": list(SERVICES)}
                ],
            },
            "namespaceSelector": {"matchNames": [store.namespace]},
            "podMetricsEndpoints": [endpoint],
        },
    }


def build_prometheus_rule(store: Bookstore) -> Manifest | None:
    """A PrometheusRule holding this Bookstore's alerts (builders.alerts), or None when
    monitoring is disabled."""
    if not store.spec.monitoring.enabled:
        return None
    return {
        "apiVersion": MONITORING_API_VERSION,
        "kind": "PrometheusRule",
        "metadata": monitoring_metadata(store),
        "spec": {"groups": alert_groups(store)},
    }
