"""compute_status during a change of version: what each stage reports (pure, no API)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from bookstore_operator.rollout import Migration, Rollout
from bookstore_operator.status import Observed, compute_status, rollout_problems

from tests.operator.unit.test_status import NOW, READY, STATUS_SCHEMA, store, workload

FIRST, SECOND = "0.1.0", "0.2.0"
PREVIOUS = {"observedGeneration": 2, "version": FIRST}
CATALOG_JOB = "downtown-catalog-migrate-0-2-0-1234abcd"
ORDERS_JOB = "downtown-orders-migrate-0-2-0-1234abcd"


def migration(service: str, state: str, **fields: Any) -> Migration:
    job = CATALOG_JOB if service == "catalog" else ORDERS_JOB
    return Migration(service, job, state, **fields)  # type: ignore[arg-type]


def observed(stage: str, *migrations: Migration, **rollout: Any) -> Observed:
    change = Rollout(FIRST, SECOND, stage, migrations, **rollout)  # type: ignore[arg-type]
    return dataclasses.replace(READY, rollout=change, problems=tuple(rollout_problems(change)))


def status_for(seen: Observed, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    status = compute_status(store({"version": SECOND}), seen, previous or PREVIOUS, NOW)
    jsonschema.validate(status, STATUS_SCHEMA)
    return status


def reason(status: dict[str, Any], kind: str) -> tuple[str, str]:
    found = next(c for c in status["conditions"] if c["type"] == kind)
    return found["status"], found["reason"]


def test_migrating_names_the_jobs_and_keeps_the_serving_version() -> None:
    status = status_for(
        observed("Migrating", migration("catalog", "Succeeded"), migration("orders", "Running"))
    )
    assert status["phase"] == "Progressing"
    assert status["version"] == FIRST
    assert status["targetVersion"] == SECOND
    assert reason(status, "Progressing") == ("True", "Migrating")
    assert reason(status, "Ready") == ("False", "Migrating")
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert f"Job/{ORDERS_JOB} running" in progressing["message"]


def test_a_successful_job_records_its_schema_revision_and_earlier_ones_stay() -> None:
    previous = {**PREVIOUS, "database": {"schemaRevision": {"orders": "0003"}}}
    seen = observed(
        "Migrating",
        migration("catalog", "Succeeded", outcome="migrated", revision="0005", head="0005"),
        migration("orders", "Running"),
    )
    assert status_for(seen, previous)["database"]["schemaRevision"] == {
        "catalog": "0005",
        "orders": "0003",
    }


def test_rolling_out_counts_updated_pods_and_completes_at_the_new_version() -> None:
    rolling = dataclasses.replace(observed("RollingOut"), catalog=workload(2, rolled_out=False))
    status = status_for(rolling)
    assert reason(status, "Progressing") == ("True", "RollingOut")
    message = next(c for c in status["conditions"] if c["type"] == "Progressing")["message"]
    assert "2/4 pods updated" in message
    assert status["version"] == FIRST

    done = status_for(observed("RollingOut"))
    assert done["phase"] == "Ready"
    assert done["version"] == SECOND
    assert "targetVersion" not in done
    assert reason(done, "Progressing") == ("False", "RolloutComplete")


def test_failed_migration_is_degraded_with_exit_code_and_log_tail_bounded() -> None:
    tail = "x" * 10_000 + " the last line"
    status = status_for(
        observed("MigrationFailed", migration("catalog", "Failed", exit_code=1, detail=tail))
    )
    assert status["phase"] == "Degraded"
    assert reason(status, "Ready") == ("False", "MigrationFailed")
    message = next(c for c in status["conditions"] if c["type"] == "Ready")["message"]
    assert "exit code 1" in message
    assert message.count("x") < 2_100
    assert "the last line" in message
    assert f"set spec.version back to {FIRST}" in message
    assert f"delete Job/{CATALOG_JOB}" in message
    assert status["version"] == FIRST
    assert status["targetVersion"] == SECOND


def test_refused_downgrade_fails_naming_both_revisions() -> None:
    refused = migration(
        "catalog", "Failed", exit_code=3, outcome="downgrade-refused", revision="0005", head="0003"
    )
    status = status_for(observed("DowngradeRefused", refused))
    assert status["phase"] == "Failed"
    message = next(c for c in status["conditions"] if c["type"] == "Ready")["message"]
    assert "revision 0005" in message
    assert "head 0003" in message


@pytest.mark.parametrize(
    ("exit_code", "outcome", "refused"),
    [(3, "", True), (None, "downgrade-refused", True), (1, "failed", False)],
)
def test_a_refusal_is_exit_code_3_or_the_reported_outcome(
    exit_code: int | None, outcome: str, refused: bool
) -> None:
    assert migration("catalog", "Failed", exit_code=exit_code, outcome=outcome).refused is refused


def test_rolled_back_rollout_stays_degraded_with_rolled_back_from() -> None:
    status = status_for(observed("RolledBack", rolled_back_from=SECOND, stuck=("catalog",)))
    assert status["phase"] == "Degraded"
    assert status["version"] == FIRST
    assert status["rolledBackFrom"] == SECOND
    assert "targetVersion" not in status
    message = next(c for c in status["conditions"] if c["type"] == "Ready")["message"]
    assert reason(status, "Ready") == ("False", "RolloutStuck")
    assert f"rolled back to version {FIRST}" in message
    # The message does not change once the stuck services are no longer known.
    later = status_for(observed("RolledBack", rolled_back_from=SECOND))
    assert later["conditions"] == status["conditions"]


def test_stuck_rollout_without_auto_rollback_says_why_it_stays() -> None:
    status = status_for(observed("RolloutStuck", stuck=("orders",), deadline_seconds=120))
    message = next(c for c in status["conditions"] if c["type"] == "Ready")["message"]
    assert "(orders)" in message
    assert "within 120s" in message
    assert "spec.upgrade.autoRollback is false" in message
    assert status["targetVersion"] == SECOND


def test_serving_stage_writes_no_upgrade_fields() -> None:
    status = compute_status(
        store({"version": FIRST}),
        dataclasses.replace(READY, rollout=Rollout(FIRST, FIRST)),
        PREVIOUS,
        NOW,
    )
    assert status["version"] == FIRST
    assert not {"targetVersion", "rolledBackFrom"} & set(status)
    assert "database" not in status  # no claims observed, no revision reported yet
