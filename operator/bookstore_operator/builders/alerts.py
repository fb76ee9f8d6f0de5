"""The alerts of one Bookstore: the `spec.groups` of the PrometheusRule the operator creates.

Symptom-based: each alert says what a customer or an operator of the store would notice (the
store not Ready, orders failing or slow, catalog gone, the database down, backups failing), never
a cause. Every expression is scoped to this Bookstore by `namespace` and `bookstore` matchers, and
reads only the services' series (the PodMonitor relabels the pods' `app.kubernetes.io/instance`
to `bookstore` and `app.kubernetes.io/component` to `component`), the operator's
`bookstore_operator_bookstore_condition` gauge and Prometheus's own `up`.

Series are aggregated away from `pod`/`instance`/`job`, so an operator or service pod that is
replaced keeps the alert's `for` clock running instead of starting a new alert.
"""

from __future__ import annotations

from typing import Any, Final

from bookstore_operator.models import Bookstore

RUNBOOK_BASE_URL: Final = (
    "https://github.com/bookstore-operator/bookstore-operator/blob/main/docs/runbooks"
)
ALERT_NAMES: Final = (
    "BookstoreNotReady",
    "OrdersFailingHigh",
    "OrdersLatencyHigh",
    "CatalogDown",
    "DatabaseNotReady",
    "BackupsFailing",
)

# Thresholds (documented in the runbooks and the README's alerts table).
NOT_READY_FOR: Final = "10m"
ORDERS_ERROR_RATIO: Final = 0.05  # 5 % of orders' answers are 5xx (503 included)...
ORDERS_FAILING_FOR: Final = "5m"
# ...and only with enough traffic to mean something: 0.1 request/s is 30 requests in 5 minutes.
ORDERS_MIN_REQUEST_RATE: Final = 0.1
ORDERS_P99_SECONDS: Final = 1.0  # a bucket bound of the services' histogram: an exact cut
ORDERS_LATENCY_FOR: Final = "10m"
CATALOG_DOWN_FOR: Final = "5m"
DATABASE_NOT_READY_FOR: Final = "5m"
BACKUPS_FAILING_FOR: Final = "10m"
WINDOW: Final = "5m"
# Kubelet probes and scrapes are not customers: a not-ready pod's /health/ready answers 503.
NOT_CUSTOMER_ROUTES: Final = "/health/.*|/metrics"


def runbook_url(alert: str) -> str:
    """The runbook of an alert: docs/runbooks/<alert>.md in this repository."""
    return f"{RUNBOOK_BASE_URL}/{alert}.md"


def promql_string(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly `value`."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def _selector(store: Bookstore, *extra: str) -> str:
    """`{namespace="<ns>",bookstore="<name>",...}`: this Bookstore's series only."""
    matchers = [
        f"namespace={promql_string(store.namespace)}",
        f"bookstore={promql_string(store.name)}",
        *extra,
    ]
    return "{" + ",".join(matchers) + "}"


def _condition_is_false(store: Bookstore, condition: str) -> str:
    """The operator's condition gauge at 0 (False or Unknown), whichever operator pod says it."""
    gauge = "bookstore_operator_bookstore_condition" + _selector(
        store, f"condition={promql_string(condition)}"
    )
    return f"max by (namespace, bookstore) ({gauge}) == 0"


def _orders_rate(store: Bookstore, *extra: str) -> str:
    selector = _selector(store, f"route!~{promql_string(NOT_CUSTOMER_ROUTES)}", *extra)
    return (
        "sum by (namespace, bookstore) "
        f"(rate(bookstore_orders_http_requests_total{selector}[{WINDOW}]))"
    )


def _with_traffic(store: Bookstore, expression: str) -> str:
    """`expression`, only while orders serve at least ORDERS_MIN_REQUEST_RATE."""
    return f"(\n  {expression}\n)\nand\n{_orders_rate(store)} >= {ORDERS_MIN_REQUEST_RATE:g}"


def _rule(
    alert: str, expr: str, for_: str, severity: str, summary: str, description: str
) -> dict[str, Any]:
    return {
        "alert": alert,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": summary,
            "description": description,
            "runbook_url": runbook_url(alert),
        },
    }


def _catalog_expected(store: Bookstore) -> bool:
    """Whether catalog pods must exist: not scaled to zero on purpose, not paused.

    A paused Bookstore is under manual maintenance, which may scale catalog down; its catalog
    pods that do exist still count (a target down is down).
    """
    catalog = store.spec.catalog
    scaled_to_zero = not catalog.autoscaling.enabled and catalog.replicas == 0
    return not (scaled_to_zero or store.spec.paused)


