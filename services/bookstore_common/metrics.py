"""Prometheus metrics: each service's HTTP request metrics and the `/metrics` endpoint.

Every service metric is named `bookstore_<component>_...` (component: catalog or orders),
with the unit as a suffix and `_total` on counters. The services put no `bookstore` or
`namespace` labels on them: Prometheus adds `namespace` and `pod` when it scrapes, and the
PodMonitor copies the pod's instance and component labels to `bookstore` and `component`.

With several uvicorn workers, the CLI points PROMETHEUS_MULTIPROC_DIR at a fresh directory
under /tmp before the workers start, so every worker writes its samples there and
`/metrics` aggregates all of them. prometheus_client picks its storage when it is first
imported, so a worker's metrics go to that directory only if the variable is set before
the worker imports it (uvicorn spawns fresh interpreters: they inherit it).
"""

from __future__ import annotations

import functools
import itertools
import os
import re
from collections.abc import Iterable

from fastapi import APIRouter
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from starlette.responses import Response

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
HTTP_LABELS = ("method", "route", "status")
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_COMPONENT = re.compile(r"[a-z][a-z0-9_]*")
_HTTP_LABELS_HELP = (
    "method: the HTTP method (OTHER for a nonstandard one); route: the path template of "
    "the matched route, never the raw path (<unmatched> when no route matched); status: "
    "the response status code"
)

# `_created` series double the output and nobody graphs them.
disable_created_metrics()  # type: ignore[no-untyped-call]


def metric_prefix(component: str) -> str:
    """`bookstore_<component>`, the start of every metric name of that service."""
    if not _COMPONENT.fullmatch(component):
        raise ValueError(f"a component is a lower-case identifier, not {component!r}")
    return f"bookstore_{component}"


class HttpMetrics:
    """One service's request counter and latency histogram, and their labelled series."""

    def __init__(self, component: str) -> None:
        prefix = metric_prefix(component)
        self.requests = Counter(
            f"{prefix}_http_requests_total",
            f"HTTP requests {component} answered. {_HTTP_LABELS_HELP}.",
            HTTP_LABELS,
        )
        self.duration = Histogram(
            f"{prefix}_http_request_duration_seconds",
            f"Time {component} took to answer an HTTP request, in seconds, from the request "
            f"reaching the app to the end of the response. {_HTTP_LABELS_HELP}.",
            HTTP_LABELS,
            buckets=HTTP_BUCKETS,
        )
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record how long it took.

        labels() takes a lock and builds a key, so each label set's children are kept;
        bounded: methods, route templates and status codes are finite sets.
        """
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            labels = (method, route, str(status))
            series = self.requests.labels(*labels), self.duration.labels(*labels)
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)


@functools.cache
def http_metrics(component: str) -> HttpMetrics:
    """The HTTP metrics of `component`, created on first use and shared after (one set per
    process: a metric name can be registered only once)."""
    return HttpMetrics(component)


def preinitialise(metric: Counter | Histogram, *label_sets: Iterable[str]) -> None:
    """Create `metric`'s series for every combination of the known label values, so they
    are exported at 0 from the start: rate() and alerts then see 0 instead of nothing."""
    for labels in itertools.product(*label_sets):
        metric.labels(*labels)


def render_metrics() -> bytes:
    """Render every metric of this process, or of all workers in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text exposition of the service's metrics."""
    return Response(render_metrics(), media_type=CONTENT_TYPE_LATEST)
