"""Every series the dashboard and the alerts query exists (issue 13).

Real processes: `bookstore-catalog serve` and `bookstore-orders serve` on PostgreSQL, driven
through a placed, a rejected and a cancelled order; and `bookstore-operator --metrics-port`
reconciling one Bookstore to Ready against the emulated API server. Their /metrics are
scraped, and every metric name in the dashboard's queries, the chart's PrometheusRule and the
PrometheusRule the operator builds for a Bookstore must be one of the families they expose
(`up` is Prometheus's own).
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
from bookstore_operator.builders import build_prometheus_rule
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from tests.chart.helm import CHART, Helm, find_helm
from tests.monitoring.alert_sources import bookstore, chart_groups
from tests.monitoring.promql_names import (
    PromQLSyntaxError,
    exposed_families,
    grafana_query_names,
    label_names,
    metric_names,
    queryable_series,
)
from tests.operator.runtime.conftest import (
    NAMESPACE,
    api,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    serving,
    wait_ready,
)
from tests.operator.runtime.emulator import Emulator
from tests.operator.runtime.test_cli import free_port, write_kubeconfig

DASHBOARDS = CHART / "files" / "dashboards"
ADMIN_DATABASE_URL = os.environ.get(
    "TEST_ADMIN_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
API_KEY = "series-test-key"
READY_SECONDS = 60.0
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
HAND_EDIT = {
    "spec": {"template": {"spec": {"containers": [{"name": "orders", "image": "evil:1"}]}}}
}
REPAIRED = 'bookstore_operator_drift_repairs_total{kind="Deployment"}'
# Labels Prometheus gives every series of a target: namespace and pod (and job, instance)
# from discovery, bookstore and component from the PodMonitor's relabelling.
TARGET_LABELS = frozenset({"namespace", "pod", "job", "instance", "bookstore", "component"})
# Series Prometheus makes itself for every target it scrapes.
PROMETHEUS_OWN = frozenset({"up"})
# Specs whose PrometheusRules together take every branch of the alert builders.
ALERTING_SPECS: dict[str, dict[str, Any]] = {
    "monitoring": {},
    "backups": {"backup": {"schedule": "0 3 * * *"}},
    "external-database": {"database": {"external": {"secretName": "shop-postgres"}}},
    "catalog-scaled-to-zero": {"catalog": {"replicas": 0, "autoscaling": {"enabled": False}}},
    "paused": {"paused": True},
}


@dataclass(frozen=True)
class Query:
    """One expression that reads metrics, and where it comes from (for the failure message)."""

    source: str
    expr: str
    grafana: bool = False

    def names(self) -> set[str]:
        """The metric names it selects."""
        return grafana_query_names(self.expr) if self.grafana else metric_names(self.expr)


# --- the queries -------------------------------------------------------------------------


def dashboard_queries() -> list[Query]:
    """Every panel query and variable query of every dashboard the chart ships."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        pending = list(dashboard.get("panels") or [])
        while pending:
            panel = pending.pop()
            pending.extend(panel.get("panels") or [])
            for target in panel.get("targets") or []:
                queries.append(Query(f"{path.name}: panel {panel['title']!r}", target["expr"]))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                query = variable["query"]
                text = query["query"] if isinstance(query, dict) else query
                queries.append(Query(f"{path.name}: ${variable['name']}", text, grafana=True))
    return queries


def rule_queries(source: str, rule_groups: list[dict[str, Any]]) -> list[Query]:
    """The expression of every alerting and recording rule."""
    return [
        Query(f"{source}: {rule.get('alert') or rule.get('record')}", rule["expr"])
        for group in rule_groups
        for rule in group["rules"]
    ]


def recorded_names(rule_groups: list[dict[str, Any]]) -> set[str]:
    """Series that recording rules make (a rule may read another's result)."""
    return {rule["record"] for group in rule_groups for rule in group["rules"] if "record" in rule}


def chart_rule_groups(directory: pathlib.Path) -> list[dict[str, Any]]:
    """`spec.groups` of the chart's PrometheusRule (metrics.prometheusRule.enabled)."""
    binary = find_helm()
    if binary is None:
        pytest.fail("No helm binary: run `make helm` or set $HELM", pytrace=False)
    return chart_groups(Helm(binary), directory)


def operator_rule_groups() -> dict[str, list[dict[str, Any]]]:
    """`spec.groups` of the PrometheusRule the operator builds, per spec of ALERTING_SPECS."""
    built = {}
    for name, spec in ALERTING_SPECS.items():
        store = bookstore("downtown", NAMESPACE, {**spec, "monitoring": {"enabled": True}})
        rule = build_prometheus_rule(store)
        assert rule is not None, f"no PrometheusRule for spec {name} with monitoring enabled"
        built[name] = rule["spec"]["groups"]
    return built


