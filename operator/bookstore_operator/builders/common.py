"""What every child shares: names of keys and ports, labels, metadata, security and resources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from bookstore_operator.builders.quantity import canonical_quantity, parse_quantity
from bookstore_operator.models import Bookstore

Manifest = dict[str, Any]
# "migration": the pods of the migration Jobs (builders.migrations); "backup": the pods of the
# backup, restore and cleanup Jobs and the backups volume (builders.backups).
Component = Literal["catalog", "orders", "database", "migration", "backup"]
Service = Literal["catalog", "orders"]
SERVICES: tuple[Service, ...] = ("catalog", "orders")

SERVICE_PORT = 8000
POSTGRES_PORT = 5432
SERVICE_UID = 10001
POSTGRES_UID = 999  # the `postgres` user of the official image

# Names of keys inside Secrets, not secrets themselves.
API_KEY_SECRET_KEY = "api-key"  # noqa: S105
POSTGRES_PASSWORD_KEY = "postgres-password"  # noqa: S105
CATALOG_PASSWORD_KEY = "catalog-password"  # noqa: S105
ORDERS_PASSWORD_KEY = "orders-password"  # noqa: S105
DATABASE_SECRET_KEYS = (POSTGRES_PASSWORD_KEY, CATALOG_PASSWORD_KEY, ORDERS_PASSWORD_KEY)
SERVICE_PASSWORD_KEYS: dict[Service, str] = {
    "catalog": CATALOG_PASSWORD_KEY,
    "orders": ORDERS_PASSWORD_KEY,
}
# Keys the user's Secret must hold when spec.database.external is set (`sslmode` and
# `database` are optional and read by the reconciler into ExternalDatabaseFacts).
EXTERNAL_SECRET_KEYS = ("host", "port", "username", "password")

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
VERSION_LABEL = "app.kubernetes.io/version"
MANAGER = "bookstore-operator"

DEFAULT_SERVICE_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"cpu": "1", "memory": "256Mi"},
}
DEFAULT_DATABASE_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "250m", "memory": "256Mi"},
    "limits": {"cpu": "2", "memory": "1Gi"},
}


def instance_labels(store: Bookstore) -> dict[str, str]:
    """The labels that select every pod of one Bookstore (NetworkPolicy default deny)."""
    return {NAME_LABEL: "bookstore", INSTANCE_LABEL: store.name}


def selector_labels(store: Bookstore, component: Component) -> dict[str, str]:
    """The immutable labels a Deployment/StatefulSet/Service/PDB selects its pods by."""
    return {**instance_labels(store), COMPONENT_LABEL: component}


def labels(store: Bookstore, component: Component | None) -> dict[str, str]:
    """DESIGN labels; children shared by the whole instance (API key, policies, Ingress) omit
    the component label rather than pretend to belong to one service."""
    base = selector_labels(store, component) if component else instance_labels(store)
    return {
        **base,
        "app.kubernetes.io/part-of": "bookstore",
        "app.kubernetes.io/managed-by": MANAGER,
    }


def metadata(
    store: Bookstore,
    name: str,
    component: Component | None,
    extra_labels: Mapping[str, str] | None = None,
) -> Manifest:
    """Name, namespace, labels and the controller ownerReference that makes deletion cascade."""
    return {
        "name": name,
        "namespace": store.namespace,
        "labels": {**labels(store, component), **(extra_labels or {})},
        "ownerReferences": [store.owner_reference],
    }


def pod_security_context(uid: int) -> Manifest:
    """Pod-level settings of Pod Security Standard "restricted", running as `uid`."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "fsGroupChangePolicy": "OnRootMismatch",
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    """Container-level "restricted" settings, repeated so each container is safe on its own."""
    return {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(spec: Mapping[str, Any], defaults: Mapping[str, Mapping[str, str]]) -> Manifest:
    """The spec's resources completed with defaults so cpu and memory always have a request
    and a limit, and a defaulted limit is never below the request the user gave."""
    requests = {k: canonical_quantity(v) for k, v in (spec.get("requests") or {}).items()}
    limits = {k: canonical_quantity(v) for k, v in (spec.get("limits") or {}).items()}
    for resource in ("cpu", "memory"):
        # Like the API server: a limit alone also sets the request.
        requests.setdefault(resource, limits.get(resource, defaults["requests"][resource]))
        default_limit = defaults["limits"][resource]
        if parse_quantity(requests[resource]) > parse_quantity(default_limit):
            default_limit = requests[resource]
        limits.setdefault(resource, default_limit)
    return {"requests": requests, "limits": limits}


def version_label(image: str) -> dict[str, str]:
    """`app.kubernetes.io/version` from an image's tag, when the tag is a valid label value."""
    tag = image.split("@", 1)[0].rpartition("/")[2].partition(":")[2]
    valid = 0 < len(tag) <= 63 and tag.isascii() and tag[0].isalnum() and tag[-1].isalnum()
    valid = valid and all(c.isalnum() or c in "-_." for c in tag)
    return {VERSION_LABEL: tag} if valid else {}
