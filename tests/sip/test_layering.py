"""Inside firmware/sip each object talks to its direct collaborator only (CPython: reads the
source with ast).

A branch has its call and the user agent it was given, a call its manager and that user agent,
the user agent its endpoint and registration. An attribute chain through two of these links
(`self.call.manager.ua`, `ua.endpoint.send_response`, `ua.credentials.answer`) reaches through a
layer; the layer below offers the method instead (UserAgent's call-layer port).
"""

import ast
import os

import firmware.sip

# attributes that hold a layer (or a layer's private part)
LINKS = {"call", "manager", "ua", "endpoint", "registration", "credentials", "table"}
SIP_DIR = os.path.dirname(firmware.sip.__file__)


def _chain(node):
    """`a.b.c` -> ["a", "b", "c"] (only names and attributes; anything else ends the chain)."""
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        names.append(node.id)
    return list(reversed(names))


def reaching_through(source):
    """(line, dotted chain) of every attribute chain that passes two layer links in a row."""
    found = []
    for node in ast.walk(_mark_parents(ast.parse(source))):
        if not isinstance(node, ast.Attribute) or isinstance(
                getattr(node, "parent", None), ast.Attribute):
            continue
        names = _chain(node)
        for index in range(len(names) - 1):
            first, second = names[index], names[index + 1]
            if first in LINKS and second in LINKS:
                found.append((node.lineno, ".".join(names)))
                break
    return found


def _mark_parents(tree):
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            child.parent = node
    return tree


def test_the_detector_sees_a_chain_through_layers():
    assert reaching_through("self.call.manager.ua.endpoint.send_request(x)")
    assert reaching_through("ua.endpoint.new_tag()")
    assert reaching_through("value = self.manager.ua.credentials.answer(c, 'BYE', uri)")
    assert not reaching_through("self.ua.send_response(tx, response, now)")
    assert not reaching_through("self.manager.emit(event)")
    assert not reaching_through("request.headers.get('To')")


def test_no_object_in_firmware_sip_reaches_through_a_layer():
    offenders = []
    for name in sorted(os.listdir(SIP_DIR)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(SIP_DIR, name), encoding="utf-8") as handle:
            source = handle.read()
        for line, chain in reaching_through(source):
            offenders.append("%s:%d %s" % (name, line, chain))
    assert offenders == []


# -- one next-hop function (issue 13) ------------------------------------------------------------
FIRMWARE_DIR = os.path.dirname(SIP_DIR)
NEXT_HOP = ("firmware/session/routing.py", "next_hop")


def _names_registrar(node):
    return (isinstance(node, ast.Name) and node.id == "registrar") or (
        isinstance(node, ast.Attribute) and node.attr == "registrar")


def registrar_choosers(source):
    """Names of the functions in `source` that pick the registrar as a destination: they return
    it (`return registrar`, `return self.registrar if ... else peer`) or assign it as one
    (`dest = ... registrar ...`)."""
    found = []
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            values = []
            if isinstance(node, ast.Return) and node.value is not None:
                values = [node.value]
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, (ast.Name, ast.Attribute)) and
                    (getattr(t, "id", None) or getattr(t, "attr", None)) in ("dest", "destination")
                    for t in node.targets):
                values = [node.value]
            for value in values:
                candidates = [value.body, value.orelse] if isinstance(value, ast.IfExp) \
                    else [value]
                if any(_names_registrar(c) for c in candidates):
                    found.append(function.name)
    return found


def test_the_registrar_chooser_detector():
    assert registrar_choosers(
        "def route_for(self, peer):\n    return self.registrar if self.registrar else peer\n")
    assert registrar_choosers("def f(r):\n    if r is not None:\n        return registrar\n")
    assert registrar_choosers("def f(self):\n    self.dest = self.ua.registrar\n")
    assert not registrar_choosers("def from_registrar(self, s):\n"
                                  "    return self.registrar is not None and s == 1\n")


def test_one_function_decides_the_next_hop():
    """Only the session layer's `next_hop` picks the registrar as the next hop: the call layer
    (a Branch, a redirect) sends where it is told, so a second routing rule cannot drift."""
    choosers = []
    for directory, _, names in os.walk(FIRMWARE_DIR):
        for name in sorted(names):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, os.path.dirname(FIRMWARE_DIR)).replace(os.sep, "/")
            with open(path, encoding="utf-8") as handle:
                for function in registrar_choosers(handle.read()):
                    choosers.append((relative, function))
    assert choosers == [NEXT_HOP]
