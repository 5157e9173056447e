"""Unit tests import the project packages from the source tree (the project is not installed
into the virtualenv, and pyproject sets no ``pythonpath``)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
