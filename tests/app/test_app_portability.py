"""The portable-core rules of docs/ARCHITECTURE.md for firmware/app, checked on the source with
ast (CPython only, so apart from the controller tests that also run under MicroPython)."""

import ast
import pathlib

APP = pathlib.Path(__file__).resolve().parents[2] / "firmware" / "app"
FORBIDDEN = {"dataclasses", "enum", "typing", "time", "socket", "threading", "asyncio",
             "__future__", "select", "subprocess", "random", "re"}
OPTIONAL_STDLIB = {"hmac"}  # absent on MicroPython: only behind `except ImportError`
PORTABLE_STDLIB = {"os", "hashlib"} | OPTIONAL_STDLIB  # MicroPython has hashlib.sha256
NOT_PORTABLE = ("firmware.runtime", "firmware.web", "firmware.config")


def _imports_guarded_by_import_error(tree):
    """Imports inside `try: ... except ImportError:` (optional on MicroPython)."""
    guarded = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
                isinstance(h.type, ast.Name) and h.type.id == "ImportError" for h in node.handlers):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return guarded


def _imports_for_the_type_checker_only(tree):
    """Imports inside `if TYPE_CHECKING:` (never run; tests/tools/test_portable_annotations.py)."""
    return {id(n) for node in tree.body
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING"
            for stmt in node.body for n in ast.walk(stmt)}


def test_app_modules_import_only_the_portable_subset():
    files = sorted(APP.glob("*.py"))
    assert len(files) >= 5
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        optional = _imports_guarded_by_import_error(tree)
        typing_only = _imports_for_the_type_checker_only(tree)
        for node in ast.walk(tree):
            # f-strings (and their `=` form MicroPython lacks) are not needed: % formatting is used
            assert not isinstance(node, ast.JoinedStr), (path.name, node.lineno)
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN, (path.name, name)
                assert top == "firmware" or top in PORTABLE_STDLIB, (path.name, name)
                if top in OPTIONAL_STDLIB:
                    assert id(node) in optional, (path.name, name, "needs an ImportError guard")
                assert not name.startswith(NOT_PORTABLE), (path.name, name)
