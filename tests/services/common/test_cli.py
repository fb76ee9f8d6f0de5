"""The shared CLI: waiting for the database, failing cleanly, never printing secrets."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from bookstore_common import cli
from bookstore_common.settings import ServiceSettings
from sqlalchemy.exc import OperationalError

from tests.services.conftest import catalog_command, free_port


def test_migration_is_retried_while_the_database_is_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []
    sleeps: list[float] = []

    def migrate(_: ServiceSettings) -> None:
        attempts.append(1)
        if len(attempts) < 3:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError())

    monkeypatch.setattr(cli.time, "sleep", sleeps.append)
    cli.migrate_when_database_is_up(migrate, ServiceSettings(startup_timeout=60))
    assert len(attempts) == 3
    assert sleeps == [1.0, 2.0]


def test_other_migration_errors_are_not_retried() -> None:
    def migrate(_: ServiceSettings) -> None:
        raise RuntimeError("bad revision")

    with pytest.raises(RuntimeError, match="bad revision"):
        cli.migrate_when_database_is_up(migrate, ServiceSettings(startup_timeout=60))


def test_failed_migrate_exits_1_with_json_logs_and_no_password() -> None:
    env = os.environ | {
        "DATABASE_URL": f"postgresql://shop:url-secret@127.0.0.1:{free_port()}/catalog",
        "DATABASE_PASSWORD": "env-secret",
        "API_KEY": "key-secret",
        "STARTUP_TIMEOUT": "0",
    }
    result = subprocess.run(
        [*catalog_command(), "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["message"] == "migration failed"
    for secret in ("url-secret", "env-secret", "key-secret"):
        assert secret not in output
