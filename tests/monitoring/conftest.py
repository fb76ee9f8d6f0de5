"""Fixtures of the monitoring tests: promtool (and Helm, for the chart's rule), or a failure
naming the fix."""

from __future__ import annotations

import pytest

from tests.chart.conftest import helm
from tests.monitoring.promtool import INSTALL_HINT, Promtool, find_promtool

__all__ = ["helm", "promtool"]


@pytest.fixture(scope="session")
def promtool() -> Promtool:
    """promtool; a missing one fails (CI must run these checks), never skips."""
    binary = find_promtool()
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    return Promtool(binary)
