"""Make the hack/ scripts importable the way they import each other (as top-level modules)."""

from __future__ import annotations

import sys
from pathlib import Path

HACK_DIR = Path(__file__).resolve().parents[2] / "hack"
if str(HACK_DIR) not in sys.path:
    sys.path.insert(0, str(HACK_DIR))