# --- the processes -----------------------------------------------------------------------


@dataclass
class Service:
    """One service process we started."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: pathlib.Path

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown), SIGKILL if it lingers."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def wait_ready(self) -> None:
        """Until /health/ready answers 200 (migrated, database reachable); fail on exit."""
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited {self.process.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"{self.name} not ready after {READY_SECONDS:.0f}s: {self.tail()}")

    def tail(self) -> str:
        """The end of its log, to explain a failure."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])


def launch_service(name: str, log_dir: pathlib.Path, **settings: str) -> Service:
    """Start `bookstore-<name> serve` of this virtualenv, one worker (as the operator runs
    it); the caller waits for it to be ready."""
    port = free_port()
    env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "API_KEY": API_KEY}
    env |= {"WORKERS": "1", "LOG_LEVEL": "warning", "SAMPLE_DATA": "false", **settings}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = log_dir / f"{name}.log"
    script = pathlib.Path(sys.executable).with_name(f"bookstore-{name}")
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(script), "serve"], env=env, stdout=output, stderr=subprocess.STDOUT
        )
    return Service(name, process, f"http://127.0.0.1:{port}", log)


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database for catalog and one for orders, dropped at the end."""
    names = {svc: f"test_series_{svc}_{uuid.uuid4().hex[:8]}" for svc in ("catalog", "orders")}
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        for name in names.values():
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = ADMIN_DATABASE_URL.rsplit("/", 1)[0]
    yield {svc: f"{base}/{name}" for svc, name in names.items()}
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        for name in names.values():
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            admin.execute(drop.format(sql.Identifier(name)))


def place_order(orders: httpx.Client, book_id: object, quantity: int) -> httpx.Response:
    """POST /orders for `quantity` copies of one book."""
    order = {
        "customer_name": "Ada Lovelace",
        "customer_email": "ada@example.com",
        "items": [{"book_id": book_id, "quantity": quantity}],
    }
    return orders.post("/orders", json=order)


def drive_services(catalog_url: str, orders_url: str) -> None:
    """A book; an order placed, one rejected for stock, and the first one cancelled."""
    headers = {"X-API-Key": API_KEY}
    with (
        httpx.Client(base_url=catalog_url, headers=headers, timeout=10) as catalog,
        httpx.Client(base_url=orders_url, headers=headers, timeout=10) as orders,
    ):
        book = {"title": "Series", "author": "Test", "isbn": "9780306406157", "price": "9.90"}
        created = catalog.post("/books", json={**book, "quantity": 2})
        assert created.status_code == 201, created.text
        book_id = created.json()["id"]
        placed = place_order(orders, book_id, 1)
        assert placed.status_code == 201, placed.text
        rejected = place_order(orders, book_id, 5)
        assert rejected.status_code == 409, rejected.text
        cancelled = orders.post(f"/orders/{placed.json()['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert catalog.get(f"/books/{book_id}").json()["quantity"] == 2


async def scrape(url: str, *, containing: str = "") -> str | None:
    """The body of a 200 answer that holds `containing`, else None (not serving it yet)."""
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            response = await client.get(url)
    except httpx.TransportError:
        return None
    ok = response.status_code == 200 and containing in response.text
    return response.text if ok else None


async def run_operator(work: pathlib.Path) -> str:
    """Run `bookstore-operator --metrics-port` until it reconciled a Bookstore to Ready; its
    /metrics then."""
    async with serving(Emulator()) as emulator:
        kubeconfig = work / "kubeconfig"
        write_kubeconfig(kubeconfig, str(emulator.url).rstrip("/"))
        port = free_port()
        env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
        env.pop("KUBERNETES_SERVICE_HOST", None)  # never take the in-cluster path here
        log = (work / "operator.log").open("wb")
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bookstore_operator",
            "--standalone", "--namespace", NAMESPACE, "--liveness-port", "0",
            "--metrics-port", str(port), "--log-format", "plain",
            env=env, stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/metrics"
        try:
            await eventually(lambda: scrape(url), what="the operator's /metrics")
            await create_bookstore(emulator, "downtown")
            await mark_workloads_ready(emulator, "downtown")
            await wait_ready(emulator, "downtown")
            # A hand edit, so that the drift repair counter has a sample (and its labels).
            await api(emulator, "PATCH", f"{DEPLOYMENTS}/downtown-orders", HAND_EDIT, merge=True)
            exposition: str = await eventually(
                lambda: scrape(url, containing=REPAIRED), what="the drift repair counted"
            )
        except pytest.fail.Exception as failure:
            tail = (work / "operator.log").read_text(errors="replace").splitlines()[-20:]
            pytest.fail(f"{failure}\nthe operator's log ends:\n" + "\n".join(tail))
        finally:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
            log.close()
        return exposition


@pytest.fixture(scope="module")
def scraped(
    databases: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """/metrics of catalog and orders after real traffic, and of the operator after it
    reconciled a Bookstore to Ready, by process. The services start while the operator runs."""
    work = tmp_path_factory.mktemp("processes")
    started: list[Service] = []
    try:
        catalog = launch_service("catalog", work, DATABASE_URL=databases["catalog"])
        started.append(catalog)
        orders = launch_service(
            "orders", work, DATABASE_URL=databases["orders"], CATALOG_URL=catalog.url
        )
        started.append(orders)
        operator = asyncio.run(run_operator(work))
        for service in started:
            service.wait_ready()
        drive_services(catalog.url, orders.url)
        services = {service.name: httpx.get(f"{service.url}/metrics").text for service in started}
        yield {**services, "operator": operator}
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="module")
def exported(scraped: dict[str, str]) -> dict[str, set[str]]:
    """Queryable series name -> the processes that export it."""
    found: dict[str, set[str]] = {}
    for process, exposition in scraped.items():
        for series in queryable_series(exposed_families(exposition)):
            found.setdefault(series, set()).add(process)
    return found


@pytest.fixture(scope="module")
def sample_labels(scraped: dict[str, str]) -> dict[str, set[str]]:
    """Series name -> every label name its samples carry, across the processes."""
    found: dict[str, set[str]] = {}
    for exposition in scraped.values():
        for family in text_string_to_metric_families(exposition):
            for sample in family.samples:
                found.setdefault(sample.name, set()).update(sample.labels)
    return found


# --- the checks --------------------------------------------------------------------------


def missing(queries: list[Query], exported: dict[str, set[str]], extra: set[str]) -> list[str]:
    """One line per metric name a query reads that no process exports."""
    known = set(exported) | PROMETHEUS_OWN | extra
    lines = []
    for query in queries:
        try:
            names = query.names()
        except PromQLSyntaxError as error:
            lines.append(f"{query.source}: unreadable: {error}")
            continue
        lines += [f"{query.source}: {name}" for name in sorted(names - known)]
    return lines


def test_the_processes_export_what_the_traffic_and_the_reconcile_made(
    scraped: dict[str, str],
) -> None:
    catalog, orders, operator = scraped["catalog"], scraped["orders"], scraped["operator"]
    assert 'bookstore_catalog_http_requests_total{method="POST",route="/books"' in catalog
    assert "bookstore_catalog_stock_reservations_total 1.0" in catalog
    assert "bookstore_catalog_stock_reservations_released_total 1.0" in catalog
    assert "bookstore_orders_placed_total 1.0" in orders
    assert "bookstore_orders_cancelled_total 1.0" in orders
    assert "bookstore_orders_rejected_total{" in orders
    assert 'bookstore_operator_reconciles_total{kind="Bookstore",result="ok"}' in operator
    assert 'bookstore="downtown"' in operator
    assert REPAIRED in operator


def test_every_series_the_dashboard_queries_is_exported(exported: dict[str, set[str]]) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20, "the chart ships no dashboard queries"
    absent = missing(queries, exported, set())
    assert not absent, "the dashboard queries series no process exports:\n" + "\n".join(absent)


def test_every_series_the_charts_alerts_query_is_exported(
    exported: dict[str, set[str]], tmp_path: pathlib.Path
) -> None:
    groups = chart_rule_groups(tmp_path)
    queries = rule_queries("chart PrometheusRule", groups)
    assert queries, "the chart's PrometheusRule holds no rules"
    absent = missing(queries, exported, recorded_names(groups))
    assert not absent, "the chart's alerts query series no process exports:\n" + "\n".join(absent)


def test_every_series_the_operator_built_alerts_query_is_exported(
    exported: dict[str, set[str]],
) -> None:
    queries, recorded = [], set()
    for spec, groups in operator_rule_groups().items():
        queries += rule_queries(f"Bookstore PrometheusRule ({spec})", groups)
        recorded |= recorded_names(groups)
    alerts = {query.source.rsplit(": ", 1)[1] for query in queries}
    assert {"BookstoreNotReady", "CatalogDown", "BackupsFailing"} <= alerts
    absent = missing(queries, exported, recorded)
    assert not absent, "the Bookstore's alerts query series no process exports:\n" + "\n".join(
        absent
    )


def all_queries(tmp_path: pathlib.Path) -> tuple[list[Query], set[str]]:
    """The dashboard's, the chart's and the operator-built rules' queries; recorded series."""
    chart = chart_rule_groups(tmp_path)
    queries = dashboard_queries() + rule_queries("chart PrometheusRule", chart)
    recorded = recorded_names(chart)
    for spec, groups in operator_rule_groups().items():
        queries += rule_queries(f"Bookstore PrometheusRule ({spec})", groups)
        recorded |= recorded_names(groups)
    return queries, recorded


