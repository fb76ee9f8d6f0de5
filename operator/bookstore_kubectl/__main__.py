"""Entry point of the `kubectl-bookstore` console script (`kubectl bookstore ...`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Not built yet (issue 13)."""
    del argv
    sys.exit("kubectl-bookstore: not built yet")
