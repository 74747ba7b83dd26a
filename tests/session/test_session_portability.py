"""The portable-core rules of docs/ARCHITECTURE.md for firmware/session, and the import graph of
the whole firmware: layered and acyclic (checked on the source with ast, so CPython only)."""

import ast
import pathlib

FIRMWARE = pathlib.Path(__file__).resolve().parents[2] / "firmware"
FORBIDDEN = {"dataclasses", "enum", "typing", "time", "socket", "threading", "asyncio",
             "__future__", "select", "subprocess", "random", "re", "ipaddress"}
PORTABLE = ("sip", "sdp", "rtp", "codecs", "app", "session")
# What each package may import (besides itself): the layers below it, never the runtime.
ALLOWED = {
    "compat": set(),
    "settings": set(),  # the typed config sections (firmware/settings.py): a leaf
    "codecs": {"compat"},
    "sdp": {"compat"},
    "sip": {"compat", "settings"},  # settings: UASettings.from_config(SipConfig)
    "rtp": {"compat", "codecs"},
    "app": {"compat", "settings", "sip", "codecs"},
    "session": {"compat", "settings", "sip", "sdp", "rtp", "codecs"},
}


def _imports(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            yield node, [node.module or ""]


def _package_of(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "firmware" else None


def test_session_modules_import_only_the_portable_subset():
    files = sorted((FIRMWARE / "session").glob("*.py"))
    assert len(files) >= 4
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            assert not isinstance(node, ast.JoinedStr), (path.name, node.lineno)
        for _node, names in _imports(path):
            for name in names:
                top = name.split(".")[0]
                assert top not in FORBIDDEN, (path.name, name)
                assert top in ("firmware", "os"), (path.name, name)


def test_the_portable_core_is_layered_and_never_imports_the_runtime():
    """Nothing in sip/ sdp/ rtp/ codecs/ app/ session/ imports runtime/, web/, hal/ or config;
    each package imports only the layers below it (ALLOWED), so the graph has no cycle."""
    for package in PORTABLE:
        for path in sorted((FIRMWARE / package).glob("*.py")):
            for _node, names in _imports(path):
                for name in names:
                    target = _package_of(name)
                    if target is None or target == package:
                        continue
                    assert target in ALLOWED[package], (package, path.name, name)
    for module in ("compat", "settings"):  # the leaves import nothing of the firmware
        for _node, names in _imports(FIRMWARE / (module + ".py")):
            assert not any(_package_of(name) for name in names), (module, names)


def test_the_allowed_graph_is_acyclic():
    done = set()

    def visit(package, trail):
        assert package not in trail, "cycle: %s" % " -> ".join(trail + (package,))
        if package in done:
            return
        for below in ALLOWED[package]:
            visit(below, trail + (package,))
        done.add(package)

    for package in ALLOWED:
        visit(package, ())
    assert done == set(ALLOWED)


def test_the_runtime_is_the_only_place_that_wires_session_to_the_controller():
    """session/ does not import app/ and app/ does not import session/: runtime/ wires them."""
    for package, other in (("session", "app"), ("app", "session")):
        for path in sorted((FIRMWARE / package).glob("*.py")):
            for _node, names in _imports(path):
                assert not any(_package_of(n) == other for n in names), (path.name, names)