def test_every_label_the_queries_use_is_on_the_series_they_read(
    sample_labels: dict[str, set[str]], tmp_path: pathlib.Path
) -> None:
    queries, recorded = all_queries(tmp_path)
    wrong = []
    for query in queries:
        if query.grafana:
            continue  # label_values(expr, label): the label is checked through the panels
        names = metric_names(query.expr) - PROMETHEUS_OWN - recorded
        unsampled = sorted(name for name in names if name not in sample_labels)
        assert not unsampled, f"{query.source}: no sample shows the labels of {unsampled}"
        carried = TARGET_LABELS.union(*(sample_labels[name] for name in names))
        if unknown := label_names(query.expr) - carried:
            wrong.append(f"{query.source}: {sorted(unknown)} not on {sorted(names)}")
    assert not wrong, "queries use labels their series do not carry:\n" + "\n".join(wrong)


# --- the reader of metric names ----------------------------------------------------------

READER_CASES = {
    "functions-durations-grouping": (
        "histogram_quantile(0.99, sum by (le, route) (rate(a_seconds_bucket[5m])))",
        {"a_seconds_bucket"},
    ),
    "grouping-after-argument": ("sum(rate(b_total[1m])) by (reason)", {"b_total"}),
    "strings-and-matchers": (
        'c{route!~"/health/.*|x{y}", status=~"5.."} / ignoring(status) group_left d',
        {"c", "d"},
    ),
    "name-matcher": ('{__name__="e_total", job="x"}', {"e_total"}),
    "subquery-offset-at": (
        "max_over_time(f[1h:5m] offset -5m) > bool 1e3 and g @ start()",
        {"f", "g"},
    ),
    "absent-or": ('sum(up{component="catalog"}) == 0\nor\nabsent(up{component="catalog"})', {"up"}),
    "grafana-variables": (
        'sum(rate(h_total{namespace="$namespace", bookstore=~"${bookstore}"}[$__rate_interval]))',
        {"h_total"},
    ),
    "label-replace-and-numbers": (
        'label_replace(i, "dst", "$1", "src", "(.*)") * -Inf + 0x1f',
        {"i"},
    ),
    "recording-rule-name": ("sum(job:j_total:rate5m) # a comment naming k", {"job:j_total:rate5m"}),
}


