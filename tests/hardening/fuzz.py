"""pytest plugin behind `make fuzz`: keeps only the hypothesis tests and gives each of them
FUZZ_EXAMPLES cases (default 20000), overriding the small counts `make test` uses.

    .venv/bin/python -m pytest -p tests.hardening.fuzz tests/sip tests/sdp tests/rtp ...

Hypothesis reads a test's settings from `_hypothesis_internal_use_settings` when it runs, so
replacing them at collection time raises the count even where a test pins `max_examples`.
"""

import os

from hypothesis import HealthCheck, settings


def pytest_collection_modifyitems(config, items):
    examples = int(os.environ.get("FUZZ_EXAMPLES", "20000"))
    keep, drop = [], []
    for item in items:
        test = getattr(item, "obj", None)
        current = getattr(test, "_hypothesis_internal_use_settings", None)
        if current is None:
            drop.append(item)
            continue
        test._hypothesis_internal_use_settings = settings(
            current, max_examples=max(examples, current.max_examples), deadline=None,
            suppress_health_check=list(HealthCheck))
        keep.append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line("fuzz: %s hypothesis cases per test" %
                                os.environ.get("FUZZ_EXAMPLES", "20000"))
