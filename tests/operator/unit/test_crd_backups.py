"""The BookstoreBackup CRD and its status: valid, documented, immutable, and exactly what the
backup controller writes (tests/operator/unit/test_crd_server_checks.py covers its rules and
defaults the way the API server evaluates them)."""

from __future__ import annotations

import copy
import json
from typing import Any

import kubernetes_validate
import pytest
from bookstore_operator.backup_status import (
    MESSAGE_LIMIT,
    BackupRun,
    completed_status,
    failed_status,
    failure_message,
    human_size,
    parse_summary,
    pending_status,
    running_status,
)

from tests.operator.backup_samples import SUMMARY
from tests.operator.unit.crd_support import (
    BACKUP_CRD_PATH,
    apply_defaults,
    backup_bodies,
    cel_violations,
    load_crd,
    openapi_schema,
    prune,
    resolve_json_path,
    schema_errors,
    walk,
)

CRD = load_crd(BACKUP_CRD_PATH)
SCHEMA = openapi_schema(CRD)
NODES = dict(walk(SCHEMA))
BODIES = backup_bodies()
UID = "0b5e3c1e-0000-4000-8000-000000000001"


def run(status: dict[str, Any] | None = None) -> BackupRun:
    body = copy.deepcopy(BODIES["completed"])
    body["metadata"]["uid"] = UID
    body["status"] = status or {}
    return BackupRun.parse(body)


@pytest.mark.parametrize("version", ["1.30", kubernetes_validate.utils.latest_version()])
def test_crd_is_a_valid_custom_resource_definition(version: str) -> None:
    kubernetes_validate.validate(CRD, version, strict=True)


def test_crd_names_scope_and_version_follow_the_contract() -> None:
    spec = CRD["spec"]
    assert CRD["metadata"]["name"] == "bookstorebackups.bookstore.dev"
    assert (spec["group"], spec["scope"]) == ("bookstore.dev", "Namespaced")
    assert spec["names"] == {
        "kind": "BookstoreBackup",
        "listKind": "BookstoreBackupList",
        "plural": "bookstorebackups",
        "singular": "bookstorebackup",
        "shortNames": ["bsb"],
    }
    [version] = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}


def test_printer_columns_show_bookstore_phase_size_and_age() -> None:
    [version] = CRD["spec"]["versions"]
    obj = {**BODIES["completed"], "metadata": {"creationTimestamp": "2025-01-01T03:00:00Z"}}
    printed = {
        column["name"]: resolve_json_path(obj, column["jsonPath"])
        for column in version["additionalPrinterColumns"]
        if not column.get("priority")
    }
    assert printed == {
        "Bookstore": "downtown",
        "Phase": "Completed",
        "Size": "19.7Ki",
        "Age": "2025-01-01T03:00:00Z",
    }


@pytest.mark.parametrize(
    "path",
    [p for p in NODES if p.startswith((".spec", ".status")) and not p.endswith(("[]", "{}"))],
)
def test_every_spec_and_status_field_has_a_description(path: str) -> None:
    assert len(NODES[path].get("description", "")) > 10


@pytest.mark.parametrize("path", [p for p in NODES if p.startswith(".spec")])
def test_every_spec_string_is_bounded(path: str) -> None:
    node = NODES[path]
    if node.get("type") == "string":
        assert "enum" in node or "maxLength" in node


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_backup_is_valid_after_defaulting(name: str) -> None:
    stored = apply_defaults(SCHEMA, BODIES[name])
    assert schema_errors(SCHEMA, stored) == []
    assert stored["spec"]["method"] == "logical"
    assert cel_violations(SCHEMA, stored, stored) == []


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({}, "bookstore"),
        ({"bookstore": "Down_town"}, "spec.bookstore"),
        ({"bookstore": "d" * 41}, "spec.bookstore"),
        ({"bookstore": "downtown", "method": "physical"}, "spec.method"),
    ],
)
def test_schema_rejects_invalid_specs_naming_the_field(spec: dict[str, Any], where: str) -> None:
    body = {**BODIES["created"], "spec": spec}
    errors = schema_errors(SCHEMA, apply_defaults(SCHEMA, body))
    assert errors
    assert any(where.split(".")[-1] in error for error in errors), errors


