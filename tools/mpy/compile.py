"""Cross-compile every module of the portable core (the list in manifest.py) with mpy-cross and
print the total .mpy size. Exit status 1 if any module fails to compile.

    python tools/mpy/compile.py [--mpy-cross PATH]
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]


def portable_files():
    namespace: dict = {}
    exec(compile((ROOT / "manifest.py").read_text(), "manifest.py", "exec"), namespace)
    return namespace["portable_files"](str(ROOT / "firmware"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = pathlib.Path(sys.executable).parent / "mpy-cross"
    parser.add_argument("--mpy-cross", default=str(default) if default.exists() else "mpy-cross")
    args = parser.parse_args(argv)
    total, failures = 0, 0
    with tempfile.TemporaryDirectory() as out:
        for name in portable_files():
            target = os.path.join(out, name.replace("/", "_")[:-3] + ".mpy")
            result = subprocess.run([args.mpy_cross, "-O3", "-o", target,
                                     f"firmware/{name}"], cwd=ROOT, capture_output=True,
                                    text=True)
            if result.returncode != 0:
                failures += 1
                print(f"mpy-cross failed on firmware/{name}:\n{result.stderr}", file=sys.stderr)
                continue
            total += os.path.getsize(target)
        count = len(portable_files())
    print(f"mpy-cross: {count - failures} of {count} portable modules compiled, "
          f"{total} bytes of .mpy in total")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