@pytest.mark.parametrize(("expr", "names"), READER_CASES.values(), ids=READER_CASES.keys())
def test_reader_finds_exactly_the_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_reader_finds_the_labels_matched_and_grouped_by() -> None:
    expr = (
        'sum by (le, route) (rate(a_bucket{status=~"5..", x!="}, y=z", __name__="a_bucket"}'
        "[5m])) / on (instance) group_left (pod) max without (job) (b)"
    )
    assert label_names(expr) == {"le", "route", "status", "x", "instance", "pod", "job"}


def test_reader_refuses_an_unknown_function_rather_than_guess() -> None:
    with pytest.raises(PromQLSyntaxError, match="rtae"):
        metric_names("rtae(a_total[5m])")


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ('label_values(a_total{namespace="$namespace"}, bookstore)', {"a_total"}),
        ("label_values(namespace)", set()),
        ("query_result(topk(5, b))", {"b"}),
        ("metrics(bookstore_.*)", set()),
    ],
)
def test_reader_understands_grafana_variable_queries(query: str, names: set[str]) -> None:
    assert grafana_query_names(query) == names


def test_histograms_are_queried_by_bucket_sum_and_count_never_by_their_bare_name() -> None:
    exposition = "\n".join(
        [
            "# HELP a_seconds Latency.",
            "# TYPE a_seconds histogram",
            'a_seconds_bucket{le="+Inf"} 1.0',
            "# HELP b_total Things, none counted yet (a labelled counter).",
            "# TYPE b_total counter",
            "# TYPE c gauge",
            "c 1.0",
        ]
    )
    families = exposed_families(exposition)
    assert families == {"a_seconds": "histogram", "b_total": "counter", "c": "gauge"}
    assert queryable_series(families) == {
        "a_seconds_bucket",
        "a_seconds_sum",
        "a_seconds_count",
        "b_total",
        "c",
    }


def test_the_check_names_each_unexported_or_unreadable_query() -> None:
    queries = [
        Query("panel A", 'sum(rate(a_total[5m])) / sum(rate(gone_total{x="y"}[5m]))'),
        Query("alert B", "up == 0 or job:a:rate5m > 1"),
        Query("panel C", "rtae(a_total[5m])"),
        Query("$bookstore", "label_values(also_gone, bookstore)", grafana=True),
    ]
    found = missing(queries, {"a_total": {"catalog"}}, {"job:a:rate5m"})
    assert found[0] == "panel A: gone_total"
    assert found[1].startswith("panel C: unreadable: unknown function 'rtae'")
    assert found[2:] == ["$bookstore: also_gone"]