def _catalog_down(store: Bookstore) -> str:
    up = "up" + _selector(store, 'component="catalog"')
    expression = f"sum by (namespace, bookstore, component) ({up}) == 0"
    if _catalog_expected(store):
        # No target at all: pods gone, unschedulable, or not scraped. absent() takes its labels
        # from the equality matchers, so the alert keeps namespace, bookstore and component.
        expression = f"{expression}\nor\nabsent({up})"
    return expression


def alert_groups(store: Bookstore) -> list[dict[str, Any]]:
    """The `spec.groups` of this Bookstore's PrometheusRule; BackupsFailing only with a schedule."""
    who = f"Bookstore {store.namespace}/{store.name}"
    in_ns = f"-n {store.namespace}"
    why = f"`kubectl bookstore why {store.name} {in_ns}`"
    orders_p99 = (
        "histogram_quantile(0.99, sum by (namespace, bookstore, le) "
        "(rate(bookstore_orders_http_request_duration_seconds_bucket"
        f"{_selector(store, f'route!~{promql_string(NOT_CUSTOMER_ROUTES)}')}[{WINDOW}])))"
    )
    errors = _orders_rate(store, 'status=~"5.."')
    rules = [
        _rule(
            "BookstoreNotReady",
            _condition_is_false(store, "Ready"),
            NOT_READY_FOR,
            "critical",
            f"{who} is not Ready",
            f"The Ready condition of {who} has not been True for {NOT_READY_FOR}: the store may "
            f"not serve its customers. {why} names the child at fault; "
            f"`kubectl describe bookstore {store.name} {in_ns}` shows the conditions and events.",
        ),
        _rule(
            "OrdersFailingHigh",
            _with_traffic(store, f"{errors}\n/\n{_orders_rate(store)}\n> {ORDERS_ERROR_RATIO:g}"),
            ORDERS_FAILING_FOR,
            "critical",
            f"Orders of {who} are failing",
            f"{{{{ $value | humanizePercentage }}}} of the requests to orders of {who} "
            f"answered 5xx (503: catalog unreachable) over {WINDOW}, above "
            f"{ORDERS_ERROR_RATIO:.0%}: customers cannot order. Look at the orders pods' logs "
            f"and at catalog ({why}).",
        ),
        _rule(
            "OrdersLatencyHigh",
            _with_traffic(store, f"{orders_p99}\n> {ORDERS_P99_SECONDS:g}"),
            ORDERS_LATENCY_FOR,
            "warning",
            f"Orders of {who} are slow",
            f"The 99th percentile of orders' response time of {who} is "
            f"{{{{ $value | humanizeDuration }}}} over {WINDOW}, above {ORDERS_P99_SECONDS:g}s: "
            "catalog or the database answers slowly, or the pods are starved of CPU.",
        ),
        _rule(
            "CatalogDown",
            _catalog_down(store),
            CATALOG_DOWN_FOR,
            "critical",
            f"Catalog of {who} is down",
            f"No catalog pod of {who} has answered Prometheus's scrape for {CATALOG_DOWN_FOR}: "
            f"books cannot be read and orders answer 503. {why} names the pods and their state.",
        ),
        _rule(
            "DatabaseNotReady",
            _condition_is_false(store, "DatabaseReady"),
            DATABASE_NOT_READY_FOR,
            "critical",
            f"Database of {who} is not ready",
            f"The DatabaseReady condition of {who} has not been True for "
            f"{DATABASE_NOT_READY_FOR}: catalog and orders cannot read or write. "
            f"{why} shows the PostgreSQL pod (or the external database's Secret) at fault.",
        ),
    ]
    if store.spec.backup.schedule:
        rules.append(
            _rule(
                "BackupsFailing",
                _condition_is_false(store, "LastBackupSucceeded"),
                BACKUPS_FAILING_FOR,
                "warning",
                f"Backups of {who} are failing",
                f"The newest backup of {who} failed, or none succeeded for two periods of "
                f"the schedule `{store.spec.backup.schedule}`, or the schedule is invalid "
                "(condition LastBackupSucceeded False). "
                f"`kubectl get bookstorebackups {in_ns} -l bookstore.dev/bookstore={store.name}` "
                "lists them; the newest Failed one's status.message says why.",
            )
        )
    return [{"name": f"bookstore.{store.namespace}.{store.name}", "rules": rules}]
