"""Register first, everything else after (issue 14: start → registered ≤ 37 ms).

Before the entry point imports asyncio, the configuration parser, the board and the rest
(~60 ms on the bench machine), this module sends the first REGISTER and answers its digest
challenge over a plain blocking UDP socket: the sans-I/O SIP core (firmware/sip) builds and
reads every message, this module only moves bytes and waits for the core's next timer. Then
the socket and the UserAgent, with its registration state, are handed to the asyncio station
(`Station(..., early=...)`), which carries on without registering again.

What it needs to know before the configuration is parsed comes from a small start plan that
the station writes into the state directory after a normal start (`remember`): the validated
`[sip]` section, the listen address and the registrar as the normal path located it. The plan
counts only while the configuration file is the one it was made from (same path, inode, size
and modification time); then the normal path checks again, after parsing the file, that the
`[sip]` section and the addresses are still those of the plan, and otherwise closes the early
socket and starts SIP as usual. The plan holds the SIP password, as the configuration file
does: it is written with mode 0600.

The fast path applies only where it needs no decision of the normal path: UDP, a registrar
given as an IP address (no DNS, RFC 3263 §4.2 with a numeric host), a plan made by the same
configuration file. TLS, TCP, host names, direct-IP mode, a first start or a changed file all
take the normal path. `DOORLINE_FAST_REGISTER=0` turns it off (A/B measurements).

Imports: only what the REGISTER needs (`_socket`, not `socket`, whose enum conversions cost
~8 ms here); no logging (the station logs the outcome once it runs).
"""

import _socket
import marshal
import os
import time

from firmware.settings import SipConfig
from firmware.sip.endpoint import Peer
from firmware.sip.useragent import UASettings, UserAgent

PLAN_NAME = "sip-start.plan"
PLAN_VERSION = 1
WAIT = 0.25  # s: the longest the start waits for the registrar before going on without it
MAX_HELD = 16  # requests that arrive meanwhile, handed to the station (bounded)
MAX_DATAGRAM = 65535


_SIGNALLED: list[int] = []  # the last SIGTERM / SIGINT before the event loop's handlers


def hold_signals() -> None:
    """From the first line of the start: SIGTERM and SIGINT are remembered, not fatal, until
    the event loop installs its handlers (firmware/runtime/launch.py asks `signalled()` then
    and stops the station the usual way: unregister, exit 0). Without this, a SIGTERM in the
    ~60 ms between the early REGISTER's 200 and those handlers would leave the binding at the
    registrar. `_signal` (already loaded by the interpreter), not `signal` (enum, ~2 ms)."""
    import _signal  # type: ignore[import-not-found]  # the C module behind `signal`

    def remember(signum: int, frame: object) -> None:
        _SIGNALLED[:] = [signum]  # one is enough (bounded, whatever arrives)

    for number in (_signal.SIGTERM, _signal.SIGINT):
        _signal.signal(number, remember)


def signalled() -> bool:
    return bool(_SIGNALLED)


class Early:
    """What the fast path hands to the station: the bound UDP socket, the UserAgent that
    registered through it (its events not yet drained), what it was built from, and the
    datagrams that were not responses (replayed to the station in order)."""

    __slots__ = ("sock", "ua", "sip", "listen", "registrar", "held")

    def __init__(self, sock: "_socket.socket", ua: UserAgent, sip: SipConfig,
                 listen: "tuple[str, int]", registrar: Peer) -> None:
        self.sock = sock
        self.ua = ua
        self.sip = sip
        self.listen = listen
        self.registrar = registrar
        self.held: list[tuple[bytes, tuple[str, int]]] = []

    def matches(self, sip: SipConfig, listen: "tuple[str, int]", registrar: "Peer | None") \
            -> bool:
        """Does the parsed configuration still lead where the plan led?"""
        return sip == self.sip and tuple(listen) == self.listen and registrar is not None and \
            registrar.same_address(self.registrar)

    def close(self) -> None:
        self.sock.close()


def plan_path(state_dir: str) -> str:
    return os.path.join(state_dir, PLAN_NAME)


def _file_key(config_path: str) -> "list[object]":
    st = os.stat(config_path)
    return [os.path.abspath(config_path), st.st_ino, st.st_size, st.st_mtime_ns]


def _plan(config_path: str, sip: SipConfig, listen: "tuple[str, int]",
          registrar: Peer) -> "dict[str, object]":
    return {"version": PLAN_VERSION, "config": _file_key(config_path), "sip": sip.to_dict(),
            "listen": [listen[0], listen[1]],
            "registrar": [registrar.transport, registrar.host, registrar.port]}


def applies(sip: SipConfig, registrar: "Peer | None") -> bool:
    """Can a start with this configuration register before the rest is loaded?"""
    return registrar is not None and sip.transport == "udp" and registrar.transport == "udp" \
        and not sip.tls_ca and _numeric(registrar.host)


def _numeric(host: str) -> bool:
    host = host.strip("[]")
    for family in (_socket.AF_INET, _socket.AF_INET6):
        try:
            _socket.inet_pton(family, host)
            return True
        except OSError:
            pass
    return False


