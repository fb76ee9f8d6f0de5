"""NetworkPolicies: deny everything for the instance, then allow exactly what it needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bookstore_operator.builders.common import (
    COMPONENT_LABEL,
    POSTGRES_PORT,
    SERVICE_PORT,
    Component,
    Manifest,
    instance_labels,
    metadata,
    selector_labels,
)
from bookstore_operator.models import Bookstore

NETWORK_POLICY_SUFFIXES = (
    "default-deny",
    "allow-dns",
    "allow-orders-to-catalog",
    "allow-database",
    "allow-from",
)
# The Jobs' pods that reach the database too: migrations (builders.migrations), and backups
# and restores (builders.backups; a backup-cleanup pod only touches its volume).
JOB_CLIENTS: tuple[Component, ...] = ("migration", "backup")


def _pods(store: Bookstore, components: Iterable[Component]) -> Manifest:
    """A selector for this instance's pods of the given components."""
    return {
        "matchLabels": instance_labels(store),
        "matchExpressions": [
            {"key": COMPONENT_LABEL, "operator": "In", "values": sorted(components)}
        ],
    }


def _peer(store: Bookstore, component: Component) -> Manifest:
    return {"podSelector": {"matchLabels": selector_labels(store, component)}}


def _tcp(port: int) -> Manifest:
    return {"protocol": "TCP", "port": port}


def _policy(store: Bookstore, suffix: str, spec: Manifest) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(store, store.child_name(suffix), None),
        "spec": spec,
    }


def _default_deny(store: Bookstore) -> Manifest:
    return _policy(
        store,
        "default-deny",
        {
            "podSelector": {"matchLabels": instance_labels(store)},
            "policyTypes": ["Ingress", "Egress"],
        },
    )


def _allow_dns(store: Bookstore) -> Manifest:
    ports = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
    return _policy(
        store,
        "allow-dns",
        {
            "podSelector": {"matchLabels": instance_labels(store)},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {}}], "ports": ports}],
        },
    )


def _allow_orders_to_catalog(store: Bookstore) -> Manifest:
    # One policy selects both ends: ingress admits orders at catalog, egress lets orders out.
    return _policy(
        store,
        "allow-orders-to-catalog",
        {
            "podSelector": _pods(store, ("catalog", "orders")),
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [_peer(store, "orders")], "ports": [_tcp(SERVICE_PORT)]}],
            "egress": [{"to": [_peer(store, "catalog")], "ports": [_tcp(SERVICE_PORT)]}],
        },
    )


def _allow_database(store: Bookstore) -> Manifest:
    facts = store.external_database
    if store.spec.database.is_external:
        # The external server's address is only known to DNS: allow its port anywhere.
        port = int(facts.port) if facts is not None else POSTGRES_PORT
        spec: Manifest = {
            "podSelector": _pods(store, ("catalog", "orders", *JOB_CLIENTS)),
            "policyTypes": ["Egress"],
            "egress": [{"ports": [_tcp(port)]}],
        }
    else:
        services = [_peer(store, c) for c in ("catalog", "orders", *JOB_CLIENTS)]
        spec = {
            "podSelector": _pods(store, ("catalog", "database", "orders", *JOB_CLIENTS)),
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": services, "ports": [_tcp(POSTGRES_PORT)]}],
            "egress": [{"to": [_peer(store, "database")], "ports": [_tcp(POSTGRES_PORT)]}],
        }
    return _policy(store, "allow-database", spec)


def _selector(selector: Mapping[str, Any]) -> Manifest:
    expressions = [
        {key: value for key, value in expression.items() if value != []}
        for expression in selector.get("matchExpressions") or []
    ]
    normalized: Manifest = {}
    if selector.get("matchLabels"):
        normalized["matchLabels"] = dict(selector["matchLabels"])
    if expressions:
        normalized["matchExpressions"] = expressions
    return normalized


def _peer_as_stored(peer: Mapping[str, Any]) -> Manifest:
    """A user's peer without the empty lists and maps the API server drops, so the live
    policy matches the desired one and reconciles stay idempotent."""
    normalized: Manifest = {}
    for key in ("podSelector", "namespaceSelector"):
        if key in peer:
            normalized[key] = _selector(peer[key] or {})
    if "ipBlock" in peer:
        block = peer["ipBlock"]
        normalized["ipBlock"] = {"cidr": block["cidr"]}
        if block.get("except"):
            normalized["ipBlock"]["except"] = list(block["except"])
    return normalized


def _allow_from(store: Bookstore) -> Manifest | None:
    peers = store.spec.network_policy.allow_from
    if not peers:
        return None
    return _policy(
        store,
        "allow-from",
        {
            "podSelector": _pods(store, ("catalog", "orders")),
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": [_peer_as_stored(peer) for peer in peers], "ports": [_tcp(SERVICE_PORT)]}
            ],
        },
    )


def build_network_policies(store: Bookstore) -> dict[str, Manifest | None]:
    """Every policy by name suffix (see NETWORK_POLICY_SUFFIXES); all None when disabled."""
    if not store.spec.network_policy.enabled:
        return dict.fromkeys(NETWORK_POLICY_SUFFIXES)
    return {
        "default-deny": _default_deny(store),
        "allow-dns": _allow_dns(store),
        "allow-orders-to-catalog": _allow_orders_to_catalog(store),
        "allow-database": _allow_database(store),
        "allow-from": _allow_from(store),
    }
