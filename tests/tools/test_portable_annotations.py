"""The annotation rule of docs/ARCHITECTURE.md for the portable core (the modules manifest.py
lists: firmware/sip sdp rtp codecs app and compat.py), checked on the source with ast (CPython
only).

MicroPython compiles annotations and throws them away, so they never fail there; what fails is an
import MicroPython lacks (`typing`, `collections.abc`, `__future__`), and on CPython a signature
annotation is evaluated when the `def` runs. Hence: names for the type checker only are imported
under `if TYPE_CHECKING:` with a module-level `TYPE_CHECKING = False`, and a signature annotation
is a builtin expression (`int | None`, `list[bytes]`) or a string."""

import ast
import builtins
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _portable_files():
    """The modules manifest.py freezes for MicroPython (the portable core, compat.py included)."""
    namespace = {}
    exec(compile((ROOT / "manifest.py").read_text(), "manifest.py", "exec"), namespace)
    firmware = ROOT / "firmware"
    return [firmware / name for name in namespace["portable_files"](str(firmware))]


PORTABLE = _portable_files()
TYPING_ONLY = {"typing", "collections.abc", "typing_extensions", "__future__"}
BUILTIN_NAMES = set(dir(builtins))


def _is_type_checking_guard(node):
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Name)
            and node.test.id == "TYPE_CHECKING")


def annotation_problems(source, name="<source>"):
    """What breaks the rule in `source`: a list of (line, text)."""
    tree = ast.parse(source, name)
    problems = []
    guarded = set()
    for node in tree.body:
        if _is_type_checking_guard(node):
            guarded.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    guards = [node for node in ast.walk(tree) if _is_type_checking_guard(node)]
    if guards:
        defined = [node for node in tree.body if isinstance(node, ast.Assign)
                   and [ast.unparse(t) for t in node.targets] == ["TYPE_CHECKING"]
                   and isinstance(node.value, ast.Constant) and node.value.value is False]
        if not defined:
            problems.append((guards[0].lineno, "no module-level `TYPE_CHECKING = False`"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in guarded:
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom)
                     else [alias.name for alias in node.names])
            for module in names:
                if module in TYPING_ONLY or module.split(".")[0] == "typing":
                    problems.append((node.lineno, "import %s outside `if TYPE_CHECKING:`"
                                     % module))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args
            annotations = [a.annotation for a in arguments.posonlyargs + arguments.args
                           + arguments.kwonlyargs + [arguments.vararg, arguments.kwarg]
                           if a is not None and a.annotation is not None]
            if node.returns is not None:
                annotations.append(node.returns)
            for annotation in annotations:
                for leaf in ast.walk(annotation):
                    if isinstance(leaf, ast.Name) and leaf.id not in BUILTIN_NAMES:
                        problems.append((annotation.lineno, "%s: annotation %r names %s; "
                                         "write it as a string" % (
                                             node.name, ast.unparse(annotation), leaf.id)))
    return problems


@pytest.mark.parametrize("path", PORTABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_portable_annotations(path):
    assert annotation_problems(path.read_text(), str(path)) == []


def test_the_check_finds_what_micropython_or_cpython_would_trip_on():
    good = ('TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from typing import Any\n'
            '    from firmware.sip.uri import URI\n'
            'def f(a: int | None, b: "URI", *c: bytes, **d: "Any") -> "list[URI]":\n    pass\n')
    assert annotation_problems(good) == []
    assert len(annotation_problems("from typing import Any\n")) == 1
    assert len(annotation_problems("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                   "    from typing import Any\n")) == 2
    assert len(annotation_problems("if TYPE_CHECKING:\n    import typing\n")) == 1
    assert len(annotation_problems("from __future__ import annotations\n")) == 1
    assert len(annotation_problems("def f(u: URI) -> None:\n    pass\n")) == 1
    assert len(annotation_problems("def f() -> Any:\n    pass\n")) == 1
