"""SIP transports over asyncio: UDP, TCP and TLS (RFC 3261 §18).

This is the shell around the sans-I/O core: it moves bytes, frames streams with
`message.StreamReader`, and reports what it received as `(data_or_message, peer)` to one callback.

- Streams (§18.3): a message that frames correctly but does not parse is dropped and the
  connection goes on; once framing is lost (no usable Content-Length, an oversized header
  section) nothing after it can be trusted and the connection is closed.

- Connection reuse: a request for a destination that already has a connection (opened by us or
  accepted from it) goes over that connection, so the registrar can reach us over the flow we
  registered on.
- RFC 5626 §4.4.1 CRLF keep-alive on stream flows: we send a double-CRLF ping every
  KEEPALIVE_INTERVAL and expect a single-CRLF pong within KEEPALIVE_TIMEOUT; we answer pings.
  A flow that dies is reported through `on_flow_failed` so registration recovers at once.
- TLS: TLS 1.2 or newer, certificate and host name verified against the configured CA (RFC 5922);
  there is never a fallback to a plain transport.
- Bounded, so that no peer can exhaust the station's memory or descriptors: at most
  MAX_CONNECTIONS flows, accepted ones included, and MAX_CONNECTIONS_PER_SOURCE from one address;
  an accepted connection that has not delivered a whole message within FIRST_MESSAGE_TIMEOUT (a
  half-open connection, a stalled handshake, bytes that never frame) or stays idle for
  IDLE_TIMEOUT is closed.
- An exception in the receive handler is caught here and logged at most once per
  ERROR_LOG_INTERVAL per source address (so is a refused connection); the station keeps running.
- UDP to a host name (a Via sent-by, a Contact) is resolved with the loop's getaddrinfo
  first: a plain `sendto` would resolve it synchronously and stall the whole event loop for
  as long as an unreachable DNS server takes to time out.
- After `close()` nothing is sent and no flow failure is reported: the flows closing then are
  our own doing, and must not start a re-registration during shutdown.

- A second UDP port (`await add_udp_port()`, after a NAT mapping changed: the UA re-registers
  from a fresh local port): UDP goes out from the newest one; the listen port and at most the
  one before keep receiving (ongoing dialogs and direct-IP callers still reach them).

Public API: `Transports(on_receive, on_flow_failed, tls_context=None)`; `await listen(host,
port, stream=True, udp_sock=None)`; `await add_udp_port() -> int`; `local_port()`;
`send(data, peer)`; `close()`; `client_tls_context(ca_file)`.
"""

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from firmware.runtime.resolver import is_numeric
from firmware.sip.endpoint import Peer
from firmware.sip.errors import ParseError
from firmware.sip.message import KEEPALIVE_PING, KEEPALIVE_PONG, StreamReader

if TYPE_CHECKING:
    from collections.abc import Callable
    from ssl import SSLContext
    from typing import Any


log = logging.getLogger("doorline.transport")

KEEPALIVE_INTERVAL = 30.0  # RFC 5626 §4.4.1 suggests 95-120 s; shorter finds dead flows sooner
KEEPALIVE_TIMEOUT = 10.0  # RFC 5626 §4.4.1: a pong must come within 10 s
KEEPALIVE_TICK = 1.0  # how often flows are checked for idleness and missing pongs
CONNECT_TIMEOUT = 5.0
IDLE_TIMEOUT = 300.0  # an accepted flow with no traffic at all is dropped
FIRST_MESSAGE_TIMEOUT = 10.0  # an accepted flow must carry a whole message (or ping) by then
MAX_CONNECTIONS = 64
MAX_CONNECTIONS_PER_SOURCE = 8  # one address cannot take every slot with half-open connections
ERROR_LOG_INTERVAL = 10.0  # per source address: one log line about its trouble this often
MAX_ERROR_SOURCES = 256
MAX_QUEUED = 64 * 1024  # bytes buffered towards one connection that is still opening
# asyncio reads each datagram into a fresh buffer of its transport's `max_size`, 256 KiB by
# default: above the fixed mmap threshold (runtime/memory.py), so every datagram cost an mmap,
# page faults and a munmap (18 µs of CPU per datagram in a loopback echo on the bench
# machine; issue 14, the answer path). No UDP datagram is larger than 64 KiB.
MAX_DATAGRAM = 65536
MAX_NUMERIC_HOSTS = 64  # destinations whose "is it an IP address" answer is kept


