"""The one-host namespace: DNS routes to 127.0.0.1 only, volumes keep their file modes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.contract.cluster import Network, materialize_volumes, probe_port
from tests.contract.kubelet import Sources


@pytest.mark.parametrize(
    "host", ["shop-postgres", "shop-postgres.shops", "shop-postgres.shops.svc.cluster.local"]
)
def test_service_names_route_to_loopback_keeping_user_path_and_query(host: str) -> None:
    network = Network()
    network.route("shop-postgres", 5432, 40001)
    url = f"postgresql://catalog@{host}:5432/catalog?sslmode=require"
    assert network.rewrite(url) == "postgresql://catalog@127.0.0.1:40001/catalog?sslmode=require"


def test_default_port_of_the_scheme_is_routed() -> None:
    network = Network()
    network.route("shop-catalog", 80, 40002)
    assert network.rewrite("http://shop-catalog/books") == "http://127.0.0.1:40002/books"


def test_url_to_an_unrouted_host_is_refused_so_nothing_leaves_the_machine() -> None:
    network = Network()
    network.route("shop-postgres", 5432, 40001)
    with pytest.raises(LookupError):
        network.rewrite("postgresql://u@db.example.com:5432/x")
    with pytest.raises(LookupError):
        network.rewrite("postgresql://u@shop-postgres:6432/x")


def test_values_that_are_not_urls_are_left_alone() -> None:
    network = Network()
    assert network.rewrite("0.0.0.0") == "0.0.0.0"
    assert network.rewrite("http://127.0.0.1:9/x") == "http://127.0.0.1:9/x"


def test_probe_port_resolves_a_named_container_port() -> None:
    container = {"name": "c", "ports": [{"name": "http", "containerPort": 8000}]}
    assert probe_port(container, {"httpGet": {"path": "/", "port": "http"}}) == 8000
    assert probe_port(container, {"httpGet": {"path": "/", "port": 9000}}) == 9000


def test_config_map_volume_files_get_the_volume_default_mode(tmp_path: Path) -> None:
    workload = {
        "spec": {
            "template": {
                "spec": {
                    "volumes": [
                        {"name": "init", "configMap": {"name": "cm", "defaultMode": 0o555}},
                        {"name": "run", "emptyDir": {}},
                    ]
                }
            }
        }
    }
    container = {
        "name": "c",
        "volumeMounts": [
            {"name": "init", "mountPath": "/init"},
            {"name": "run", "mountPath": "/run"},
        ],
    }
    sources = Sources(config_maps={"cm": {"a.sh": "echo a"}})
    mounts = materialize_volumes(workload, container, sources, tmp_path)
    script = mounts["/init"] / "a.sh"
    assert script.read_text() == "echo a"
    assert script.stat().st_mode & 0o777 == 0o555
    assert list(mounts["/run"].iterdir()) == []
