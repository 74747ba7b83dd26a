"""What the station's executors share: the state of the running station, typed once here.

`runtime.station.Station` is made of `Facade` (runtime/facade.py), `CallExecutors`
(runtime/callexec.py) and `BoardExecutors` (runtime/board.py); each of them reads part of this
state and calls a few of the station's drive methods. This base class declares both, so that
every part is type-checked against the same names; `Station.__init__` assigns the state
(`controller` and `eventlog` are made by `Station.prepare()`, before any executor runs) and
`Station` or one of the parts defines each method (the stubs below come last in the method
resolution order and only raise).
"""

import asyncio
import socket

from firmware.settings import Config

TYPE_CHECKING = False
if TYPE_CHECKING:
    from firmware.app.controller import Controller
    from firmware.app.schedules import LocalTime
    from firmware.runtime.cues import CuePlayer
    from firmware.runtime.eventlog import EventLog
    from firmware.runtime.health import Health, Watchdog
    from firmware.runtime.media import MediaStream, PortPool
    from firmware.runtime.transport import Transports
    from firmware.session.session import SessionManager
    from firmware.sip.call import CallManager
    from firmware.sip.useragent import UserAgent
    from hal.base import Board

# A bound RTP/RTCP socket pair, not yet playing.
Pair = list[socket.socket]


class StationParts:
    # -- set by Station.__init__ -----------------------------------------------------------
    cfg: Config
    board: "Board | None"
    config_path: str | None
    state_dir: str
    loop: asyncio.AbstractEventLoop
    started_at: float
    simulated: bool
    counters: dict[str, int]
    health: "Health"
    watchdog: "Watchdog"
    sip_error: str | None
    sip_failed: bool
    config_errors: dict[str, str]
    # -- set by Station.prepare() ----------------------------------------------------------
    controller: "Controller"
    eventlog: "EventLog"
    # -- while SIP runs (None otherwise) ---------------------------------------------------
    ua: "UserAgent | None"
    calls: "CallManager | None"
    sessions: "SessionManager | None"
    transports: "Transports | None"
    ports: "PortPool | None"  # made at the first need (CallExecutors._port_pool)
    rtp_host: str  # where the port pool binds (the SIP listen address)
    streams: "dict[str, MediaStream]"  # call id → MediaStream (playing)
    _pairs: dict[str, Pair | None]  # call id → RTP/RTCP pair, bound, not yet playing
    _stats: dict[str, dict]  # call id → last media statistics, logged with its end
    _cue: "CuePlayer | None"
    _sip_start: "asyncio.Future[None] | None"

    # -- the station's drive and life cycle (defined by Station) ---------------------------
    def _kick(self) -> None:
        raise NotImplementedError

    async def _start_sip(self) -> None:
        raise NotImplementedError

    async def _stop_sip(self) -> None:
        raise NotImplementedError

    async def _cancel_sip_start(self) -> None:
        raise NotImplementedError

    def begin_sip(self) -> "asyncio.Future[None]":
        raise NotImplementedError

    def _sip_failed(self, exc: BaseException, hint: str | None = None) -> None:
        raise NotImplementedError

    # -- defined by BoardExecutors ---------------------------------------------------------
    def _stop_cue(self) -> None:
        raise NotImplementedError

    def local_now(self) -> "LocalTime | None":
        raise NotImplementedError

    def _play_cue_locally(self, name: str) -> None:
        raise NotImplementedError
