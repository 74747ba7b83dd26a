"""Run the portable core's pytest files under the MicroPython Unix port (test-only tool).

    micropython -X heapsize=512M tools/mpy/runner.py [-v] tests/sip tests/sdp ...   (from the
    repository root; -v prints each failure's traceback)

Imports each `tests/.../test_*.py` module with the `pytest`, `hypothesis`, `random` (seeded
`Random`) and `pathlib` shims from tools/mpy/shim and a `zip` that takes `strict=`, then runs
every `test_*` function (and `test_*` methods of `Test*` classes). Argument names are read from
the source text, since MicroPython has no `inspect`. Arguments are filled from
`pytest.mark.parametrize` values, from the module's own `@pytest.fixture` functions (generator
fixtures are finalised) and from `vectors`: the runner stands in for tests/conftest.py (which
also loads the real-peer fixtures, needing subprocess), including `from tests.conftest import
VECTORS`. A test wanting any other fixture (tmp_path, monkeypatch...) is skipped, as is a module
that cannot be imported here (it needs a CPython-only library such as ast, hypothesis or
pylibsrtp). Skips are counted per reason.
The last line is "N passed, N failed" (plus skip counts); the exit status is 1 on any failure.
"""

import builtins
import os
import sys

HERE = sys.argv[0].rsplit("/", 1)[0] if "/" in sys.argv[0] else "."
sys.path.insert(0, HERE + "/shim")
sys.path.insert(0, ".")

import pathlib  # noqa: E402  (the shims, found through the path set up above)

import pytest  # noqa: E402

_builtin_zip = zip


def _zip(*iterables, strict=False):
    """zip() with Python 3.10's strict=, which MicroPython's zip lacks; only sized arguments
    are checked, which is what the tests pass."""
    if strict and len({len(iterable) for iterable in iterables}) > 1:
        raise ValueError("zip() arguments have different lengths")
    return _builtin_zip(*iterables)


builtins.zip = _zip


class Conftest:
    """What tests/conftest.py gives the portable-core tests: the conformance vectors."""

    ROOT = pathlib.Path(os.getcwd())
    VECTORS = ROOT.parent / "shared" / "vectors"

    @staticmethod
    def vectors():
        if not Conftest.VECTORS.is_dir():
            pytest.fail("conformance vectors not found at %s" % Conftest.VECTORS)
        return Conftest.VECTORS


sys.modules["tests.conftest"] = Conftest
SHARED_FIXTURES = {"vectors": Conftest.vectors}

VERBOSE = "-v" in sys.argv

SUPPORTED_SKIP = ("skip",)


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = []
        self.skipped = {}
        self.xfailed = 0

    def skip(self, reason, count=1):
        self.skipped[reason] = self.skipped.get(reason, 0) + count


def find_modules(paths):
    found = []
    for path in paths:
        if path.endswith(".py"):
            found.append(path)
            continue
        for name in sorted(os.listdir(path)):
            if name.startswith("test_") and name.endswith(".py"):
                found.append(path.rstrip("/") + "/" + name)
    return found


def _split_arguments(text):
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    names = []
    for part in parts:
        part = part.strip()
        if not part or part.startswith("*") or "=" in part or part == "self":
            continue
        names.append(part.split(":")[0].strip())
    return names


def signatures(source):
    """{'test_x': [args], 'TestY.test_z': [args], 'fixture_name': [args]} from source text."""
    found = {}
    current_class = None
    lines = source.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped.startswith("class ") and indent == 0:
            current_class = stripped[6:].split("(")[0].split(":")[0].strip()
        elif stripped and indent == 0 and not stripped.startswith(("#", "@", "def ")):
            current_class = None
        if stripped.startswith("def ") and "(" in stripped:
            name = stripped[4:stripped.index("(")].strip()
            text = stripped[stripped.index("(") + 1:]
            while "):" not in text and ") ->" not in text and index + 1 < len(lines):
                index += 1
                text += " " + lines[index].strip()
            end = text.rfind("):") if "):" in text else text.rfind(") ->")
            key = current_class + "." + name if indent > 0 and current_class else name
            if indent == 0:
                current_class = None
                key = name
            found[key] = _split_arguments(text[:end])
        index += 1
    return found


