"""Command line of the bench: `python -m tools.bench [--quick | --smoke] [--out DIR]`."""

import argparse
import compileall
import pathlib
import signal
import sys

from tools.bench.harness import CASES, Bench

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _exit_on_signal(signum, frame):
    raise SystemExit(128 + signum)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tools/bench/run", description=__doc__)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--quick", action="store_true", help="short runs (< 2 minutes)")
    pace.add_argument("--smoke", action="store_true",
                      help="tiny runs (seconds) that only prove every case still measures")
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "bench",
                        help="where results.json, results.md and the plot go (default: bench/)")
    parser.add_argument("--only", nargs="+", choices=CASES, help="run only these cases")
    args = parser.parse_args(argv)
    # `timeout make bench` or a closed terminal: end through the harness's `finally`, which
    # stops every peer and UA it started (SIGTERM's default would leave them all running).
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _exit_on_signal)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    # As installed on a Pi: the firmware's bytecode exists before it starts. Without this, an
    # environment with PYTHONDONTWRITEBYTECODE=1 recompiles everything at every start (about
    # 140 ms more in start -> registered).
    for package in ("firmware", "hal"):
        compileall.compile_dir(str(ROOT / package), quiet=1)
    results = Bench(args.out.resolve(), mode=mode, only=args.only).run()
    print((args.out / "results.md").read_text())
    print(f"bench: {len(results['errors'])} case side(s) could not be measured"
          if results["errors"] else "bench: every case measured")
    return 0


if __name__ == "__main__":
    sys.exit(main())