def remember(state_dir: str, config_path: str, sip: SipConfig, listen: "tuple[str, int]",
             registrar: "Peer | None") -> bool:
    """After a normal start: write the plan for the next start (only when it changed: an SD
    card should not be written at every start), or remove a plan that no longer applies.
    Returns whether the file was written. Never raises for a file that cannot be written."""
    path = plan_path(state_dir)
    try:
        if registrar is None or not applies(sip, registrar):
            if os.path.exists(path):
                os.remove(path)
            return False
        data = marshal.dumps(_plan(config_path, sip, listen, registrar))
        try:
            with open(path, "rb") as f:
                if f.read() == data:
                    return False
        except OSError:
            pass
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        return False


def load_plan(state_dir: str, config_path: str) \
        -> "tuple[SipConfig, tuple[str, int], Peer] | None":
    """The plan, when it exists, is of this version and was made from this configuration file
    as it is now; else None."""
    try:
        with open(plan_path(state_dir), "rb") as f:
            plan = marshal.loads(f.read())
        if not isinstance(plan, dict) or plan.get("version") != PLAN_VERSION or \
                plan.get("config") != _file_key(config_path):
            return None
        sip = SipConfig(**plan["sip"])
        host, port = plan["listen"]
        transport, rhost, rport = plan["registrar"]
        registrar = Peer(transport, rhost, rport)
        if not applies(sip, registrar):
            return None
        return sip, (host, port), registrar
    except (OSError, ValueError, TypeError, KeyError, EOFError):
        return None


def plan_from_config(config_path: str, cache_dir: str | None = None) \
        -> "tuple[SipConfig, tuple[str, int], Peer] | None":
    """Without a plan (a first start, a changed file): the same three things from the
    configuration file itself. The parser costs ~27 ms here, which the start pays anyway; the
    REGISTER still leaves before asyncio, the board and the station are loaded. Only a valid
    file whose registrar is an IP address (RFC 3263 §4.2: port 5060 when none is given) and
    whose transport is UDP; anything else is left to the normal path."""
    from firmware import config as configuration

    try:
        if not os.path.exists(config_path):
            return None  # the normal path creates it with defaults (direct-IP mode)
        sip = configuration.load(config_path, cache_dir).sip
        if not sip.registrar or sip.transport != "udp" or sip.tls_ca:
            return None
        host, port = configuration.parse_host_port(sip.registrar, 5060)
        listen = configuration.parse_host_port(sip.listen)
    except (configuration.ConfigError, OSError, ValueError):
        return None
    registrar = Peer("udp", host.strip("[]"), port)
    if not applies(sip, registrar):
        return None
    return sip, listen, registrar


def register_first(state_dir: str, config_path: str, wait: float = WAIT) -> "Early | None":
    """Send the REGISTER now, answer its challenge, and return once the registration has an
    outcome or `wait` has passed (its transaction then goes on in the station). None: the fast
    path does not apply (see the module's docstring), and nothing was sent."""
    if os.environ.get("DOORLINE_FAST_REGISTER", "1") == "0":
        return None
    loaded = load_plan(state_dir, config_path) or plan_from_config(config_path, state_dir)
    if loaded is None:
        return None
    sip, listen, registrar = loaded
    family = _socket.AF_INET6 if ":" in listen[0] else _socket.AF_INET
    sock = _socket.socket(family, _socket.SOCK_DGRAM)
    try:
        sock.bind((listen[0].strip("[]"), listen[1]))
        ua = UserAgent(UASettings.from_config(sip, listen[0], listen[1],
                                              sip.effective_domain(), registrar))
    except (OSError, ValueError):  # the port is taken, ...: the normal path says why
        sock.close()
        return None
    early = Early(sock, ua, sip, listen, registrar)
    try:
        now = time.monotonic()
        ua.start(now)
        _run(early, now + wait)
    except OSError:  # e.g. the registrar's port unreachable: the station takes over
        pass
    except Exception:  # noqa: BLE001  a fault here must never stop the station from starting
        sock.close()
        return None
    return early


def _run(early: Early, end: float) -> None:
    """Move the core's datagrams and feed it the responses until the registration is no longer
    `unregistered` or `end` (monotonic, as the station's loop clock) has passed."""
    sock, ua = early.sock, early.ua
    while True:
        for data, peer in ua.datagrams_to_send():
            sock.sendto(data, (peer.host.strip("[]"), peer.port))
        if ua.status()["state"] not in ("unregistered", "disabled"):
            return
        now = time.monotonic()
        if now >= end:
            return
        due = ua.get_timer()
        if due is not None and due <= now:
            ua.handle_timer(now)
            continue
        sock.settimeout(min(end, due) - now if due is not None else end - now)
        try:
            data, addr = sock.recvfrom(MAX_DATAGRAM)
        except TimeoutError:
            continue
        if data.startswith(b"SIP/2.0 "):
            ua.receive(data, Peer("udp", addr[0], addr[1]), time.monotonic())
        elif len(early.held) < MAX_HELD:  # a request: the station answers it
            early.held.append((data, (addr[0], addr[1])))
