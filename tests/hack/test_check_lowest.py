"""constraints/lowest.txt pins exactly pyproject.toml's lower bounds (what make test-lowest
installs), and a drift between the two is named."""

from __future__ import annotations

import tomllib

import check_lowest
import pytest
from packaging.version import Version

CONSTRAINTS = check_lowest.CONSTRAINTS.read_text()
PYPROJECT = check_lowest.PYPROJECT.read_text()


def test_committed_pins_are_exactly_the_lower_bounds() -> None:
    assert check_lowest.problems(CONSTRAINTS, PYPROJECT, installed=False) == []


def test_every_runtime_dependency_and_the_build_backend_is_pinned() -> None:
    pinned = check_lowest.pins(CONSTRAINTS)
    bounds = check_lowest.lower_bounds(tomllib.loads(PYPROJECT))
    assert set(bounds) <= set(pinned)
    assert {"kubernetes", "setuptools", "kopf", "fastapi", "pydantic", "sqlalchemy"} <= set(bounds)
    assert bounds["kubernetes"] >= Version("37")  # ApiClient.param_serialize
    assert bounds["setuptools"] >= Version("77")  # the SPDX license string


def test_a_pin_that_differs_from_its_bound_is_reported() -> None:
    stale = CONSTRAINTS.replace("kubernetes==37.0.0", "kubernetes==36.0.0")
    assert check_lowest.problems(stale, PYPROJECT, installed=False) == [
        "kubernetes: pyproject.toml allows >=37, lowest.txt pins 36.0.0"
    ]


def test_a_bound_without_a_pin_is_reported() -> None:
    added = PYPROJECT.replace('"pyyaml>=6.0.3",', '"pyyaml>=6.0.3",\n    "tenacity>=8.2",')
    assert check_lowest.problems(CONSTRAINTS, added, installed=False) == [
        "tenacity: pyproject.toml allows >=8.2, lowest.txt pins nothing"
    ]


def test_a_line_that_is_not_a_pin_is_refused() -> None:
    with pytest.raises(ValueError, match="not a name==version pin"):
        check_lowest.pins("kopf>=1.45\n")
    assert check_lowest.pins("# comment\nkopf==1.45.0  # why\n") == {"kopf": Version("1.45.0")}


def test_the_setuptools_that_built_the_project_is_read_from_its_wheel() -> None:
    wheel = "Wheel-Version: 1.0\nGenerator: setuptools (77.0.1)\nRoot-Is-Purelib: true\n"
    assert check_lowest.built_with(wheel) == Version("77.0.1")
    assert check_lowest.built_with("Wheel-Version: 1.0\n") is None
