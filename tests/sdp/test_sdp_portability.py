"""The portable-core rules of docs/ARCHITECTURE.md for firmware/sdp, checked on the source with
ast (CPython only, so apart from the SDP tests that also run under MicroPython)."""

import ast
import pathlib

import pytest

from firmware.sdp import session

SDP_MODULES = sorted(pathlib.Path(session.__file__).parent.glob("*.py"))


@pytest.mark.parametrize("path", SDP_MODULES, ids=lambda p: p.name)
def test_portable_core_rules(path):
    """ARCHITECTURE.md: these modules must also run under MicroPython's Unix port."""
    source = path.read_text()
    assert "(?P<" not in source
    tree = ast.parse(source)
    typing_only = {id(n) for node in tree.body  # never run: see test_portable_annotations.py
                   if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
                   and node.test.id == "TYPE_CHECKING"
                   for stmt in node.body for n in ast.walk(stmt)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in typing_only:
            names = [node.module] if isinstance(node, ast.ImportFrom) else [
                alias.name for alias in node.names]
            for name in names:
                assert name.split(".")[0] in ("binascii", "firmware"), name
