"""The services' metrics: one naming scheme, every family exported from the start, in one
worker and in several (prometheus multiprocess mode), and nothing Prometheus adds itself."""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Callable, Generator
from pathlib import Path

import bookstore_catalog.metrics
import bookstore_orders.metrics
import httpx
import pytest
from bookstore_catalog.app import create_app as create_catalog_app
from bookstore_catalog.config import CatalogSettings
from bookstore_common.metrics import http_metrics, metric_prefix
from bookstore_orders.app import create_app as create_orders_app
from bookstore_orders.config import OrdersSettings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tests.services.conftest import LiveCatalog, free_port, start_catalog_server
from tests.services.orders.conftest import LiveOrders, start_orders_server

CATALOG_PACKAGE = Path(bookstore_catalog.metrics.__file__).parent
ORDERS_PACKAGE = Path(bookstore_orders.metrics.__file__).parent
HTTP = frozenset({"method", "route", "status"})
# Every metric family of each service: name (as in its TYPE line), type, label names.
# The README's "Metrics" table, the dashboard and the alerts use exactly these.
FAMILIES: dict[str, dict[str, tuple[str, frozenset[str]]]] = {
    "catalog": {
        "bookstore_catalog_http_requests_total": ("counter", HTTP),
        "bookstore_catalog_http_request_duration_seconds": ("histogram", HTTP),
        "bookstore_catalog_stock_reservations_total": ("counter", frozenset()),
        "bookstore_catalog_stock_reservations_rejected_total": ("counter", frozenset({"reason"})),
        "bookstore_catalog_stock_reservations_released_total": ("counter", frozenset()),
    },
    "orders": {
        "bookstore_orders_http_requests_total": ("counter", HTTP),
        "bookstore_orders_http_request_duration_seconds": ("histogram", HTTP),
        "bookstore_orders_placed_total": ("counter", frozenset()),
        "bookstore_orders_rejected_total": ("counter", frozenset({"reason"})),
        "bookstore_orders_cancelled_total": ("counter", frozenset()),
        "bookstore_orders_catalog_request_duration_seconds": (
            "histogram",
            frozenset({"operation", "outcome"}),
        ),
        "bookstore_orders_catalog_circuit_state": ("gauge", frozenset()),
        "bookstore_orders_left_pending_total": ("counter", frozenset()),
        "bookstore_orders_swept_total": ("counter", frozenset()),
    },
}
# Series that exist at 0 before anything happened: (sample name, labels).
AT_ZERO: dict[str, list[tuple[str, dict[str, str]]]] = {
    "catalog": [
        ("bookstore_catalog_stock_reservations_total", {}),
        ("bookstore_catalog_stock_reservations_released_total", {}),
        *(
            ("bookstore_catalog_stock_reservations_rejected_total", {"reason": reason})
            for reason in ("unknown_book", "insufficient_stock", "released")
        ),
    ],
    "orders": [
        ("bookstore_orders_placed_total", {}),
        ("bookstore_orders_cancelled_total", {}),
        ("bookstore_orders_catalog_circuit_state", {}),
        ("bookstore_orders_left_pending_total", {}),
        ("bookstore_orders_swept_total", {}),
        *(
            ("bookstore_orders_rejected_total", {"reason": reason})
            for reason in (
                "out_of_stock",
                "unknown_book",
                "catalog_unavailable",
                "given_up",
                "error",
            )
        ),
        *(
            (
                "bookstore_orders_catalog_request_duration_seconds_count",
                {"operation": operation, "outcome": outcome},
            )
            for operation in ("reserve", "release")
            for outcome in ("ok", "client_error", "server_error", "transport_error")
        ),
    ],
}
# Prometheus attaches these when it scrapes (and the PodMonitor relabels the pod's labels).
ADDED_BY_PROMETHEUS = frozenset({"bookstore", "namespace", "pod", "component", "instance", "job"})


