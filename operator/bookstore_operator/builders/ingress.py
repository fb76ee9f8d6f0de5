"""The optional Ingress: `/catalog` and `/orders` on one host."""

from __future__ import annotations

from bookstore_operator.builders.common import SERVICE_PORT, SERVICES, Manifest, metadata
from bookstore_operator.models import Bookstore


def build_ingress(store: Bookstore) -> Manifest | None:
    """`<name>` (networking.k8s.io/v1); None unless spec.ingress.enabled."""
    ingress = store.spec.ingress
    if not ingress.enabled:
        return None
    paths = [
        {
            "path": f"/{service}",
            "pathType": "Prefix",
            "backend": {
                "service": {"name": store.child_name(service), "port": {"number": SERVICE_PORT}}
            },
        }
        for service in SERVICES
    ]
    rule: Manifest = {"http": {"paths": paths}}
    spec: Manifest = {"rules": [rule]}
    if ingress.host:
        rule["host"] = ingress.host
    if ingress.class_name:
        spec["ingressClassName"] = ingress.class_name
    if ingress.tls_secret_name:
        tls: Manifest = {"secretName": ingress.tls_secret_name}
        if ingress.host:
            tls["hosts"] = [ingress.host]
        spec["tls"] = [tls]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata(store, store.child_name(), None),
        "spec": {k: spec[k] for k in ("ingressClassName", "tls", "rules") if k in spec},
    }
