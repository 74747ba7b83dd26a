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
    from firmware.runtime.camera import CameraService
    from firmware.runtime.conference import Mixer, SharedAudio
    from firmware.runtime.cues import CuePlayer
    from firmware.runtime.eventlog import EventLog
    from firmware.runtime.health import Health, Watchdog
    from firmware.runtime.house import House
    from firmware.runtime.media import MediaStream, PortPool
    from firmware.runtime.transport import Transports
    from firmware.runtime.video import VideoStream
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
    _sip_restart_at: float | None  # loop time an applied config began restarting SIP
    _sip_changed_at: float  # loop time SIP last started or failed (status()'s `since`)
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
    _spare_pair: "tuple[int, Pair] | None"  # (port, pair) bound for the next incoming call
    _video_pairs: dict[str, Pair]  # call id → the video's pair, bound, not yet playing
    videos: "dict[str, VideoStream]"  # call id → VideoStream (playing)
    _started_at: dict[str, float]  # call id → Unix time the call began (status() `started`)
    _stats: dict[str, dict]  # call id → last media statistics, logged with its end
    _cue: "CuePlayer | None"
    _mixer: "Mixer | None"  # the conference's (runtime/conference.py), made at the first need
    _shared: "SharedAudio | None"  # the conference's one real audio device (paced boards)
    _sip_start: "asyncio.Future[None] | None"
    house: "House | None"  # MQTT and webhooks, while configured (runtime/house.py)
    _camera: "CameraService | None"  # made at the first need (Station.camera_service)

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

    def _port_pool(self) -> "PortPool":  # CallExecutors
        raise NotImplementedError

    def _sip_failed(self, exc: BaseException, hint: str | None = None) -> None:
        raise NotImplementedError

    def camera_service(self) -> "CameraService | None":
        raise NotImplementedError

    async def _reconfigure_house(self, old: Config) -> None:
        raise NotImplementedError

    # -- defined by BoardExecutors ---------------------------------------------------------
    def _stop_cue(self) -> None:
        raise NotImplementedError

    def local_now(self) -> "LocalTime | None":
        raise NotImplementedError

    def _play_cue_locally(self, name: str) -> None:
        raise NotImplementedError
