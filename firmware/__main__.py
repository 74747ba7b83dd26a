"""The entry point:

    python -m firmware --board NAME --config PATH [--state-dir DIR] [--mic WAV] [--speaker-dir DIR]
                       [--echo-path WAV] [--camera pattern|FILE]
"""

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


OPTIONS = ("--board", "--config", "--state-dir", "--mic", "--speaker-dir", "--echo-path",
           "--camera", "--log-level")


def parse_args(argv: "list[str]") -> "argparse.Namespace":
    """The command line. The usual case (each option given once as `--name value` or
    `--name=value`) is read here; anything else (--help, a missing or unknown option) goes to
    argparse, which prints the usage or the error and exits: argparse's help formatter
    imports shutil, bz2 and lzma, a few ms of every start (docs/BENCH.md "Profiles")."""
    import types

    values: dict[str, str] = {}
    rest = list(argv)
    while rest:
        name, equals, value = rest.pop(0).partition("=")
        if name not in OPTIONS or name in values:
            return _argparse(argv)
        if not equals:
            if not rest or rest[0].startswith("-"):
                return _argparse(argv)
            value = rest.pop(0)
        values[name] = value
    if "--board" not in values or "--config" not in values:
        return _argparse(argv)
    return types.SimpleNamespace(  # type: ignore[return-value]  # argparse's Namespace, duck-typed
        board=values["--board"], config=values["--config"],
        state_dir=values.get("--state-dir"), mic=values.get("--mic"),
        speaker_dir=values.get("--speaker-dir"), echo_path=values.get("--echo-path"),
        camera=values.get("--camera"),
        log_level=values.get("--log-level", os.environ.get("DOORLINE_LOG", "INFO")))


def _argparse(argv: "list[str]") -> "argparse.Namespace":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m firmware",
                                     description="Doorline SIP door station")
    parser.add_argument("--board", required=True, help="board name (boards/NAME.toml)")
    parser.add_argument("--config", required=True,
                        help="TOML configuration file (created with defaults when missing)")
    parser.add_argument("--state-dir", default=None,
                        help="where the event log and other state live (default: next to config)")
    parser.add_argument("--mic", default=None, help="simulated boards: WAV file as microphone")
    parser.add_argument("--speaker-dir", default=None,
                        help="simulated boards: write each call's received audio here")
    parser.add_argument("--echo-path", default=None,
                        help="simulated boards: impulse response WAV of the room between the "
                             "speaker and the microphone (the speaker's echo is added to the mic)")
    parser.add_argument("--camera", default=None,
                        help="simulated boards: 'pattern' (a moving test pattern) or an image "
                             "or video file (looped) as the camera")
    parser.add_argument("--log-level", default=os.environ.get("DOORLINE_LOG", "INFO"))
    return parser.parse_args(argv)


def main(argv: "list[str] | None" = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Register first, everything else after (issue 14): while the start plan of the last start
    # still applies, the REGISTER leaves (and its challenge is answered) before asyncio, the
    # configuration parser and the board are imported (firmware/runtime/faststart.py).
    from firmware.runtime.faststart import hold_signals, register_first

    hold_signals()  # a SIGTERM from here on still unregisters (launch.run)
    state_dir = args.state_dir or os.path.dirname(os.path.abspath(args.config))
    early = register_first(state_dir, args.config)

    from firmware.runtime.launch import start

    return start(args, early)


if __name__ == "__main__":
    sys.exit(main())
