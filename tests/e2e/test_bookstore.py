"""A Bookstore on a real cluster: Ready, takes orders, scales, changes version, repairs drift,
and goes away with everything it owns (its data volume per deletionPolicy)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from kubernetes import client

from tests.e2e.cluster import condition, eventually, port_forward
from tests.e2e.conftest import (
    GROUP,
    NAMESPACE_PREFIX,
    PLURAL,
    VERSION,
    as_dict,
    create_bookstore,
    delete_namespace,
    get_bookstore,
    patch_bookstore,
    read,
    wait_ready,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bookstore.yaml"
API_KEY_SECRET_KEY = "api-key"
SMALL = {"autoscaling": {"enabled": False}, "replicas": 1}
MISSING_VERSION = "0.0.0-e2e-does-not-exist"


@dataclass(frozen=True)
class Store:
    """The Bookstore the lifecycle tests share: where it is and the version it runs."""

    namespace: str
    name: str
    version: str


@pytest.fixture(scope="module")
def store(operator_release: str) -> Iterator[Store]:
    """examples/bookstore.yaml, applied in its own namespace and Ready."""
    core = client.CoreV1Api()
    namespace = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:6]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    example = yaml.safe_load(EXAMPLE.read_text())
    name = example["metadata"]["name"]
    create_bookstore(namespace, name, example.get("spec") or {})
    ready = wait_ready(namespace, name)
    yield Store(namespace, name, ready["status"]["version"])
    delete_namespace(namespace)  # the Bookstore first, while the operator still runs


def api_key(store: Store) -> str:
    """The generated API key, read from the `<name>-api-key` Secret."""
    secret = read("Secret", store.namespace, f"{store.name}-api-key")
    assert secret is not None
    return base64.b64decode(secret["data"][API_KEY_SECRET_KEY]).decode()


def test_ready_bookstore_reports_its_children_and_endpoints(store: Store) -> None:
    current = get_bookstore(store.namespace, store.name)
    assert current["status"]["phase"] == "Ready"
    for kind in ("DatabaseReady", "CatalogReady", "OrdersReady"):
        assert condition(current, kind)["status"] == "True"
    orders = current["status"]["endpoints"]["orders"]
    assert orders.startswith(f"http://{store.name}-orders.{store.namespace}.svc")
    assert read("StatefulSet", store.namespace, f"{store.name}-postgres") is not None


def test_a_book_is_created_and_ordered_through_the_services(store: Store) -> None:
    headers = {"X-API-Key": api_key(store)}
    with (
        port_forward(store.namespace, f"{store.name}-catalog") as catalog_url,
        port_forward(store.namespace, f"{store.name}-orders") as orders_url,
    ):
        book = httpx.post(
            f"{catalog_url}/books",
            headers=headers,
            json={"title": "Dune", "author": "Frank Herbert", "isbn": "9780306406157",
                  "price": "12.50", "quantity": 5},
            timeout=30,
        )  # fmt: skip
        assert book.status_code == 201, book.text
        book_id = book.json()["id"]
        order = httpx.post(
            f"{orders_url}/orders",
            headers=headers,
            json={"customer_name": "Ada", "customer_email": "ada@example.com",
                  "items": [{"book_id": book_id, "quantity": 2}]},
            timeout=30,
        )  # fmt: skip
        assert order.status_code == 201, order.text
        assert order.json()["status"] == "confirmed"
        assert float(order.json()["total_price"]) == 25.0
        assert httpx.get(f"{catalog_url}/books/{book_id}", timeout=30).json()["quantity"] == 3
        assert httpx.post(f"{orders_url}/orders", json={}, timeout=30).status_code == 401


def test_fixed_replicas_are_rolled_out_and_reported(store: Store) -> None:
    fixed = {"catalog": {"autoscaling": {"enabled": False}, "replicas": 3}}
    patch_bookstore(store.namespace, store.name, fixed)
    wait_ready(store.namespace, store.name)

    def three_ready() -> bool:
        catalog = read("Deployment", store.namespace, f"{store.name}-catalog") or {}
        return bool(catalog.get("status", {}).get("readyReplicas") == 3)

    eventually(three_ready, timeout=300, what="3 ready catalog replicas")
    assert get_bookstore(store.namespace, store.name)["status"]["catalog"]["ready"] == "3/3"
    assert read("HorizontalPodAutoscaler", store.namespace, f"{store.name}-catalog") is None


def test_a_version_that_cannot_start_never_takes_the_service_down(store: Store) -> None:
    patch_bookstore(store.namespace, store.name, {"version": MISSING_VERSION})

    def stuck_rollout() -> bool:
        orders = read("Deployment", store.namespace, f"{store.name}-orders") or {}
        containers = orders.get("spec", {}).get("template", {}).get("spec", {}).get("containers")
        current = get_bookstore(store.namespace, store.name)
        progressing = condition(current, "Progressing").get("status") == "True"
        return (
            bool(containers)
            and containers[0]["image"].endswith(f":{MISSING_VERSION}")
            and progressing
        )

    eventually(stuck_rollout, timeout=180, what="a Progressing rollout to the missing version")
    assert get_bookstore(store.namespace, store.name)["status"]["version"] == store.version
    with port_forward(store.namespace, f"{store.name}-orders") as orders_url:
        assert httpx.get(f"{orders_url}/orders", timeout=30).status_code == 200

    patch_bookstore(store.namespace, store.name, {"version": store.version})
    assert wait_ready(store.namespace, store.name)["status"]["version"] == store.version


DELETERS: dict[str, Callable[[str, str], object]] = {
    "Service": lambda name, ns: client.CoreV1Api().delete_namespaced_service(name, ns),
    "Deployment": lambda name, ns: client.AppsV1Api().delete_namespaced_deployment(name, ns),
}


@pytest.mark.parametrize("kind", sorted(DELETERS))
def test_a_child_deleted_by_hand_comes_back(store: Store, kind: str) -> None:
    name = f"{store.name}-catalog"
    before = read(kind, store.namespace, name)
    assert before is not None
    DELETERS[kind](name, store.namespace)

    def recreated() -> bool:
        after = read(kind, store.namespace, name)
        return after is not None and after["metadata"]["uid"] != before["metadata"]["uid"]

    eventually(recreated, timeout=120, what=f"{kind} {name} to be recreated")
    wait_ready(store.namespace, store.name)


def owned_objects(namespace: str, name: str) -> list[str]:
    """Workloads, Services and Secrets still labelled as this Bookstore's."""
    selector = f"app.kubernetes.io/instance={name},app.kubernetes.io/managed-by=bookstore-operator"
    apps, core = client.AppsV1Api(), client.CoreV1Api()
    listings: dict[str, Callable[..., object]] = {
        "Deployment": apps.list_namespaced_deployment,
        "StatefulSet": apps.list_namespaced_stateful_set,
        "Service": core.list_namespaced_service,
        "Secret": core.list_namespaced_secret,
    }
    found = []
    for kind, listing in listings.items():
        items: list[dict[str, Any]] = as_dict(listing(namespace, label_selector=selector))["items"]
        found += [f"{kind}/{item['metadata']['name']}" for item in items]
    return found


@pytest.mark.parametrize(("policy", "volume_kept"), [("Retain", True), ("Delete", False)])
def test_deleting_a_bookstore_removes_its_children_and_the_volume_per_policy(
    operator_release: str, new_namespace: Callable[[], str], policy: str, volume_kept: bool
) -> None:
    namespace, name = new_namespace(), f"gone-{policy.lower()}"
    database = {"storage": "1Gi", "deletionPolicy": policy}
    create_bookstore(namespace, name, {"catalog": SMALL, "orders": SMALL, "database": database})
    wait_ready(namespace, name)
    volume = f"data-{name}-postgres-0"
    assert owned_objects(namespace, name)
    assert read("PersistentVolumeClaim", namespace, volume) is not None

    api = client.CustomObjectsApi()
    api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)

    eventually(lambda: not owned_objects(namespace, name), timeout=180, what="the children to go")
    if volume_kept:
        assert read("PersistentVolumeClaim", namespace, volume) is not None
    else:
        eventually(
            lambda: read("PersistentVolumeClaim", namespace, volume) is None,
            timeout=180,
            what=f"{volume} to go",
        )
