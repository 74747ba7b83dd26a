"""A tiny stand-in for pytest under MicroPython (test-only; tools/mpy/runner.py drives it).

Supports what the portable-core tests use: raises (context manager and call form, match=),
approx, fixture, skip, fail, importorskip, param, and marks (parametrize, skip, skipif, xfail;
any other mark such as slow or peers is accepted and ignored). MicroPython functions cannot carry
attributes, so marks and fixtures are recorded in the registries below, keyed by function.
"""

import re

MARKS = {}       # function -> list of Mark, outermost decorator last
FIXTURES = {}    # function -> True for @fixture functions


class Skipped(Exception):
    pass


class Failed(AssertionError):
    pass


def skip(reason=""):
    raise Skipped(reason)


def fail(reason=""):
    raise Failed(reason)


def importorskip(name):
    try:
        return __import__(name)
    except ImportError:
        raise Skipped("needs " + name) from None


class ParameterSet:
    def __init__(self, values, id=None, marks=()):
        self.values = values
        self.id = id
        self.marks = marks


def param(*values, id=None, marks=()):
    return ParameterSet(values, id, marks)


class Mark:
    def __init__(self, name, args=(), kwargs=None):
        self.name = name
        self.args = args
        self.kwargs = kwargs or {}

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and not kwargs and callable(args[0]) and not self.args:
            MARKS.setdefault(args[0], []).append(self)
            return args[0]
        return _MarkDecorator(Mark(self.name, args, kwargs))


class _MarkDecorator:
    def __init__(self, mark):
        self.mark = mark

    def __call__(self, function):
        MARKS.setdefault(function, []).append(self.mark)
        return function


class _MarkFactory:
    def __getattr__(self, name):
        return Mark(name)


mark = _MarkFactory()


def fixture(function=None, **kwargs):
    if function is None:
        return fixture
    FIXTURES[function] = True
    return function


class ExceptionInfo:
    def __init__(self):
        self.value = None
        self.type = None


class _Raises:
    def __init__(self, expected, match):
        self.expected = expected
        self.match = match
        self.info = ExceptionInfo()

    def __enter__(self):
        return self.info

    def __exit__(self, kind, value, traceback):
        if kind is None:
            raise Failed("DID NOT RAISE " + repr(self.expected))
        if not issubclass(kind, self.expected):
            return False
        if self.match is not None and not re.search(self.match, str(value)):
            raise Failed("exception %r does not match %r" % (str(value), self.match))
        self.info.value = value
        self.info.type = kind
        return True


def raises(expected, *args, match=None, **kwargs):
    context = _Raises(expected, match)
    if not args:
        return context
    with context:
        args[0](*args[1:], **kwargs)
    return context.info


class approx:
    def __init__(self, expected, rel=None, abs=None):
        self.expected = expected
        self.rel = 1e-6 if rel is None and abs is None else rel
        self.abs = 1e-12 if abs is None else abs

    def _close(self, actual, expected):
        tolerance = self.abs
        if self.rel is not None:
            tolerance = max(tolerance, self.rel * (expected if expected >= 0 else -expected))
        difference = actual - expected
        return (difference if difference >= 0 else -difference) <= tolerance

    def __eq__(self, actual):
        if isinstance(self.expected, (list, tuple)):
            return len(actual) == len(self.expected) and all(
                self._close(a, e) for a, e in zip(actual, self.expected))  # noqa: B905
        return self._close(actual, self.expected)

    def __ne__(self, actual):
        return not self.__eq__(actual)

    def __repr__(self):
        return "approx(%r)" % (self.expected,)
