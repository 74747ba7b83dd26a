"""The station's start after the command line (firmware/__main__.py): logging, the
configuration, the board, then the asyncio loop with the station and, once SIP has settled, the
web page. `early`: the REGISTER that firmware/runtime/faststart.py sent before this module was
imported, which the station takes over."""

import logging
import os
import signal
import sys

# First: asyncio without ssl until TLS is used (docs/BENCH.md "Start-up").
from firmware.runtime.lazyssl import asyncio  # isort: skip

import hal
from firmware import config as configuration
from firmware.runtime import faststart
from firmware.runtime.memory import fix_malloc_threshold
from firmware.runtime.station import Station
from hal.board import BoardError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

    from firmware.runtime.faststart import Early
    from firmware.settings import Config
    from hal.base import Board

SIP_HEAD_START = 1.0  # seconds the web page waits for SIP at most (a slow DNS must not hide it)


async def run(args: "argparse.Namespace", cfg: "Config", board: "Board",
              config_errors: "dict[str, str] | None" = None,
              early: "Early | None" = None) -> None:
    loop = asyncio.get_running_loop()
    station = Station(cfg, board, config_path=args.config, state_dir=args.state_dir, loop=loop)
    station.config_errors = dict(config_errors or {})
    station.early = early
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if faststart.signalled():  # during the start, before these handlers (faststart.hold_signals)
        stop.set()
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


def start(args: "argparse.Namespace", early: "Early | None" = None) -> int:
    """Everything after the command line; returns the exit status."""
    # Under systemd the journal stamps each line itself.
    stamp = "" if os.environ.get("JOURNAL_STREAM") else "%(asctime)s "
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format=stamp + "%(levelname)s %(name)s: %(message)s")
    state_dir = args.state_dir or os.path.dirname(os.path.abspath(args.config))
    args.state_dir = state_dir
    os.makedirs(state_dir, exist_ok=True)
    config_errors: dict[str, str] = {}
    try:
        cfg = configuration.load(args.config, cache_dir=state_dir)
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
        if early is not None:
            early.close()
        return 2
    try:
        board = hal.open_board(args.board, mic=args.mic, speaker_dir=args.speaker_dir,
                               echo_path=args.echo_path, camera=args.camera,
                               cache_dir=state_dir)
    except (BoardError, ValueError) as exc:
        print(f"board {args.board}: {exc}", file=sys.stderr)
        if early is not None:
            early.close()
        return 2
    asyncio.run(run(args, cfg, board, config_errors, early))
    return 0
