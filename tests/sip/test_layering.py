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
