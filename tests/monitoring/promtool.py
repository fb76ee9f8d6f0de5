"""Run promtool (Prometheus's rule checker) on rule files, and write rule files to check."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

INSTALL_HINT = (
    "No promtool: run `make promtool` (Debian's `prometheus` package ships it), "
    "or put promtool on PATH, or set $PROMTOOL."
)


def find_promtool() -> str | None:
    """promtool from $PROMTOOL, else on PATH."""
    candidate = os.environ.get("PROMTOOL", "")
    if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("promtool")


@dataclass(frozen=True)
class PromtoolResult:
    """What one promtool command answered."""

    returncode: int
    output: str


@dataclass(frozen=True)
class Promtool:
    """A promtool binary."""

    binary: str

    def run(self, *args: str, cwd: Path | None = None) -> PromtoolResult:
        """Run promtool with args; never raises on a non-zero exit (tests assert on it)."""
        completed = subprocess.run(
            [self.binary, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=cwd,
        )
        return PromtoolResult(completed.returncode, completed.stdout + completed.stderr)

    def check_rules(self, files: Sequence[Path]) -> PromtoolResult:
        """`promtool check rules` (syntax, PromQL, templates, duplicate rules)."""
        return self.run("check", "rules", *map(str, files))

    def test_rules(self, test_file: Path) -> PromtoolResult:
        """`promtool test rules`, run where the test file's rule_files are."""
        return self.run("test", "rules", test_file.name, cwd=test_file.parent)


def write_rule_file(path: Path, groups: list[dict[str, Any]]) -> Path:
    """A Prometheus rule file holding these groups (a PrometheusRule's spec)."""
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path
