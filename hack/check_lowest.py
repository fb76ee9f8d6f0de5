"""Check that constraints/lowest.txt pins exactly pyproject.toml's lower bounds, and (run in
.venv-lowest by `make test-lowest`) that those versions are the ones installed.

Without it the pins could drift from the bounds, and the lowest-versions test would prove
nothing about what pyproject.toml promises.
"""

from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints" / "lowest.txt"
PYPROJECT = ROOT / "pyproject.toml"
BUILD_ONLY = {"setuptools"}  # pinned for the isolated build environment, not installed here
PROJECT = "bookstore-operator"


def pins(text: str) -> dict[str, Version]:
    """`name==version` lines of a constraints file, by canonical name."""
    found: dict[str, Version] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
            if match is None:
                raise ValueError(f"{CONSTRAINTS.name}: not a name==version pin: {line!r}")
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def lower_bounds(pyproject: dict[str, object]) -> dict[str, Version]:
    """The `>=` bound of every runtime and build requirement, by canonical name."""
    project = pyproject["project"]
    build = pyproject["build-system"]
    assert isinstance(project, dict)
    assert isinstance(build, dict)
    bounds: dict[str, Version] = {}
    for text in [*project["dependencies"], *build["requires"]]:
        requirement = Requirement(text)
        lows = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        if not lows:
            raise ValueError(f"pyproject.toml: {text!r} has no lower bound")
        bounds[canonicalize_name(requirement.name)] = max(lows)
    return bounds


def problems(constraints: str, pyproject: str, *, installed: bool) -> list[str]:
    """Every disagreement between the bounds, the pins and (if asked) the installed versions."""
    pinned = pins(constraints)
    bounds = lower_bounds(tomllib.loads(pyproject))
    found = []
    for name, low in sorted(bounds.items()):
        if pinned.get(name) != low:
            pin = pinned.get(name, "nothing")
            found.append(f"{name}: pyproject.toml allows >={low}, {CONSTRAINTS.name} pins {pin}")
    if installed:
        for name, version in sorted(pinned.items()):
            if name not in BUILD_ONLY and Version(metadata.version(name)) != version:
                found.append(f"{name}: {version} pinned, {metadata.version(name)} installed")
        built_by = built_with(metadata.distribution(PROJECT).read_text("WHEEL") or "")
        if built_by != pinned.get("setuptools"):
            found.append(f"setuptools: {pinned.get('setuptools')} pinned, {built_by} built it")
    return found


def built_with(wheel_file: str) -> Version | None:
    """The setuptools version named by a wheel's WHEEL file (`Generator: setuptools (X)`)."""
    match = re.search(r"^Generator: setuptools \(([^)]+)\)$", wheel_file, re.M)
    return Version(match[1]) if match else None


def main(argv: list[str] | None = None) -> int:
    """Exit 1 naming each disagreement; `--no-installed` checks only the two files."""
    args = sys.argv[1:] if argv is None else argv
    found = problems(
        CONSTRAINTS.read_text(), PYPROJECT.read_text(), installed="--no-installed" not in args
    )
    for line in found:
        sys.stderr.write(f"check_lowest: {line}\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
