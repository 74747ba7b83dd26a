"""The MicroPython test runner and its pytest shim, on a small test module written here, and the
mpy-cross compile of the portable core."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MICROPYTHON = pathlib.Path(sys.executable).parent / "micropython"

SAMPLE = '''
import pytest
from hypothesis import given, strategies as st

@pytest.fixture
def numbers():
    yield [1, 2, 3]

def test_fixture_from_the_module(numbers):
    assert sum(numbers) == 6

@pytest.mark.parametrize("value, expected", [(1, 2), (2, 4), pytest.param(3, 7, id="wrong")])
def test_parametrize(value, expected):
    assert value * 2 == expected

def test_raises_and_approx():
    with pytest.raises(ValueError, match="bad"):
        raise ValueError("bad thing")
    assert 0.1 + 0.2 == pytest.approx(0.3)
    assert pytest.raises(KeyError, {}.__getitem__, "k").type is KeyError

def test_raises_fails_when_nothing_is_raised():
    with pytest.raises(ValueError):
        pass

def test_needs_a_builtin_fixture(tmp_path):
    raise AssertionError("never runs")

@given(st.integers())
def test_property(n):
    raise AssertionError("never runs")

@pytest.mark.skipif(True, reason="not here")
def test_skipped():
    raise AssertionError("never runs")

class TestGrouped:
    def test_method(self):
        assert [1] * 2 == [1, 1]
'''

pytestmark = pytest.mark.skipif(not MICROPYTHON.exists(),
                                reason="micropython not installed (pip install '.[test]')")


def test_runner_counts_passes_failures_and_skips(tmp_path):
    (tmp_path / "sample").mkdir()
    (tmp_path / "sample" / "test_sample.py").write_text(SAMPLE)
    result = subprocess.run([str(MICROPYTHON), str(ROOT / "tools/mpy/runner.py"), "sample"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "5 passed, 2 failed, 3 skipped, 0 xfailed", result.stdout
    assert result.returncode == 1
    failed = [line for line in lines if line.startswith("FAILED")]
    assert failed[0].startswith("FAILED sample/test_sample.py::test_parametrize[2]")
    assert "DID NOT RAISE" in failed[1]
    assert "skipped 1: fixture tmp_path" in lines
    assert "skipped 1: hypothesis (CPython only)" in lines
    assert "skipped 1: not here" in lines


@pytest.mark.skipif(shutil.which("mpy-cross", path=str(MICROPYTHON.parent)) is None,
                    reason="mpy-cross not installed")
def test_portable_core_cross_compiles():
    result = subprocess.run([sys.executable, str(ROOT / "tools/mpy/compile.py")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "bytes of .mpy in total" in result.stdout