def client_tls_context(ca_file: str | None) -> "SSLContext":
    """A TLS client context that verifies the server against `ca_file` (RFC 5922, RFC 9325).
    ssl is imported here, for TLS only (firmware/runtime/lazyssl.py)."""
    import ssl

    ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _limit_reads(udp: "Any") -> None:
    """Datagrams read into MAX_DATAGRAM bytes, not asyncio's 256 KiB (`max_size`, an attribute
    of asyncio's selector datagram transport; elsewhere harmless)."""
    udp.max_size = MAX_DATAGRAM


class _Flow(asyncio.Protocol):
    """One TCP or TLS connection."""

    def __init__(self, manager: "Transports", transport_name: str,
                 remote: tuple[str, int] | None = None) -> None:
        self.manager = manager
        self.outbound = remote is not None
        self.name = transport_name
        self.remote: Any = remote  # (host, port); set on connection_made for an inbound flow
        self.transport: Any = None  # asyncio's stream transport
        self.reader = StreamReader()
        self.pending: list[bytes] = []  # data queued while connecting
        self.connected = asyncio.get_running_loop().create_future()
        self.flow_id = manager.next_flow_id()
        self.pong_deadline: float | None = None
        self.last_activity = asyncio.get_running_loop().time()
        self.opened_at = self.last_activity
        self.messages = 0  # whole messages and keep-alives received
        self.closed = False

    def connection_made(self, transport: "Any") -> None:  # asyncio's stream transport
        self.transport = transport
        if self.remote is None:
            self.remote = transport.get_extra_info("peername")[:2]
            same_source = sum(1 for f in self.manager.flows.values()
                              if f.remote and f.remote[0] == self.remote[0])
            if len(self.manager.flows) >= MAX_CONNECTIONS or self.manager.closed or \
                    same_source >= MAX_CONNECTIONS_PER_SOURCE:
                if self.manager.may_log(self.remote[0]):
                    log.warning("refusing a %s connection from %s:%s: too many connections",
                                self.name, *self.remote)
                self.closed = True
                transport.abort()
                return
        self.manager.flows[self.flow_id] = self
        if not self.connected.done():
            self.connected.set_result(True)
        for data in self.pending:
            transport.write(data)
        self.pending = []

    def data_received(self, data: bytes) -> None:
        self.last_activity = asyncio.get_running_loop().time()
        peer = self.peer()
        for item in self.reader.feed(data):
            self.messages += 1
            if item is KEEPALIVE_PING:
                self.transport.write(b"\r\n")
            elif item is KEEPALIVE_PONG:
                self.pong_deadline = None
            elif isinstance(item, ParseError):
                if self.reader.broken:
                    # Framing is lost: nothing after this point can be trusted (§18.3).
                    self.close(f"unparseable stream: {item.reason}")
                    return
                log.info("dropped an unparseable message from %s:%s: %s", *self.remote,
                         item.reason)
            else:
                self.manager.deliver(item, peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connected.done():
            self.connected.set_result(False)
        self.closed = True
        self.manager.flow_lost(self, exc)

    def peer(self) -> "Peer":
        return Peer(self.name, self.remote[0], self.remote[1], self.flow_id)

    def send(self, data: bytes) -> None:
        if self.transport is None:
            if sum(map(len, self.pending)) + len(data) > MAX_QUEUED:
                return
            self.pending.append(data)
        else:
            self.transport.write(data)

    def close(self, why: str) -> None:
        log.info("closing %s flow to %s:%s: %s", self.name, *self.remote, why)
        if self.transport is not None:
            self.transport.abort()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, manager: "Transports") -> None:
        self.manager = manager
        self.transport: asyncio.BaseTransport | None = None
        # asyncio releases the socket one loop turn after close(): rebinding the same port
        # (a live config change) must wait for this.
        self.released = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.released.done():
            self.released.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.manager.deliver(data, Peer("udp", addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        log.debug("udp error: %s", exc)


class Transports:
    """All SIP sockets of the station.

    `on_receive(data_or_message, peer)`: bytes for a datagram, a parsed message (or a ParseError)
    for streams. `on_flow_failed(peer)`: a stream flow closed or could not be opened.
    """

    def __init__(self, on_receive: "Callable", on_flow_failed: "Callable",
                 tls_context: "SSLContext | None" = None) -> None:
        self.on_receive = on_receive
        self.on_flow_failed = on_flow_failed
        self.tls_context = tls_context
        self.flows: dict[int, _Flow] = {}
        self.udp: Any = None  # asyncio's DatagramTransport UDP leaves from, once listening
        self.listen_udp: Any = None  # the one on the listen port (always kept)
        self.moved_udp: list[Any] = []  # added ones still receiving, newest last (at most 2)
        self.servers: list[asyncio.Server] = []
        self._next_id = 0
        self._logged_at: dict[str, float] = {}  # source host → when we last logged about it
        self._keepalive_task: asyncio.Task | None = None
        self._lookups: set[asyncio.Task] = set()  # tasks resolving UDP destinations
        self._numeric: dict[str, bool] = {}  # host -> is_numeric(host), bounded
        self.closed = False

    def next_flow_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def listen(self, host: str, port: int, stream: bool = True,
                     udp_sock: "socket.socket | None" = None) -> None:
        """UDP always; TCP on the same port for requests that come over streams. `udp_sock`:
        a UDP socket already bound to (host, port) to take over (runtime/faststart.py)."""
        loop = asyncio.get_running_loop()
        if udp_sock is not None:
            udp_sock.setblocking(False)
            self.udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self),
                                                              sock=udp_sock)
        else:
            self.udp, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, port))
        _limit_reads(self.udp)
        self.listen_udp = self.udp
        if stream:
            server = await loop.create_server(
                lambda: _Flow(self, "tcp"), host, port, reuse_address=True)
            self.servers.append(server)
        self._keepalive_task = asyncio.create_task(self._keepalive())

    def local_port(self) -> int:
        return self.udp.get_extra_info("sockname")[1]

    async def add_udp_port(self) -> int:
        """A new UDP socket on a free port of the listen address; UDP leaves from it from now
        on. The listen socket stays; of the added ones only the newest two (raises OSError)."""
        loop = asyncio.get_running_loop()
        host = self.listen_udp.get_extra_info("sockname")[0]
        udp, _ = await loop.create_datagram_endpoint(lambda: _Datagrams(self),
                                                     local_addr=(host, 0))
        _limit_reads(udp)
        if self.closed:
            udp.close()
            raise OSError("transports closed")
        self.moved_udp.append(udp)
        while len(self.moved_udp) > 2:
            self.moved_udp.pop(0).close()
        self.udp = udp
        return int(udp.get_extra_info("sockname")[1])

    def deliver(self, item: object, peer: "Peer") -> None:
        try:
            self.on_receive(item, peer)
        except Exception:  # a bug in a handler must not take the transport down
            if self.may_log(peer.host):
                log.exception("error while handling a message from %s:%s", peer.host, peer.port)

    def may_log(self, host: str) -> bool:
        """Rate limit for log lines about one source address (floods must not flood the log)."""
        now = asyncio.get_running_loop().time()
        last = self._logged_at.get(host)
        if last is not None and now - last < ERROR_LOG_INTERVAL:
            return False
        if len(self._logged_at) >= MAX_ERROR_SOURCES:
            self._logged_at.clear()
        self._logged_at[host] = now
        return True

    def send(self, data: bytes, peer: "Peer") -> None:
        if self.closed:
            return
        if peer.transport == "udp":
            if self.udp is None:
                return
            host = peer.host.strip("[]")
            numeric = self._numeric.get(host)
            if numeric is None:  # ipaddress parses it: ~5 µs, once per destination
                if len(self._numeric) >= MAX_NUMERIC_HOSTS:
                    self._numeric.clear()
                numeric = self._numeric[host] = is_numeric(host)
            if numeric:
                self.udp.sendto(data, (host, peer.port))
            else:
                task = asyncio.create_task(self._send_resolved(data, host, peer.port))
                self._lookups.add(task)
                task.add_done_callback(self._lookups.discard)
            return
        flow = self.flows.get(peer.flow) if peer.flow else None
        if flow is None or flow.closed:
            flow = self._find_flow(peer) or self._open_flow(peer)
        if flow is not None:
            flow.send(data)

    async def _send_resolved(self, data: bytes, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        family = self.udp.get_extra_info("socket").family
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM),
                CONNECT_TIMEOUT)
        except (TimeoutError, OSError) as exc:
            log.warning("udp: cannot resolve %s: %s", host, exc)
            return
        if infos and not self.closed:
            self.udp.sendto(data, infos[0][4][:2])

    def _find_flow(self, peer: "Peer") -> "_Flow | None":
        for flow in self.flows.values():
            if not flow.closed and flow.name == peer.transport and \
                    tuple(flow.remote) == (peer.host, peer.port):
                return flow
        return None

    def _open_flow(self, peer: "Peer") -> "_Flow | None":
        if len(self.flows) >= MAX_CONNECTIONS:
            log.warning("too many connections; not opening one to %s:%s", peer.host, peer.port)
            self.on_flow_failed(peer)
            return None
        flow = _Flow(self, peer.transport, (peer.host, peer.port))
        self.flows[flow.flow_id] = flow
        asyncio.create_task(self._connect(flow, peer))
        return flow

    async def _connect(self, flow: "_Flow", peer: "Peer") -> None:
        loop = asyncio.get_running_loop()
        ssl_ctx = None
        if peer.transport == "tls":
            ssl_ctx = self.tls_context or client_tls_context(None)
        try:
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: flow, peer.host, peer.port, ssl=ssl_ctx,
                    server_hostname=(peer.server_name or peer.host) if ssl_ctx else None),
                CONNECT_TIMEOUT)
        except (TimeoutError, OSError) as exc:  # ssl.SSLError is an OSError
            log.warning("%s connection to %s:%s failed: %s", peer.transport, peer.host,
                        peer.port, exc)
            flow.closed = True
            self.flows.pop(flow.flow_id, None)
            if not self.closed:
                self.on_flow_failed(Peer(peer.transport, peer.host, peer.port, flow.flow_id))

    def flow_lost(self, flow: "_Flow", exc: Exception | None) -> None:
        if self.flows.pop(flow.flow_id, None) is not None and not self.closed:
            self.on_flow_failed(flow.peer())

    async def _keepalive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(KEEPALIVE_TICK)
            now = loop.time()
            for flow in list(self.flows.values()):
                if flow.transport is None or flow.closed:
                    continue
                idle = now - flow.last_activity
                if not flow.outbound:
                    if idle > IDLE_TIMEOUT:
                        flow.close("idle")
                    elif flow.messages == 0 and now - flow.opened_at > FIRST_MESSAGE_TIMEOUT:
                        flow.close("no message within %.0f s" % FIRST_MESSAGE_TIMEOUT)
                elif flow.pong_deadline is not None and now > flow.pong_deadline:
                    flow.close("no keep-alive pong")
                elif idle > KEEPALIVE_INTERVAL and flow.pong_deadline is None:
                    flow.pong_deadline = now + KEEPALIVE_TIMEOUT
                    flow.last_activity = now
                    flow.transport.write(b"\r\n\r\n")

    def close(self) -> None:
        self.closed = True
        if self._keepalive_task:
            self._keepalive_task.cancel()
        for task in list(self._lookups):
            task.cancel()
        for flow in list(self.flows.values()):
            if flow.transport is not None:
                flow.transport.close()
        for server in self.servers:
            server.close()
        for udp in [self.listen_udp] + self.moved_udp:
            if udp is not None:
                udp.close()

    async def wait_closed(self) -> None:
        """After close(): until every listening socket is released (bounded)."""
        waits = [server.wait_closed() for server in self.servers]
        for udp in [self.listen_udp] + self.moved_udp:
            if udp is not None:
                waits.append(udp.get_protocol().released)
        if waits:
            await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 2.0)
