"""Fixtures of the chart tests: a Helm binary, or a clear failure naming the fix."""

from __future__ import annotations

import pytest

from tests.chart.helm import Helm, find_helm


@pytest.fixture(scope="session")
def helm() -> Helm:
    """The Helm binary; a missing one fails (CI must run these tests), naming the fix."""
    binary = find_helm()
    if binary is None:
        pytest.fail(
            "No helm binary: set $HELM, or run `make helm` (installs .tools/bin/helm), "
            "or put helm on PATH.",
            pytrace=False,
        )
    return Helm(binary)
