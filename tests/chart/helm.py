"""Run the Helm binary the Makefile installed, and render the chart into parsed manifests."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "bookstore-operator"
SOURCE_CRDS = ROOT / "crds"
OPERATOR_ROLE = ROOT / "operator" / "rbac" / "role.yaml"
RELEASE = "bookstore"
NAMESPACE = "bookstore-system"
# The chart's CI values files (chart-testing convention), by name; "default" renders none.
CI_VALUES: dict[str, Path | None] = {
    "default": None,
    **{
        path.name.removesuffix("-values.yaml"): path
        for path in sorted((CHART / "ci").glob("*-values.yaml"))
    },
}


def find_helm() -> str | None:
    """Helm from $HELM (the Makefile exports it), else .tools/bin/helm, else helm on PATH."""
    candidates = [os.environ.get("HELM", ""), str(ROOT / ".tools" / "bin" / "helm")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("helm")


@dataclass(frozen=True)
class HelmResult:
    """What one helm command answered."""

    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Helm:
    """A Helm binary, run against the chart with values written to files."""

    binary: str

    def run(self, *args: str) -> HelmResult:
        """Run helm with args; never raises on a non-zero exit (tests assert on it)."""
        completed = subprocess.run(
            [self.binary, *args], capture_output=True, text=True, timeout=120, check=False
        )
        return HelmResult(completed.returncode, completed.stdout, completed.stderr)

    def template(self, values_file: Path | None = None) -> HelmResult:
        """`helm template` of the chart (crds/ included), with an optional values file."""
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"]
        if values_file is not None:
            args += ["--values", str(values_file)]
        return self.run(*args)

    def render(self, values_file: Path | None = None) -> list[dict[str, Any]]:
        """The chart's manifests for these values; fails the test if helm template fails."""
        result = self.template(values_file)
        assert result.returncode == 0, f"helm template failed:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def write_values(directory: Path, name: str, values: dict[str, Any]) -> Path:
    """Write values to `<directory>/<name>.yaml` and return the path."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


def find(manifests: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """Every manifest of this kind."""
    return [manifest for manifest in manifests if manifest.get("kind") == kind]
