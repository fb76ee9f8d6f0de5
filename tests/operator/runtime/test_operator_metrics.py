"""The operator's metrics move with what it does: reconciles, faults, repairs, status, deletion.

The metrics live in this process's registry, which earlier tests wrote to too: every check
is a difference from a reading taken before the action, or a series of this test's Bookstore.
"""

from __future__ import annotations

import pathlib
import socket
from collections.abc import AsyncIterator

import aiohttp.web
import pytest
from bookstore_operator import metrics
from bookstore_operator.__main__ import parse_args
from prometheus_client.parser import text_string_to_metric_families

from tests.operator.runtime.conftest import (
    BOOKSTORES,
    NAMESPACE,
    Operator,
    api,
    bookstore,
    create_bookstore,
    eventually,
    mark_workloads_ready,
    serving,
    wait_ready,
)
from tests.operator.runtime.test_cli import free_port, run_to_exit
from tests.operator.runtime.test_peering import (
    NAME,
    create_peering,
    operator_env,
    peers,
    running,
    serve_one_bookstore,
)
from tests.operator.runtime.test_refusals import Refusal, RefusingEmulator

DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
HPAS = "autoscaling/v2/horizontalpodautoscalers"
REPAIRS = "bookstore_operator_drift_repairs_total"
RECONCILES = "bookstore_operator_reconciles_total"
API_REQUESTS = "bookstore_operator_api_requests_total"
CONDITION = "bookstore_operator_bookstore_condition"
INJECTED = "injected by the test"


def value(name: str, **labels: str) -> float:
    """The sample's value now; 0 when the series does not exist."""
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def reconciled(result: str) -> float:
    return value(RECONCILES, kind="Bookstore", result=result)


def condition_of(name: str, condition: str) -> float | None:
    labels = {"namespace": NAMESPACE, "bookstore": name, "condition": condition}
    return metrics.REGISTRY.get_sample_value(CONDITION, labels)


@pytest.fixture
async def emulator() -> AsyncIterator[RefusingEmulator]:
    """The conftest fixture's emulator, able to fail chosen writes."""
    async with serving(RefusingEmulator()) as server:
        yield server