def exported_types(text: str) -> dict[str, str]:
    """Family name -> type, from the exposition's TYPE lines."""
    types = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
    return types


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """(sample name, labels) -> value of every sample in the exposition."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def assert_exports_every_family_at_start(component: str, text: str) -> None:
    """The service's families, exactly; the known series at 0; no label Prometheus adds."""
    expected = FAMILIES[component]
    types = exported_types(text)
    ours = {name: kind for name, kind in types.items() if name.startswith("bookstore_")}
    assert ours == {name: kind for name, (kind, _) in expected.items()}
    values = samples(text)
    for name, labels in AT_ZERO[component]:
        assert values[(name, frozenset(labels.items()))] == 0.0, (name, labels)
    for family in text_string_to_metric_families(text):
        # the parser names a counter's family without `_total`
        name = f"{family.name}_total" if family.type == "counter" else family.name
        if not name.startswith("bookstore_"):
            continue
        for sample in family.samples:
            assert set(sample.labels) - {"le"} == expected[name][1], sample
            assert not set(sample.labels) & ADDED_BY_PROMETHEUS, sample


def promtool_problems(text: str) -> str:
    """What `promtool check metrics` says about an exposition (empty when it is clean)."""
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool is missing: install Debian's prometheus package"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    return (result.stdout + result.stderr).strip() if result.returncode else ""


@pytest.fixture(params=[1, 2], ids=["one-worker", "two-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    """How many uvicorn workers a live service runs (2: prometheus multiprocess mode)."""
    return int(request.param)


def first_scrape(server: Generator[LiveCatalog | LiveOrders]) -> str:
    """The /metrics text of a live service right after it became ready; then stop it."""
    live = next(server)
    try:
        return httpx.get(f"{live.base_url}/metrics").text
    finally:
        server.close()


def test_catalog_exports_every_family_from_the_start(
    make_database: Callable[[str], str], workers: int
) -> None:
    server = start_catalog_server(make_database("catalog_metrics"), workers=workers)
    text = first_scrape(server)
    assert_exports_every_family_at_start("catalog", text)
    assert promtool_problems(text) == ""


def test_orders_exports_every_family_from_the_start(
    make_database: Callable[[str], str], workers: int
) -> None:
    closed_catalog = f"http://127.0.0.1:{free_port()}"  # nothing calls catalog at start
    server = start_orders_server(make_database("orders_metrics"), closed_catalog, workers=workers)
    text = first_scrape(server)
    assert_exports_every_family_at_start("orders", text)
    assert promtool_problems(text) == ""


async def test_each_service_counts_its_requests_under_its_own_name() -> None:
    unreachable = "postgresql://u:p@127.0.0.1:1/x"
    catalog = create_catalog_app(CatalogSettings(database_url=unreachable))
    orders = create_orders_app(
        OrdersSettings(database_url=unreachable, catalog_url="http://127.0.0.1:1")
    )
    live = {"method": "GET", "route": "/health/live", "status": "200"}

    def count(component: str) -> float:
        value = REGISTRY.get_sample_value(f"bookstore_{component}_http_requests_total", live)
        return value or 0.0

    before = {component: count(component) for component in ("catalog", "orders")}
    for app, times in ((catalog, 3), (orders, 2)):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for _ in range(times):
                assert (await client.get("/health/live")).status_code == 200
        await app.state.engine.dispose()
    assert count("catalog") - before["catalog"] == 3
    assert count("orders") - before["orders"] == 2


def test_http_metrics_are_made_once_per_component_under_its_prefix() -> None:
    assert http_metrics("catalog") is http_metrics("catalog")
    assert http_metrics("catalog") is not http_metrics("orders")
    assert metric_prefix("orders") == "bookstore_orders"
    with pytest.raises(ValueError, match="lower-case identifier"):
        metric_prefix("Orders Service")


def literal_labels(package: Path, metric: str) -> set[str]:
    """Every string literal passed to `<metric>.labels(...)` in a service package."""
    found = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "labels"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == metric
            ):
                found |= {
                    arg.value
                    for arg in node.args
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                }
    return found


@pytest.mark.parametrize(
    ("package", "metric", "known"),
    [
        (CATALOG_PACKAGE, "RESERVATIONS_REJECTED", bookstore_catalog.metrics.REJECT_REASONS),
        (ORDERS_PACKAGE, "ORDERS_REJECTED", bookstore_orders.metrics.REJECT_REASONS),
    ],
    ids=["catalog", "orders"],
)
def test_every_rejection_reason_the_code_records_is_exported_from_the_start(
    package: Path, metric: str, known: tuple[str, ...]
) -> None:
    used = literal_labels(package, metric)
    assert used, f"no {metric}.labels(...) call found: did the code move?"
    assert used <= set(known), f"add {sorted(used - set(known))} to REJECT_REASONS"
