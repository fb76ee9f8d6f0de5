"""The operator's Prometheus metrics (issue 13): defined here, served on --metrics-port.

The lowest import layer: every operator module records here, and it imports nothing of ours.
One registry per process (ours, plus the process, platform and GC collectors), served from a
thread of its own (`serve`), so a scrape never runs on kopf's event loop and a standby replica
serves its metrics too. The per-Bookstore gauges are computed at scrape time from one map of
the last status seen per Bookstore (`BookstoreStates`), so the phase counts are exact and a
deleted Bookstore's series go with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

KINDS = ("Bookstore", "BookstoreBackup")
RESULTS = ("ok", "retry", "permanent")
# status.phase of a Bookstore; each is exported (0 when none is in it) so queries find them.
PHASES = ("Pending", "Progressing", "Ready", "Degraded", "Failed")
# A reconcile takes tens of milliseconds to seconds; an API call's read timeout is 30 s.
RECONCILE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# Waiting behind one reconcile of the same Bookstore: nothing to seconds.
LOCK_WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
NO_RESPONSE = "error"

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    # The same collectors prometheus_client puts in its default registry (process_*, python_*).
    REGISTRY.register(_collector)

RECONCILES = Counter(
    "bookstore_operator_reconciles",
    "Reconciles finished, by the kind reconciled and result: ok, retry (kopf tries again after"
    " a delay: a conflict, 5xx, missing input) or permanent (a spec that can never work).",
    ["kind", "result"],
    registry=REGISTRY,
)
RECONCILE_DURATION = Histogram(
    "bookstore_operator_reconcile_duration_seconds",
    "Time one reconcile took, whatever its result (waiting for the lock not included).",
    ["kind"],
    buckets=RECONCILE_BUCKETS,
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "bookstore_operator_api_requests",
    "Kubernetes API requests the operator's reconciles made, by verb, kind and HTTP status"
    ' code ("error": no response, e.g. a timeout). kopf\'s own watches, event posts and'
    " peering are not counted.",
    ["verb", "kind", "code"],
    registry=REGISTRY,
)
DRIFT_REPAIRS = Counter(
    "bookstore_operator_drift_repairs",
    "Children restored because someone changed them, by the child's kind: re-applied because"
    " the live object no longer held what the operator had applied (edited), or recreated"
    " after this process had seen it (deleted). Making a child for the first time is not"
    " counted.",
    ["kind"],
    registry=REGISTRY,
)
LOCK_WAIT = Histogram(
    "bookstore_operator_lock_wait_seconds",
    "Time a trigger (an event, a timer) waited for its Bookstore's lock before reconciling.",
    buckets=LOCK_WAIT_BUCKETS,
    registry=REGISTRY,
)
for _kind in KINDS:
    RECONCILE_DURATION.labels(kind=_kind)
    for _result in RESULTS:
        RECONCILES.labels(kind=_kind, result=_result)  # 0, not absent: rate() sees the first


def reconciled(kind: str, result: str, seconds: float) -> None:
    """Count one finished reconcile of `kind` and how long it took."""
    RECONCILES.labels(kind=kind, result=result).inc()
    RECONCILE_DURATION.labels(kind=kind).observe(seconds)


def api_request(verb: str, kind: str, status: int | None) -> None:
    """Count one API request; `status` None or 0 when no HTTP response came back."""
    code = str(status) if status else NO_RESPONSE
    API_REQUESTS.labels(verb=verb, kind=kind, code=code).inc()


def drift_repaired(kind: str) -> None:
    """Count one child of `kind` re-applied because it had drifted."""
    DRIFT_REPAIRS.labels(kind=kind).inc()


class BookstoreStates(Collector):
    """The last status seen per Bookstore, exported as the phase counts and condition gauges.

    Only what this process saw within `max_age` seconds is exported: an active operator sees
    every Bookstore at least once per resync, while a replica that lost the peering stops
    reconciling, so its last values age out instead of contradicting the active one's.
    """

    def __init__(
        self, max_age: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lock = threading.Lock()  # written from the event loop, read by the scrape thread
        self._phases: dict[tuple[str, str], str] = {}
        self._conditions: dict[tuple[str, str], dict[str, float]] = {}
        self._seen: dict[tuple[str, str], float] = {}
        self.max_age = max_age
        self._clock = clock

    def observe(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        """Remember a Bookstore's status (no phase yet: Pending)."""
        conditions = {
            str(item["type"]): 1.0 if item.get("status") == "True" else 0.0
            for item in status.get("conditions") or []
            if isinstance(item, Mapping) and item.get("type")
        }
        with self._lock:
            self._phases[(namespace, name)] = str(status.get("phase") or "Pending")
            self._conditions[(namespace, name)] = conditions
            self._seen[(namespace, name)] = self._clock()

    def forget(self, namespace: str, name: str) -> None:
        """The Bookstore is gone: drop its series."""
        with self._lock:
            self._phases.pop((namespace, name), None)
            self._conditions.pop((namespace, name), None)
            self._seen.pop((namespace, name), None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            oldest = None if self.max_age is None else self._clock() - self.max_age
            fresh = [key for key, seen in self._seen.items() if oldest is None or seen >= oldest]
            phases = [self._phases[key] for key in fresh]
            conditions = {key: dict(self._conditions[key]) for key in fresh}
        counts = GaugeMetricFamily(
            "bookstore_operator_bookstores",
            "Bookstores this operator reconciled within the last 2.5 resync periods, by"
            " status.phase.",
            labels=["phase"],
        )
        for phase in sorted({*PHASES, *phases}, key=_phase_order):
            counts.add_metric([phase], phases.count(phase))
        yield counts
        gauge = GaugeMetricFamily(
            "bookstore_operator_bookstore_condition",
            "1 when the Bookstore's status condition is True, else 0; gone with the Bookstore.",
            labels=["namespace", "bookstore", "condition"],
        )
        for (namespace, name), values in sorted(conditions.items()):
            for condition, value in sorted(values.items()):
                gauge.add_metric([namespace, name, condition], value)
        yield gauge


def _phase_order(phase: str) -> tuple[int, str]:
    return (PHASES.index(phase) if phase in PHASES else len(PHASES), phase)


BOOKSTORES = BookstoreStates()
REGISTRY.register(BOOKSTORES)


def serve(port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from outside
    """Serve /metrics of REGISTRY on `port` from a daemon thread; OSError when it is taken."""
    start_http_server(port, addr=address, registry=REGISTRY)
