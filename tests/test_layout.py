"""The layout's rules (issue 15): no source file over 400 lines, and imports that point one way,
server -> models -> colorpipeline, with torch kept out of colorpipeline and zmq out of both."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [p for folder in ("colorpipeline", "models", "server", "ofx_bridge/src", "tests", "bench")
           for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".cpp", ".h") and "__pycache__" not in p.parts]
# What each package may not import (top-level module names, and nightgrade sub-packages).
FORBIDDEN = {"colorpipeline": {"torch", "zmq", "msgpack", "nightgrade.models", "nightgrade.server"},
             "models": {"zmq", "msgpack", "nightgrade.server"}}


def test_no_source_file_is_over_400_lines() -> None:
    assert len(SOURCES) > 100
    long = {str(p.relative_to(ROOT)): n for p in SOURCES if (n := len(p.read_text().splitlines())) > 400}
    assert not long


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_point_one_way(package: str) -> None:
    modules = list((ROOT / package).rglob("*.py"))
    assert modules
    broken = {}
    for path in modules:
        bad = {name for name in _imports(path)
               if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[package])}
        if bad:
            broken[str(path.relative_to(ROOT))] = sorted(bad)
    assert not broken
