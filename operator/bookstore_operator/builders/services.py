"""The catalog and orders Services: stable ClusterIP names in front of ready pods only."""

from __future__ import annotations

from bookstore_operator.builders.common import (
    SERVICE_PORT,
    Manifest,
    Service,
    metadata,
    selector_labels,
)
from bookstore_operator.models import Bookstore


def build_service(store: Bookstore, service: Service) -> Manifest:
    """`<name>-<service>`: ClusterIP port 8000 to the pods' `http` port."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(store, store.child_name(service), service),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(store, service),
            "ports": [
                {
                    "name": "http",
                    "port": SERVICE_PORT,
                    "targetPort": "http",
                    "protocol": "TCP",
                    "appProtocol": "http",
                }
            ],
        },
    }
