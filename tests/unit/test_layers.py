"""The dependency arrows of STYLE.md, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]

# Libraries of the outer layers: the inner ones must not depend on them.
OUTER_LIBRARIES = {"psycopg", "nats", "fastapi", "kubernetes", "httpx"}

# layer -> top-level modules it must never import
FORBIDDEN = {
    "domain": {"application", "projections", "adapters", "api", "os", *OUTER_LIBRARIES},
    "application": {"projections", "adapters", "api", *OUTER_LIBRARIES},
    "projections": {"adapters", "api", *OUTER_LIBRARIES},
    "adapters": {"api", "fastapi"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_nothing_outward_when_scanned(layer):
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imports(path) & FORBIDDEN[layer])
        for path in sorted((ROOT / layer).rglob("*.py"))
        if _imports(path) & FORBIDDEN[layer]
    }
    assert offenders == {}


def test_only_settings_reads_the_environment_when_scanned():
    readers = [
        str(path.relative_to(ROOT))
        for layer in ("domain", "application", "projections", "adapters", "api")
        for path in sorted((ROOT / layer).rglob("*.py"))
        if "os.environ" in path.read_text() or "getenv(" in path.read_text()
    ]
    assert readers == []
