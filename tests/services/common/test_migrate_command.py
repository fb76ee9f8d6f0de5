"""`bookstore-<service> migrate` as a migration Job runs it: exit 0 at head (idempotent), 1 on
failure, 3 refusing a downgrade below an applied schema; its outcome as a termination message;
safe from two processes at once."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest
from bookstore_catalog.sample_data import SAMPLE_BOOKS

from tests.services.common.schemas import (
    NEWER_REVISION,
    SERVICES,
    json_lines,
    revisions,
    run_command,
    schema_snapshot,
    set_revision,
)
from tests.services.conftest import at_revision, free_port


def termination_message(path: Path) -> dict[str, Any]:
    """The one JSON object `migrate` wrote for Kubernetes."""
    raw = path.read_text(encoding="utf-8")
    assert len(raw.encode()) <= 4096
    message: dict[str, Any] = json.loads(raw)
    return message


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_migrate_reaches_head_then_a_second_run_changes_nothing_and_both_report_migrated(
    make_database: Callable[[str], str], tmp_path: Path, name: str
) -> None:
    service = SERVICES[name]
    url = make_database(f"idem_{name}")
    head = service.schema.head
    log = tmp_path / "termination-log"
    env = {"DATABASE_URL": url, "TERMINATION_MESSAGE_PATH": str(log)}

    first = run_command(service, "migrate", env=env)
    first_message = termination_message(log)
    log.unlink()
    after_first = schema_snapshot(url)
    second = run_command(service, "migrate", env=env)

    assert (first.returncode, second.returncode) == (0, 0), first.stdout + second.stdout
    assert revisions(url, service.schema) == [head]
    assert schema_snapshot(url) == after_first
    expected = {"service": name, "outcome": "migrated", "revision": head, "head": head}
    assert first_message == expected
    assert termination_message(log) == expected


def test_migrate_on_a_schema_this_code_does_not_know_exits_3_changing_nothing(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    service = SERVICES["orders"]
    url = make_database("refused")
    at_revision(service.settings(url), service.schema.package, service.schema.version_table, "head")
    set_revision(url, service.schema, NEWER_REVISION)
    before = schema_snapshot(url)
    log = tmp_path / "termination-log"

    result = run_command(
        service, "migrate", env={"DATABASE_URL": url, "TERMINATION_MESSAGE_PATH": str(log)}
    )

    assert result.returncode == 3, result.stdout + result.stderr
    assert schema_snapshot(url) == before
    assert revisions(url, service.schema) == [NEWER_REVISION]
    head = service.schema.head
    errors = [line for line in json_lines(result.stdout) if line["level"] == "error"]
    assert len(errors) == 1  # one clear line, no traceback
    assert errors[0]["message"].startswith(
        f"migration refused: the database schema is at revision {NEWER_REVISION}, which this "
        f"version does not know (its head is {head})"
    )
    assert "Traceback" not in result.stdout + result.stderr
    message = termination_message(log)
    assert message.pop("message") == errors[0]["message"].removeprefix("migration refused: ")
    assert message == {
        "service": "orders",
        "outcome": "downgrade-refused",
        "revision": NEWER_REVISION,
        "head": head,
    }


def test_a_migration_that_fails_exits_1_and_reports_the_revision_left_and_the_error(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    service = SERVICES["orders"]
    url = make_database("failing")
    previous = service.previous
    # The column the head migration adds is already there (by hand): its ALTER fails.
    at_revision(
        service.settings(url),
        service.schema.package,
        service.schema.version_table,
        previous,
        "ALTER TABLE orders ADD COLUMN requested_items text",
    )
    log = tmp_path / "termination-log"

    result = run_command(
        service, "migrate", env={"DATABASE_URL": url, "TERMINATION_MESSAGE_PATH": str(log)}
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert revisions(url, service.schema) == [previous]  # rolled back: still the old schema
    message = termination_message(log)
    error = message.pop("message")
    assert message == {
        "service": "orders",
        "outcome": "failed",
        "revision": previous,
        "head": service.schema.head,
    }
    assert 'column "requested_items" of relation "orders" already exists' in error
    assert len(error.splitlines()) <= 20


def test_an_unreachable_database_reports_failed_with_no_revision(tmp_path: Path) -> None:
    log = tmp_path / "termination-log"
    env = {
        "DATABASE_URL": f"postgresql://shop:url-secret@127.0.0.1:{free_port()}/catalog",
        "STARTUP_TIMEOUT": "0",
        "TERMINATION_MESSAGE_PATH": str(log),
    }

    result = run_command(SERVICES["catalog"], "migrate", env=env)

    assert result.returncode == 1
    message = termination_message(log)
    assert message["outcome"] == "failed"
    assert message["revision"] is None
    assert message["head"] == SERVICES["catalog"].schema.head
    assert "Connection refused" in message["message"] or "connect" in message["message"]
    assert "url-secret" not in log.read_text()


def test_migrate_without_a_writable_termination_log_still_succeeds(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    url = make_database("no_log")
    missing_dir = tmp_path / "absent" / "termination-log"
    result = run_command(
        SERVICES["orders"],
        "migrate",
        env={"DATABASE_URL": url, "TERMINATION_MESSAGE_PATH": str(missing_dir)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not missing_dir.parent.exists()


def test_two_migrate_processes_at_once_both_exit_0_and_seed_the_sample_books_once(
    make_database: Callable[[str], str], tmp_path: Path
) -> None:
    service = SERVICES["catalog"]
    url = make_database("catalog_race")
    logs = [tmp_path / "first", tmp_path / "second"]
    processes = [
        subprocess.Popen(
            service.command("migrate"),
            env=os.environ
            | {
                "DATABASE_URL": url,
                "SAMPLE_DATA": "true",
                "LOG_LEVEL": "warning",
                "TERMINATION_MESSAGE_PATH": str(log),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for log in logs
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]

    assert [process.returncode for process in processes] == [0, 0], outputs
    assert revisions(url, service.schema) == [service.schema.head]
    with psycopg.connect(url) as connection:
        books = connection.execute("SELECT count(*), count(DISTINCT isbn) FROM books").fetchone()
    assert books == (len(SAMPLE_BOOKS), len(SAMPLE_BOOKS))
    assert [termination_message(log)["outcome"] for log in logs] == ["migrated", "migrated"]
