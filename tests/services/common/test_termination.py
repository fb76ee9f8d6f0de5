"""The termination message: one JSON object under Kubernetes' 4096-byte cap, written only where
a pod has the file (or where TERMINATION_MESSAGE_PATH asks), never failing the command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bookstore_common import termination


def test_a_long_message_keeps_its_last_lines_within_4096_bytes() -> None:
    lines = [f'line {number}: psycopg.errors.Something "quoted" é' for number in range(500)]
    payload = {"service": "orders", "outcome": "failed", "revision": "0004", "head": "0005"}
    rendered = termination.render(payload | {"message": "\n".join(lines)})
    assert len(rendered.encode()) <= termination.TERMINATION_MESSAGE_LIMIT
    parsed = json.loads(rendered)
    assert parsed["message"].endswith(lines[-1])
    assert parsed["message"].startswith("…")
    assert {key: parsed[key] for key in payload} == payload


def test_a_short_message_is_written_whole(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "log"
    monkeypatch.setenv(termination.TERMINATION_MESSAGE_ENV, str(path))
    termination.write_termination_message({"service": "catalog", "outcome": "migrated"})
    assert json.loads(path.read_text()) == {"service": "catalog", "outcome": "migrated"}


def test_the_default_path_is_written_only_when_the_pod_has_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = tmp_path / "termination-log"
    monkeypatch.delenv(termination.TERMINATION_MESSAGE_ENV, raising=False)
    monkeypatch.setattr(termination, "DEFAULT_TERMINATION_MESSAGE_PATH", str(default))
    termination.write_termination_message({"outcome": "migrated"})
    assert not default.exists()  # e.g. `migrate` run by hand as root: no /dev/termination-log
    default.write_text("")  # what the kubelet mounts into every container
    termination.write_termination_message({"outcome": "migrated"})
    assert json.loads(default.read_text()) == {"outcome": "migrated"}


def test_an_unwritable_path_never_fails_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    monkeypatch.setenv(termination.TERMINATION_MESSAGE_ENV, str(directory))  # not a file
    termination.write_termination_message({"outcome": "migrated"})
    monkeypatch.setenv(termination.TERMINATION_MESSAGE_ENV, str(tmp_path / "no" / "such" / "dir"))
    termination.write_termination_message({"outcome": "migrated"})
    assert list(directory.iterdir()) == []
    assert not (tmp_path / "no").exists()
