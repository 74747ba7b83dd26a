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
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [
                alias.name for alias in node.names]
            for name in names:
                assert name.split(".")[0] in ("binascii", "firmware"), name
