"""NetworkPolicies and the Ingress."""

from __future__ import annotations

from typing import Any

import pytest
from bookstore_operator.builders import ChildKey, build_children
from bookstore_operator.builders.backups import build_backup_job, build_restore_job
from bookstore_operator.builders.network_policies import NETWORK_POLICY_SUFFIXES

from tests.operator.unit.stores import bookstore_body, parse_store, store_for

INSTANCE = {"app.kubernetes.io/name": "bookstore", "app.kubernetes.io/instance": "downtown"}


def policy(spec_name: str, suffix: str) -> dict[str, Any] | None:
    key = ChildKey("networking.k8s.io/v1", "NetworkPolicy", f"downtown-{suffix}")
    return build_children(store_for(spec_name))[key]


def ingress(spec_name: str) -> dict[str, Any] | None:
    return build_children(store_for(spec_name))[
        ChildKey("networking.k8s.io/v1", "Ingress", "downtown")
    ]


def pods(component: str) -> dict[str, Any]:
    return {"podSelector": {"matchLabels": {**INSTANCE, "app.kubernetes.io/component": component}}}


@pytest.mark.parametrize("suffix", NETWORK_POLICY_SUFFIXES)
def test_every_policy_is_absent_when_network_policies_are_disabled(suffix: str) -> None:
    assert policy("no-network-policy", suffix) is None


def test_default_deny_covers_every_pod_of_the_instance_both_ways() -> None:
    deny = policy("defaults", "default-deny")
    assert deny is not None
    assert deny["spec"] == {
        "podSelector": {"matchLabels": INSTANCE},
        "policyTypes": ["Ingress", "Egress"],
    }


def test_dns_egress_is_allowed_on_udp_and_tcp_53() -> None:
    dns = policy("defaults", "allow-dns")
    assert dns is not None
    [rule] = dns["spec"]["egress"]
    assert rule["to"] == [{"namespaceSelector": {}}]
    assert sorted((p["protocol"], p["port"]) for p in rule["ports"]) == [("TCP", 53), ("UDP", 53)]


def test_orders_may_reach_catalog_on_the_service_port() -> None:
    allow = policy("defaults", "allow-orders-to-catalog")
    assert allow is not None
    assert allow["spec"]["ingress"] == [
        {"from": [pods("orders")], "ports": [{"protocol": "TCP", "port": 8000}]}
    ]
    assert allow["spec"]["egress"] == [
        {"to": [pods("catalog")], "ports": [{"protocol": "TCP", "port": 8000}]}
    ]


def test_services_migration_and_backup_jobs_may_reach_the_in_cluster_database_on_5432() -> None:
    allow = policy("defaults", "allow-database")
    assert allow is not None
    assert allow["spec"]["ingress"] == [
        {
            "from": [pods("catalog"), pods("orders"), pods("migration"), pods("backup")],
            "ports": [{"protocol": "TCP", "port": 5432}],
        }
    ]
    assert allow["spec"]["egress"] == [
        {"to": [pods("database")], "ports": [{"protocol": "TCP", "port": 5432}]}
    ]


def test_services_may_reach_an_external_database_on_its_port_only() -> None:
    allow = policy("external-database", "allow-database")
    assert allow is not None
    assert allow["spec"]["policyTypes"] == ["Egress"]
    assert allow["spec"]["egress"] == [{"ports": [{"protocol": "TCP", "port": 6432}]}]
    assert allow["spec"]["podSelector"]["matchExpressions"][0]["values"] == [
        "backup",
        "catalog",
        "migration",
        "orders",
    ]


def selects(selector: dict[str, Any], pod_labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels, `In` expressions) matches these pod labels."""
    if not selector.get("matchLabels", {}).items() <= pod_labels.items():
        return False
    return all(
        pod_labels.get(expression["key"]) in expression["values"]
        for expression in selector.get("matchExpressions", [])
    )


@pytest.mark.parametrize("spec_name", ["defaults", "external-database"])
def test_backup_and_restore_pods_are_let_out_to_the_database(spec_name: str) -> None:
    store = store_for(spec_name)
    allow = policy(spec_name, "allow-database")
    assert allow is not None
    for job in (
        build_backup_job(store, "nightly", "0b5e3c1e-0000-4000-8000-000000000001"),
        build_restore_job(store, "nightly", "uptown"),
    ):
        pod_labels = job["spec"]["template"]["metadata"]["labels"]
        assert selects(allow["spec"]["podSelector"], pod_labels)
        if spec_name == "defaults":
            peers = allow["spec"]["ingress"][0]["from"]
            assert any(selects(peer["podSelector"], pod_labels) for peer in peers)


def test_allow_from_admits_the_configured_peers_to_the_services_only() -> None:
    assert policy("defaults", "allow-from") is None
    allow = policy("allow-from", "allow-from")
    assert allow is not None
    [rule] = allow["spec"]["ingress"]
    assert len(rule["from"]) == 3
    assert rule["from"][2] == {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    assert allow["spec"]["podSelector"]["matchExpressions"] == [
        {"key": "app.kubernetes.io/component", "operator": "In", "values": ["catalog", "orders"]}
    ]


def test_ingress_is_absent_unless_enabled() -> None:
    assert ingress("defaults") is None


def test_plain_ingress_routes_both_prefixes_on_any_host_without_tls() -> None:
    plain = ingress("ingress-plain")
    assert plain is not None
    assert plain["spec"] == {
        "rules": [
            {
                "http": {
                    "paths": [
                        {
                            "path": f"/{component}",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {
                                    "name": f"downtown-{component}",
                                    "port": {"number": 8000},
                                }
                            },
                        }
                        for component in ("catalog", "orders")
                    ]
                }
            }
        ]
    }


def test_ingress_with_tls_names_class_host_and_secret() -> None:
    tls = ingress("ingress-tls")
    assert tls is not None
    assert tls["spec"]["ingressClassName"] == "nginx"
    assert tls["spec"]["rules"][0]["host"] == "shop.example.com"
    assert tls["spec"]["tls"] == [{"secretName": "shop-tls", "hosts": ["shop.example.com"]}]


def test_allow_from_peers_are_written_as_the_api_server_stores_them() -> None:
    spec = {
        "networkPolicy": {
            "allowFrom": [
                {"namespaceSelector": {"matchLabels": {}}, "podSelector": {}},
                {
                    "podSelector": {
                        "matchLabels": {"app": "prometheus"},
                        "matchExpressions": [{"key": "tier", "operator": "Exists", "values": []}],
                    }
                },
                {"ipBlock": {"cidr": "192.168.0.0/16", "except": []}},
            ]
        }
    }
    allow = build_children(parse_store(bookstore_body(spec)))[
        ChildKey("networking.k8s.io/v1", "NetworkPolicy", "downtown-allow-from")
    ]
    assert allow is not None
    assert allow["spec"]["ingress"][0]["from"] == [
        {"podSelector": {}, "namespaceSelector": {}},
        {
            "podSelector": {
                "matchLabels": {"app": "prometheus"},
                "matchExpressions": [{"key": "tier", "operator": "Exists"}],
            }
        },
        {"ipBlock": {"cidr": "192.168.0.0/16"}},
    ]
