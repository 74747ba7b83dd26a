"""The entry point:

    python -m firmware --board NAME --config PATH [--state-dir DIR] [--mic WAV] [--speaker-dir DIR]
                       [--echo-path WAV] [--camera pattern|FILE]
"""

import logging
import os
import signal
import sys

# First: asyncio without ssl until TLS is used (docs/BENCH.md "Start-up").
from firmware.runtime.lazyssl import asyncio  # isort: skip

import hal
from firmware import config as configuration
from firmware.runtime.memory import fix_malloc_threshold
from firmware.runtime.station import Station
from hal.board import BoardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from firmware.settings import Config
    from hal.base import Board

SIP_HEAD_START = 1.0  # seconds the web page waits for SIP at most (a slow DNS must not hide it)


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


async def run(args: "argparse.Namespace", cfg: "Config", board: "Board",
              config_errors: "dict[str, str] | None" = None) -> None:
    loop = asyncio.get_running_loop()
    station = Station(cfg, board, config_path=args.config, state_dir=args.state_dir, loop=loop)
    station.config_errors = dict(config_errors or {})
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # The web page does not wait long for SIP: whatever SIP does (a port taken, a registrar
    # that does not resolve, a configuration file with errors), the page is there to say why
    # and to fix it. SIP gets a short head start: register first, everything else after. Until
    # the registrar has answered (or SIP failed, or direct-IP mode listens) the loop does
    # nothing else, so the challenge's answer leaves at once; then the media code and the web
    # server are loaded (issue 14: they cost more than the two round trips on loopback).
    station.prepare()
    sip = station.begin_sip()
    deadline = loop.time() + SIP_HEAD_START
    await asyncio.wait({sip}, timeout=SIP_HEAD_START)
    try:
        await asyncio.wait_for(station.sip_settled.wait(), max(0.0, deadline - loop.time()))
    except TimeoutError:
        pass
    station.warm_up()
    # Before the web page (its scrypt check allocates 16 MiB), after the REGISTER: ctypes is
    # not on the start path.
    fix_malloc_threshold()
    web = await start_web(station, cfg, args)
    await stop.wait()
    logging.getLogger("doorline").info("stopping")
    if web is not None:
        web.close()
    await station.stop()


async def start_web(station: Station, cfg: "Config",
                    args: "argparse.Namespace") -> "asyncio.Server | None":
    """The web page and API on [web] listen (a change of it applies at the next start)."""
    from firmware.web.app import create_app, start

    host, port = configuration.parse_host_port(cfg.web.listen)
    ssl_context = None
    if cfg.web.https:
        from firmware.web.certs import server_ssl_context

        ssl_context = server_ssl_context(args.state_dir,
                                         hosts=(host, *cfg.web.hostnames))
    app = create_app(station, args.config, args.state_dir)
    try:
        server = await start(app, host, port, ssl_context)
    except OSError as exc:
        logging.getLogger("doorline").error("web page not available on %s:%d: %s", host, port,
                                            exc.strerror)
        return None
    scheme = "https" if ssl_context else "http"
    logging.getLogger("doorline").info("web page on %s://%s:%d/", scheme, host, port)
    return server


def main(argv: "list[str] | None" = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Under systemd the journal stamps each line itself.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=stamp + "%(levelname)s %(name)s: %(message)s")
    state_dir = args.state_dir or os.path.dirname(os.path.abspath(args.config))
    args.state_dir = state_dir
    os.makedirs(state_dir, exist_ok=True)
    config_errors: dict[str, str] = {}
    try:
        cfg = configuration.load(args.config)
    except configuration.ConfigError as exc:
        # Exiting would only make systemd restart us into the same error, with no page to fix
        # it: run the web page on a safe configuration instead, SIP off, the errors shown.
        print(f"{args.config}: invalid configuration; SIP stays off until a valid "
              "configuration is saved on the web page:", file=sys.stderr)
        for field, message in exc.errors.items():
            print(f"  {field or '(file)'}: {message}", file=sys.stderr)
        config_errors = exc.errors
        cfg = configuration.salvage(args.config, exc.errors)
    except OSError as exc:
        print(f"{args.config}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        board = hal.open_board(args.board, mic=args.mic, speaker_dir=args.speaker_dir,
                               echo_path=args.echo_path, camera=args.camera)
    except (BoardError, ValueError) as exc:
        print(f"board {args.board}: {exc}", file=sys.stderr)
        return 2
    asyncio.run(run(args, cfg, board, config_errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
