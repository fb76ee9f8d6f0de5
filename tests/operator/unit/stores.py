"""Bookstores to build from: a matrix of specs covering every builder branch, and the examples."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from bookstore_operator.builders import (
    SERVICES,
    build_api_key_secret,
    build_children,
    build_database_secret,
    build_migration_job,
)
from bookstore_operator.models import Bookstore, ExternalDatabaseFacts
from bookstore_operator.settings import OperatorSettings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
NAMESPACE = "shops"

EXTERNAL = {"database": {"external": {"secretName": "shop-postgres"}}}
FACTS = ExternalDatabaseFacts(database="shop", sslmode="require", port="6432")

# name -> spec; together they take every branch of every builder.
SPECS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "fixed-replicas": {
        "catalog": {"replicas": 3, "autoscaling": {"enabled": False}},
        "orders": {"replicas": 0, "autoscaling": {"enabled": False}},
    },
    "cpu-only-autoscaling": {
        "catalog": {"autoscaling": {"targetMemoryUtilizationPercentage": None}}
    },
    "no-autoscaling-metrics": {
        "orders": {
            "autoscaling": {
                "targetCPUUtilizationPercentage": None,
                "targetMemoryUtilizationPercentage": None,
            }
        }
    },
    "external-database": EXTERNAL,
    "ingress-plain": {"ingress": {"enabled": True}},
    "ingress-tls": {
        "ingress": {
            "enabled": True,
            "className": "nginx",
            "host": "shop.example.com",
            "tlsSecretName": "shop-tls",
        }
    },
    "no-network-policy": {"networkPolicy": {"enabled": False}},
    "allow-from": {
        "networkPolicy": {
            "allowFrom": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}},
                {
                    "namespaceSelector": {"matchLabels": {"team": "observability"}},
                    "podSelector": {
                        "matchExpressions": [
                            {"key": "app", "operator": "In", "values": ["prometheus"]}
                        ]
                    },
                },
                {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
            ]
        }
    },
    "user-api-key": {"auth": {"apiKeySecretName": "shop-api-key"}},
    "custom-resources": {
        "catalog": {"resources": {"requests": {"memory": "1Gi"}}},
        "orders": {"resources": {"limits": {"cpu": 2, "memory": "2Gi"}}},
        "database": {"resources": {"requests": {"cpu": "500m", "ephemeral-storage": "1Gi"}}},
    },
    "delete-policy": {
        "database": {"deletionPolicy": "Delete", "storageClassName": "fast-ssd", "storage": "20Gi"}
    },
    "custom-images": {
        "image": "registry.example.com:5000/shop/bookstore",
        "version": "1.2.3-rc.1",
        "sampleData": True,
        "database": {
            "image": "registry.example.com/postgres:16.4@sha256:" + "a" * 64,
        },
    },
}


def parse_store(body: Mapping[str, Any], facts: ExternalDatabaseFacts | None = FACTS) -> Bookstore:
    """A Bookstore as the reconciler sees it: parsed, and with the external Secret's facts read."""
    meta = {"namespace": NAMESPACE, "uid": "0a1b2c3d-uid", "generation": 3, **body["metadata"]}
    store = Bookstore.parse({**body, "metadata": meta}, OperatorSettings())
    if store.spec.database.is_external and facts is not None:
        store = store.model_copy(update={"external_database": facts})
    return store


def bookstore_body(spec: Mapping[str, Any], name: str = "downtown") -> dict[str, Any]:
    """A Bookstore object as a user writes it."""
    return {
        "apiVersion": "bookstore.dev/v1alpha1",
        "kind": "Bookstore",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


def store_for(spec_name: str) -> Bookstore:
    return parse_store(bookstore_body(SPECS[spec_name]))


def example_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    """(file name, document) for every document of every file in examples/."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield path.name, document


def example_bookstores() -> dict[str, dict[str, Any]]:
    """The Bookstore object of each example file."""
    return {name: doc for name, doc in example_documents() if doc["kind"] == "Bookstore"}


def all_bookstore_bodies() -> dict[str, dict[str, Any]]:
    """Every Bookstore the tests build: the spec matrix and the examples."""
    bodies = {name: bookstore_body(spec) for name, spec in SPECS.items()}
    bodies.update({f"examples/{name}": body for name, body in example_bookstores().items()})
    return bodies


def all_manifests(store: Bookstore) -> list[dict[str, Any]]:
    """Every manifest any builder produces for this store."""
    manifests = [m for m in build_children(store).values() if m is not None]
    for secret in (build_database_secret(store), build_api_key_secret(store)):
        if secret is not None:
            manifests.append(secret)
    manifests.extend(build_migration_job(store, service) for service in SERVICES)
    return manifests
