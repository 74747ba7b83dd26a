"""Stand-in for hypothesis under MicroPython (test-only): @given tests are reported as skipped
(property-based testing needs CPython), everything else is accepted so that the plain tests in
the same module still run."""

import pytest


class _Anything:
    """A strategy, a setting, a HealthCheck member...: any attribute or call gives itself."""

    def __getattr__(self, name):
        return self

    def __call__(self, *args, **kwargs):
        if len(args) == 1 and callable(args[0]) and not kwargs and not isinstance(args[0],
                                                                                   _Anything):
            return args[0]  # used as a decorator (settings(...), st.composite)
        return self

    def __iter__(self):
        return iter(())


HealthCheck = _Anything()
assume = _Anything()
example = _Anything()
note = _Anything()


class settings(_Anything):
    def __init__(self, *args, **kwargs):
        pass

    @staticmethod
    def register_profile(*args, **kwargs):
        pass

    @staticmethod
    def load_profile(*args, **kwargs):
        pass

    def __call__(self, function):
        return function


def given(*args, **kwargs):
    def decorate(function):
        pytest.MARKS.setdefault(function, []).append(
            pytest.Mark("skip", (), {"reason": "hypothesis (CPython only)"}))
        return function
    return decorate
