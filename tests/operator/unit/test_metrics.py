"""The operator's metrics: names and labels issue 13 fixes, exact phase counts, labelled calls."""

from __future__ import annotations

import asyncio
import socket

import kopf
import pytest
from bookstore_operator import metrics
from bookstore_operator.client import Kube, request_labels
from bookstore_operator.errors import classify, outcome
from bookstore_operator.triggers import KeyedLock
from kubernetes.client.exceptions import ApiException
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

FIXED = {
    "bookstore_operator_reconciles": ("counter", {"kind", "result"}),
    "bookstore_operator_reconcile_duration_seconds": ("histogram", {"kind"}),
    "bookstore_operator_api_requests": ("counter", {"verb", "kind", "code"}),
    "bookstore_operator_drift_repairs": ("counter", {"kind"}),
    "bookstore_operator_bookstores": ("gauge", {"phase"}),
    "bookstore_operator_bookstore_condition": ("gauge", {"namespace", "bookstore", "condition"}),
    "bookstore_operator_lock_wait_seconds": ("histogram", set()),
}


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_fixed_metric_is_exported_with_its_type_and_labels() -> None:
    metrics.api_request("get", "Deployment", 200)
    metrics.drift_repaired("Service")
    ready = {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    metrics.BOOKSTORES.observe("unit", "labels", ready)
    try:
        exposition = generate_latest(metrics.REGISTRY).decode()
    finally:
        metrics.BOOKSTORES.forget("unit", "labels")
    families = {family.name: family for family in text_string_to_metric_families(exposition)}

    for name, (kind, labels) in FIXED.items():
        family = families[name]
        assert family.type == kind, name
        assert family.documentation, name
        own = {
            label
            for sample in family.samples
            if not sample.name.endswith("_created")
            for label in sample.labels
            if label != "le"
        }
        assert own == labels, name
    assert "process_cpu_seconds_total" in exposition


def test_reconcile_results_exist_at_zero_before_the_first_reconcile() -> None:
    exposition = generate_latest(metrics.REGISTRY).decode()
    for kind in ("Bookstore", "BookstoreBackup"):
        for result in ("ok", "retry", "permanent"):
            series = f'bookstore_operator_reconciles_total{{kind="{kind}",result="{result}"}}'
            assert series in exposition


def test_a_reconcile_is_counted_by_result_and_timed() -> None:
    before = sample("bookstore_operator_reconciles_total", kind="Bookstore", result="retry")
    timed = sample("bookstore_operator_reconcile_duration_seconds_count", kind="Bookstore")
    seconds = sample("bookstore_operator_reconcile_duration_seconds_sum", kind="Bookstore")

    metrics.reconciled("Bookstore", "retry", 0.75)

    assert (
        sample("bookstore_operator_reconciles_total", kind="Bookstore", result="retry")
        == before + 1
    )
    assert (
        sample("bookstore_operator_reconcile_duration_seconds_count", kind="Bookstore") == timed + 1
    )
    assert sample(
        "bookstore_operator_reconcile_duration_seconds_sum", kind="Bookstore"
    ) == pytest.approx(seconds + 0.75)


@pytest.mark.parametrize(
    ("verdict", "result"),
    [
        (kopf.PermanentError("bad spec"), "permanent"),
        (kopf.TemporaryError("later", delay=1), "retry"),
        (classify(ApiException(status=409, reason="Conflict")), "retry"),
        (classify(ApiException(status=422, reason="Invalid")), "permanent"),
    ],
)
def test_a_failed_reconcile_is_permanent_or_retry_as_classified(
    verdict: kopf.PermanentError | kopf.TemporaryError, result: str
) -> None:
    assert outcome(verdict) == result


def test_phase_counts_come_from_the_last_status_of_each_bookstore() -> None:
    states = metrics.BookstoreStates()
    ready = {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    states.observe("shop", "a", ready)
    states.observe("shop", "b", ready)
    states.observe("shop", "a", {"phase": "Degraded", "conditions": []})  # a moved on
    states.observe("shop", "a", {"phase": "Degraded", "conditions": []})  # seen again
    states.observe("shop", "c", {})  # no status yet

    assert phase_counts(states) == {
        "Pending": 1,
        "Progressing": 0,
        "Ready": 1,
        "Degraded": 1,
        "Failed": 0,
    }


def test_condition_gauge_is_one_for_true_zero_otherwise_and_goes_with_the_bookstore() -> None:
    states = metrics.BookstoreStates()
    conditions = [
        {"type": "Ready", "status": "False"},
        {"type": "DatabaseReady", "status": "True"},
        {"type": "LastBackupSucceeded", "status": "Unknown"},
    ]
    states.observe("shop", "downtown", {"phase": "Progressing", "conditions": conditions})
    states.observe("other", "uptown", {"phase": "Ready", "conditions": [conditions[1]]})

    gauge = collected(states, "bookstore_operator_bookstore_condition")
    assert {(s.labels["bookstore"], s.labels["condition"]): s.value for s in gauge} == {
        ("downtown", "Ready"): 0.0,
        ("downtown", "DatabaseReady"): 1.0,
        ("downtown", "LastBackupSucceeded"): 0.0,
        ("uptown", "DatabaseReady"): 1.0,
    }

    states.forget("shop", "downtown")

    gauge = collected(states, "bookstore_operator_bookstore_condition")
    assert [(s.labels["namespace"], s.labels["bookstore"]) for s in gauge] == [("other", "uptown")]
    counts = phase_counts(states)
    assert counts["Progressing"] == 0
    assert counts["Ready"] == 1


def test_a_bookstore_not_seen_within_max_age_is_no_longer_exported() -> None:
    now = [1000.0]
    states = metrics.BookstoreStates(max_age=600.0, clock=lambda: now[0])
    ready = {"phase": "Ready", "conditions": [{"type": "Ready", "status": "True"}]}
    states.observe("shop", "downtown", ready)
    now[0] += 300.0
    states.observe("shop", "uptown", ready)

    now[0] += 301.0  # downtown last seen 601 s ago: this replica stopped reconciling it
    gauge = collected(states, "bookstore_operator_bookstore_condition")
    assert [s.labels["bookstore"] for s in gauge] == ["uptown"]
    assert phase_counts(states)["Ready"] == 1

    states.observe("shop", "downtown", ready)  # seen again (this replica leads again)
    assert phase_counts(states)["Ready"] == 2


def collected(states: metrics.BookstoreStates, name: str) -> list[Sample]:
    families = [family for family in states.collect() if family.name == name]
    return [sample for family in families for sample in family.samples]


def phase_counts(states: metrics.BookstoreStates) -> dict[str, float]:
    return {s.labels["phase"]: s.value for s in collected(states, "bookstore_operator_bookstores")}


@pytest.mark.parametrize(
    ("method", "path", "content_type", "labels"),
    [
        ("GET", "/api/v1/namespaces/shop/secrets/downtown-db", "", ("get", "Secret")),
        ("GET", "/api/v1/namespaces/shop/pods", "", ("list", "Pod")),
        ("GET", "/api/v1/namespaces/shop/pods/p-1/log", "", ("get", "Pod")),
        ("POST", "/api/v1/namespaces/shop/secrets", "application/json", ("create", "Secret")),
        (
            "PATCH",
            "/apis/apps/v1/namespaces/shop/deployments/downtown-orders",
            "application/apply-patch+yaml",
            ("apply", "Deployment"),
        ),
        (
            "PATCH",
            "/apis/bookstore.dev/v1alpha1/namespaces/shop/bookstores/downtown/status",
            "application/merge-patch+json",
            ("patch", "Bookstore"),
        ),
        ("DELETE", "/apis/batch/v1/namespaces/shop/jobs/j", "", ("delete", "Job")),
        (
            "GET",
            "/apis/kopf.dev/v1/clusterkopfpeerings/bookstore-operator",
            "",
            ("get", "clusterkopfpeerings"),
        ),
    ],
)
def test_a_request_is_labelled_with_its_rbac_verb_and_kind(
    method: str, path: str, content_type: str, labels: tuple[str, str]
) -> None:
    assert request_labels(method, path, content_type) == labels


async def test_a_request_without_any_response_counts_code_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on: the connection is refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kube = Kube.for_host(f"http://127.0.0.1:{port}")
    labels = {"verb": "get", "kind": "ConfigMap", "code": "error"}
    before = sample("bookstore_operator_api_requests_total", **labels)
    try:
        with pytest.raises(Exception):  # noqa: B017, PT011 - urllib3's, after its retries
            await kube.get("v1", "ConfigMap", "shop", "nowhere")
    finally:
        kube.close()
    assert sample("bookstore_operator_api_requests_total", **labels) == before + 1


async def test_lock_wait_is_the_time_from_asking_to_holding() -> None:
    waits: list[float] = []
    locks = KeyedLock[str](observe_wait=waits.append)
    holding = asyncio.Event()
    release = asyncio.Event()

    async def first() -> None:
        async with locks.hold("shop/downtown"):
            holding.set()
            await release.wait()

    async def second() -> None:
        async with locks.hold("shop/downtown"):
            pass

    task = asyncio.create_task(first())
    await holding.wait()
    waiter = asyncio.create_task(second())
    await asyncio.sleep(0.05)
    assert len(waits) == 1  # the second one asked and is still waiting: not observed yet
    release.set()
    await asyncio.gather(task, waiter)

    assert len(waits) == 2
    assert waits[0] < waits[1]  # the second waited for the first to let go
    assert "shop/downtown" not in locks