@pytest.mark.parametrize(
    "change",
    [{"bookstore": "uptown"}, {"method": None}],
    ids=["another-bookstore", "method-removed"],
)
def test_spec_cannot_change_after_creation(change: dict[str, Any]) -> None:
    old = apply_defaults(SCHEMA, BODIES["completed"])
    new = copy.deepcopy(old)
    for key, value in change.items():
        if value is None:
            new["spec"].pop(key)
        else:
            new["spec"][key] = value
    [violation] = cel_violations(SCHEMA, new, old)
    assert "spec of a BookstoreBackup cannot change" in violation
    assert cel_violations(SCHEMA, old, copy.deepcopy(old)) == []


def statuses() -> dict[str, dict[str, Any]]:
    summary = {**SUMMARY, "uid": UID}
    return {
        "pending": pending_status(run(), "Bookstore downtown is paused"),
        "running": running_status(run(), "2025-01-01T03:00:00Z"),
        "completed": completed_status(run(), summary),
        "failed": failed_status(run(), "x" * 5000, "2025-01-01T03:00:09Z", "2025-01-01T03:00:00Z"),
    }


@pytest.mark.parametrize("name", sorted(statuses()))
def test_status_schema_declares_exactly_what_the_controller_writes(name: str) -> None:
    status = statuses()[name]
    body = {**BODIES["created"], "status": status}
    assert prune(SCHEMA, body)["status"] == status, "the API server would drop a field"
    assert schema_errors(SCHEMA, apply_defaults(SCHEMA, body)) == []


def test_a_completed_status_is_the_record_of_the_summary() -> None:
    status = statuses()["completed"]
    assert status["phase"] == "Completed"
    assert (status["sizeBytes"], status["size"]) == (20192, "19.7Ki")
    assert (status["startedAt"], status["completedAt"]) == (
        "2025-01-01T03:00:01Z",
        "2025-01-01T03:00:09Z",
    )
    assert status["revisions"] == {"orders": "0005", "catalog": "0004"}
    assert [f["database"] for f in status["files"]] == ["orders", "catalog"]
    assert status["files"][1] == {
        "database": "catalog",
        "file": "catalog.dump",
        "sizeBytes": 11306,
        "serverVersion": "16.4",
        "revisions": {"catalog": "0004"},
    }


def test_a_failure_message_is_bounded_and_keeps_its_end() -> None:
    message = failure_message(1, "noise " * 1000 + "backup: pg_dump of orders failed")
    status = failed_status(run(), message, "2025-01-01T03:00:09Z")
    assert len(status["message"]) == MESSAGE_LIMIT
    assert status["message"].endswith("pg_dump of orders failed")
    assert failure_message(None, "").endswith("failed: no message")
    assert "(exit code 1)" in message


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0B"), (1023, "1023B"), (1024, "1Ki"), (20192, "19.7Ki"), (5 * 1024**3, "5Gi")],
)
def test_human_size_uses_binary_units_with_one_decimal(size: int, shown: str) -> None:
    assert human_size(size) == shown


def test_a_summary_counts_only_for_its_own_backup() -> None:
    assert parse_summary(json.dumps({**SUMMARY, "uid": UID}), UID) is not None
    assert parse_summary(json.dumps({**SUMMARY, "uid": "another"}), UID) is None
    assert parse_summary("backup: pg_dump of orders failed", UID) is None
    assert parse_summary(json.dumps({"uid": UID}), UID) is None


def test_the_bookstore_label_is_added_once() -> None:
    unlabelled = BackupRun.parse(
        {**BODIES["created"], "metadata": {"name": "n", "namespace": "s", "uid": UID}}
    )
    assert unlabelled.label_patch() == {
        "metadata": {"labels": {"bookstore.dev/bookstore": "downtown"}}
    }
    labelled = BackupRun.parse(
        {
            **BODIES["created"],
            "metadata": {
                "name": "n",
                "namespace": "s",
                "uid": UID,
                "labels": {"bookstore.dev/bookstore": "downtown"},
            },
        }
    )
    assert labelled.label_patch() is None


def test_only_a_backup_that_started_may_hold_files() -> None:
    assert run({"phase": "Completed"}).may_hold_files
    assert run({"phase": "Failed", "startedAt": "2025-01-01T03:00:00Z"}).may_hold_files
    assert not run({"phase": "Failed", "message": "no Bookstore"}).may_hold_files
    assert not run({"phase": "Pending"}).may_hold_files