def _cases(function):
    """[(label, {arg: value})] from parametrize marks, or None when a skip mark applies."""
    cases = [("", {})]
    for one in pytest.MARKS.get(function, []):
        if one.name == "parametrize":
            names = one.args[0]
            if isinstance(names, str):
                names = [n.strip() for n in names.split(",") if n.strip()]
            expanded = []
            for label, bound in cases:
                for number, values in enumerate(one.args[1]):
                    if isinstance(values, pytest.ParameterSet):
                        values = values.values
                    elif len(names) == 1:
                        values = (values,)
                    extra = dict(bound)
                    # no strict= in MicroPython
                    for name, value in zip(names, values):  # noqa: B905
                        extra[name] = value
                    expanded.append((label + "[" + str(number) + "]", extra))
            cases = expanded
    return cases


def _skip_reason(function):
    for one in pytest.MARKS.get(function, []):
        if one.name == "skip":
            return one.kwargs.get("reason") or (one.args[0] if one.args else "skip mark")
        if one.name == "skipif" and one.args and one.args[0]:
            return one.kwargs.get("reason", "skipif")
    return None


def _xfail(function):
    return any(one.name == "xfail" for one in pytest.MARKS.get(function, []))


def _resolve(name, namespace, sigs, finalisers):
    fixture = namespace.get(name)
    if fixture is None or fixture not in pytest.FIXTURES:
        if name in SHARED_FIXTURES:
            return SHARED_FIXTURES[name]()
        raise pytest.Skipped("fixture " + name)
    kwargs = {arg: _resolve(arg, namespace, sigs, finalisers) for arg in sigs.get(name, [])}
    value = fixture(**kwargs)
    if type(value).__name__ == "generator":
        finalisers.append(value)
        value = next(value)
    return value


def run_one(label, function, args, namespace, sigs, tally, bound_self=None):
    reason = _skip_reason(function)
    if reason:
        tally.skip(reason)
        return
    for case_label, bound in _cases(function):
        finalisers = []
        try:
            kwargs = dict(bound)
            for arg in args:
                if arg not in kwargs:
                    kwargs[arg] = _resolve(arg, namespace, sigs, finalisers)
            if bound_self is not None:
                function(bound_self, **kwargs)
            else:
                function(**kwargs)
            tally.passed += 1
        except pytest.Skipped as exc:
            tally.skip(str(exc) or "skipped")
        except Exception as exc:  # a failing test, reported with its name
            if VERBOSE:
                print("FAILED", label + case_label)
                sys.print_exception(exc)
            if _xfail(function):
                tally.xfailed += 1
            else:
                tally.failed.append(label + case_label + ": " + type(exc).__name__ + ": " +
                                    str(exc)[:200])
        for generator in finalisers:
            try:
                next(generator)
            except StopIteration:
                pass


def run_module(path, tally):
    module_name = path[:-3].replace("/", ".")
    with open(path) as f:
        sigs = signatures(f.read())
    tests = [name for name in sigs if name.split(".")[-1].startswith("test_")]
    try:
        module = __import__(module_name, None, None, ["*"])
    except Exception as exc:
        tally.skip("module " + path + " does not import: " + repr(exc), len(tests))
        return
    namespace = module.__dict__
    skip_all = getattr(module, "pytestmark", None)
    marks = skip_all if isinstance(skip_all, list) else [skip_all] if skip_all else []
    for one in marks:
        one = getattr(one, "mark", one)
        if one.name == "skipif" and one.args and one.args[0]:
            tally.skip(one.kwargs.get("reason", "skipif"), len(tests))
            return
    for name in tests:
        if "." in name:
            class_name, method = name.split(".")
            cls = namespace.get(class_name)
            if cls is None or not class_name.startswith("Test"):
                continue
            run_one(path + "::" + name, getattr(cls, method), sigs[name], namespace, sigs,
                    tally, bound_self=cls())
        elif name in namespace:
            run_one(path + "::" + name, namespace[name], sigs[name], namespace, sigs, tally)


def main(paths):
    tally = Tally()
    for path in find_modules(paths):
        run_module(path, tally)
    for line in tally.failed:
        print("FAILED", line)
    for reason in sorted(tally.skipped):
        print("skipped %d: %s" % (tally.skipped[reason], reason))
    skipped = sum(tally.skipped.values())
    print("%d passed, %d failed, %d skipped, %d xfailed" % (
        tally.passed, len(tally.failed), skipped, tally.xfailed))
    return 1 if tally.failed else 0


DEFAULT_PATHS = ["tests/sip", "tests/sdp", "tests/rtp", "tests/codecs", "tests/app",
                 "tests/session"]
sys.exit(main([arg for arg in sys.argv[1:] if arg != "-v"] or DEFAULT_PATHS))
