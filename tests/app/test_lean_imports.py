"""Issue 14: the app layer loads no hashlib (OpenSSL's libcrypto, ~3.7 MB RSS) at import; the
door codes load it at the first code typed, and give the same bytes as the portable PBKDF2."""

import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(sys.implementation.name != "cpython",
                                reason="CPython's built-in modules")


def _run(code):
    result = subprocess.run([sys.executable, "-S", "-c", "import sys\n" + code], cwd=str(ROOT),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_app_modules_import_without_hashlib():
    out = _run("import firmware.app.doorcodes, firmware.app.callers, firmware.app.controller\n"
               "from firmware.app.callers import constant_time_equal\n"
               "print(constant_time_equal('1234', '1234'), constant_time_equal('1234', '1235'))\n"
               "print('_hashlib' in sys.modules, 'hashlib' in sys.modules, 'hmac' in sys.modules)")
    assert out == ["True", "False", "False", "False", "False"]


def test_door_code_hash_loads_hashlib_when_used_and_matches_portable():
    out = _run("from firmware.app import doorcodes\n"
               "a = doorcodes.pbkdf2_sha256(b'4711', b'salt', 50)\n"
               "print('_hashlib' in sys.modules)\n"
               "print(a == doorcodes.portable_pbkdf2_sha256(b'4711', b'salt', 50))\n"
               "long = b'9' * 80\n"
               "print(doorcodes.pbkdf2_sha256(long, b's', 3) == "
               "doorcodes.portable_pbkdf2_sha256(long, b's', 3))")
    assert out == ["True", "True", "True"]


def test_the_portable_core_never_imports_hashlib_or_hmac():
    import ast
    found = []
    for package in ("sip", "sdp", "rtp", "codecs", "app", "session"):
        for path in sorted((ROOT / "firmware" / package).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                found += [(path.name, n) for n in names if n.split(".")[0] in ("hashlib", "hmac")]
    assert found == []  # compat.hash_constructor / pbkdf2_hmac / compare_digest instead
