"""The environment a service pod gets, expanded like the kubelet does, configures the service
to reach the right database: the builders and the services agree on the contract."""

from __future__ import annotations

import re
from typing import Any

import pytest
from bookstore_common.settings import ServiceSettings
from bookstore_operator.builders.common import Service
from bookstore_operator.builders.deployments import service_env

from tests.operator.unit.stores import store_for

SECRETS = {
    ("downtown-db", "catalog-password"): "c@t:pw",
    ("downtown-db", "orders-password"): "ord-pw",
    ("downtown-api-key", "api-key"): "key",
    ("shop-postgres", "host"): "pg.example.com",
    ("shop-postgres", "port"): "6432",
    ("shop-postgres", "username"): "shop_user",
    ("shop-postgres", "password"): "p@ss:w/rd",
}


def kubelet_environment(env: list[dict[str, Any]]) -> dict[str, str]:
    """Resolve values and secretKeyRefs, expanding `$(VAR)` from variables defined earlier."""
    resolved: dict[str, str] = {}
    for var in env:
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            resolved[var["name"]] = SECRETS[(ref["name"], ref["key"])]
        else:
            resolved[var["name"]] = re.sub(
                r"\$\((\w+)\)", lambda m: resolved.get(m[1], m[0]), var["value"]
            )
    return resolved


@pytest.mark.parametrize(
    ("spec_name", "service", "expected"),
    [
        (
            "defaults",
            "catalog",
            ("downtown-postgres", 5432, "catalog", "c@t:pw", "catalog", None),
        ),
        ("defaults", "orders", ("downtown-postgres", 5432, "orders", "ord-pw", "orders", None)),
        (
            "external-database",
            "orders",
            ("pg.example.com", 6432, "shop_user", "p@ss:w/rd", "shop", "require"),
        ),
    ],
)
def test_pod_environment_points_the_service_at_its_database(
    spec_name: str, service: Service, expected: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = kubelet_environment(service_env(store_for(spec_name), service))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = ServiceSettings()  # read from the environment, as the service does
    url, connect_args = settings.sync_engine_args()
    sslmode = connect_args.get("sslmode")
    assert (url.host, url.port, url.username, url.password, url.database, sslmode) == expected
    assert settings.port == 8000
    # The migration Job migrates before the rollout; a pod never does at start.
    assert settings.migrate_on_start is False