async def test_a_bookstore_made_ready_counts_ok_reconciles_calls_phase_and_conditions(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    ok, ready = reconciled("ok"), value("bookstore_operator_bookstores", phase="Ready")
    timed = value("bookstore_operator_reconcile_duration_seconds_count", kind="Bookstore")
    waited = value("bookstore_operator_lock_wait_seconds_count")
    applied = value(API_REQUESTS, verb="apply", kind="Deployment", code="201")
    missing = value(API_REQUESTS, verb="get", kind="Deployment", code="404")
    status_written = value(API_REQUESTS, verb="patch", kind="Bookstore", code="200")

    await create_bookstore(emulator, "metered")
    await mark_workloads_ready(emulator, "metered")
    await wait_ready(emulator, "metered")
    await eventually(lambda: condition_of("metered", "Ready") == 1.0, what="Ready gauge at 1")

    assert reconciled("ok") > ok
    assert value("bookstore_operator_reconcile_duration_seconds_count", kind="Bookstore") > timed
    assert value("bookstore_operator_lock_wait_seconds_count") > waited
    assert condition_of("metered", "DatabaseReady") == 1.0
    assert condition_of("metered", "Progressing") == 0.0
    assert value("bookstore_operator_bookstores", phase="Ready") == ready + 1
    # The first reconcile found no Deployment (404), then applied both: created (201).
    assert value(API_REQUESTS, verb="get", kind="Deployment", code="404") >= missing + 2
    assert value(API_REQUESTS, verb="apply", kind="Deployment", code="201") >= applied + 2
    assert value(API_REQUESTS, verb="patch", kind="Bookstore", code="200") > status_written


def phases() -> dict[str, float]:
    """bookstore_operator_bookstores by phase, now."""
    return {phase: value("bookstore_operator_bookstores", phase=phase) for phase in metrics.PHASES}


async def test_deleting_a_bookstore_removes_its_series_and_its_phase_count(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    before = phases()
    await create_bookstore(emulator, "closing")

    def counted() -> bool:
        """The gauges show the status the API server holds: one more in its phase."""
        phase = (bookstore(emulator, "closing").get("status") or {}).get("phase")
        return phase in before and phases() == {**before, phase: before[phase] + 1}

    await eventually(counted, what="the new Bookstore counted in its phase", show=phases)
    assert condition_of("closing", "Ready") == 0.0

    await api(emulator, "DELETE", f"{BOOKSTORES}/closing")

    await eventually(
        lambda: condition_of("closing", "Ready") is None, what="the Bookstore's series gone"
    )
    assert condition_of("closing", "DatabaseReady") is None
    assert phases() == before


async def test_a_server_error_counts_a_retry_and_its_status_code(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    retries = reconciled("retry")
    failed = value(API_REQUESTS, verb="apply", kind="ConfigMap", code="500")
    emulator.refusals.append(
        Refusal("configmaps", "flaky-postgres-init", 500, "InternalError", INJECTED, remaining=1)
    )

    await create_bookstore(emulator, "flaky")

    await eventually(lambda: reconciled("retry") > retries, what="a reconcile counted retry")
    assert value(API_REQUESTS, verb="apply", kind="ConfigMap", code="500") == failed + 1


async def test_a_conflict_counts_a_retry_and_code_409(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    retries = reconciled("retry")
    conflicts = value(API_REQUESTS, verb="apply", kind="ConfigMap", code="409")
    emulator.refusals.append(Refusal("configmaps", "busy-postgres-init", 409, "Conflict", INJECTED))

    await create_bookstore(emulator, "busy")

    await eventually(lambda: reconciled("retry") > retries, what="a reconcile counted retry")
    assert value(API_REQUESTS, verb="apply", kind="ConfigMap", code="409") > conflicts


async def test_a_spec_that_can_never_work_counts_permanent_failures_only(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    permanent, ok, retries = reconciled("permanent"), reconciled("ok"), reconciled("retry")

    # The API server's schema refuses this; the emulator does not, so it reaches the operator.
    await create_bookstore(emulator, "broken", {"catalog": {"replicas": "many"}})

    await eventually(lambda: reconciled("permanent") > permanent, what="permanent counted")
    assert reconciled("ok") == ok
    assert reconciled("retry") == retries


async def test_a_child_edited_by_hand_counts_a_repair_and_a_spec_change_does_not(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    await create_bookstore(emulator, "edited")
    await mark_workloads_ready(emulator, "edited")
    await wait_ready(emulator, "edited")
    repairs = {
        kind: value(REPAIRS, kind=kind) for kind in ("Deployment", "HorizontalPodAutoscaler")
    }

    hacked = {
        "spec": {"template": {"spec": {"containers": [{"name": "orders", "image": "evil:1"}]}}}
    }
    await api(emulator, "PATCH", f"{DEPLOYMENTS}/edited-orders", hacked, merge=True)

    await eventually(
        lambda: value(REPAIRS, kind="Deployment") == repairs["Deployment"] + 1,
        what="one Deployment repair counted",
    )
    live = emulator.live("apps/v1/deployments", NAMESPACE, "edited-orders")
    assert live is not None
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] != "evil:1"

    # A new spec rewrites the HPA: an update, not a repair.
    updated = value(API_REQUESTS, verb="apply", kind="HorizontalPodAutoscaler", code="200")
    change = {"spec": {"catalog": {"autoscaling": {"maxReplicas": 7}}}}
    await api(emulator, "PATCH", f"{BOOKSTORES}/edited", change, merge=True)

    def hpa_max() -> int:
        hpa = emulator.live(HPAS, NAMESPACE, "edited-catalog")
        return int(((hpa or {}).get("spec") or {}).get("maxReplicas", 0))

    await eventually(lambda: hpa_max() == 7, what="the catalog HPA updated")
    assert value(API_REQUESTS, verb="apply", kind="HorizontalPodAutoscaler", code="200") > updated
    assert value(REPAIRS, kind="HorizontalPodAutoscaler") == repairs["HorizontalPodAutoscaler"]
    assert value(REPAIRS, kind="Deployment") == repairs["Deployment"] + 1


async def test_a_child_deleted_by_hand_counts_a_repair_and_one_never_made_does_not(
    emulator: RefusingEmulator, operator: Operator
) -> None:
    before = value(REPAIRS, kind="Service")
    await create_bookstore(emulator, "deleted")
    await mark_workloads_ready(emulator, "deleted")
    await wait_ready(emulator, "deleted")
    # Creating the Services at first is making them, not repairing them.
    assert value(REPAIRS, kind="Service") == before

    await api(emulator, "DELETE", f"/api/v1/namespaces/{NAMESPACE}/services/deleted-catalog")

    await eventually(
        lambda: emulator.live("v1/services", NAMESPACE, "deleted-catalog") is not None,
        what="the catalog Service recreated",
    )
    await eventually(
        lambda: value(REPAIRS, kind="Service") == before + 1, what="one Service repair counted"
    )


async def scrape(port: int) -> dict[str, float] | None:
    """The samples /metrics serves on the port ({series: value}), None while it does not answer."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/metrics") as response,
        ):
            if response.status != 200:
                return None
            text = await response.text()
    except aiohttp.ClientError:
        return None
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series(name: str, **labels: str) -> str:
    return f"{name}{sorted(labels.items())}"


async def test_every_replica_process_serves_metrics_on_its_port_the_standby_too(
    emulator: RefusingEmulator, tmp_path: pathlib.Path
) -> None:
    await create_peering(emulator)
    ports = {"replica-a": free_port(), "replica-b": free_port()}
    ok = series(RECONCILES, kind="Bookstore", result="ok")
    ready = series(CONDITION, namespace=NAMESPACE, bookstore="downtown", condition="Ready")
    async with (
        running(emulator, tmp_path, "replica-a", "--peering", NAME,
                "--metrics-port", str(ports["replica-a"])),
        running(emulator, tmp_path, "replica-b", "--peering", NAME,
                "--metrics-port", str(ports["replica-b"])),
    ):  # fmt: skip
        await eventually(lambda: {"replica-a", "replica-b"} <= set(peers(emulator)), what="both")
        await serve_one_bookstore(emulator)

        async def leader_reported() -> bool:
            scraped = [await scrape(port) for port in ports.values()]
            return all(scraped) and any(s.get(ready) == 1.0 for s in scraped if s)

        await eventually(leader_reported, what="the leader's Ready gauge, both serving")
        scrapes = {pod: await scrape(port) for pod, port in ports.items()}

    assert all(scrapes.values())
    leader = max(scrapes, key=lambda pod: (scrapes[pod] or {}).get(ok, 0.0))
    standby = next(pod for pod in scrapes if pod != leader)
    assert (scrapes[leader] or {})[ok] > 0
    assert (scrapes[standby] or {})[ok] == 0  # it served, though it reconciled nothing
    assert ready not in (scrapes[standby] or {})
    assert series("process_start_time_seconds") in (scrapes[standby] or {})


async def test_a_metrics_port_already_taken_stops_the_start_with_one_line(
    emulator: RefusingEmulator, tmp_path: pathlib.Path
) -> None:
    env = operator_env(emulator, tmp_path, "replica-a")
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # where the operator binds
        taken.listen()
        port = taken.getsockname()[1]
        code, stderr = await run_to_exit(
            "--standalone", "--log-format", "plain", "--metrics-port", str(port), env=env
        )

    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert f"cannot serve /metrics on port {port}" in line
    assert "Traceback" not in stderr


def test_metrics_port_defaults_to_8081_and_zero_turns_it_off() -> None:
    assert parse_args([]).metrics_port == 8081
    assert parse_args(["--metrics-port", "0"]).metrics_port == 0
