"""Bounded HTTP connections in front of microdot: no single client can spend the station's memory
or file descriptors.

Microdot reads a request line by line with no limit on the number of header lines, keeps every
connection as long as the client likes, and accepts as many connections as arrive. Here each
accepted connection first passes `ConnectionLimiter` (at most MAX_CONNECTIONS in all and
MAX_PER_CLIENT per client: one IPv4 address or one IPv6 /64), then its request head is read in
chunks of at most READ_CHUNK bytes into a buffer that never grows beyond MAX_REQUEST_LINE +
MAX_HEADER_BYTES + READ_CHUNK, and only a complete, bounded head is handed to microdot:

- nothing received within IDLE_TIMEOUT s of the accept: closed;
- request line longer than MAX_REQUEST_LINE bytes: 414; more than MAX_HEADERS header lines or
  more than MAX_HEADER_BYTES bytes of header lines: 431 (both before any further byte is kept);
- the whole request and its response: `request_timeout` s (then closed), unless the response
  is a stream (GET /api/events/stream) that called `lift_deadline()` on its writer
  (`request.sock[1]`): then each write must drain within STREAM_WRITE_TIMEOUT s instead (a
  client that stops reading is cut off), and the stream bounds its own life;
- at the connection cap, a new connection replaces the oldest one that has not yet sent a
  complete head (an idle or slow one, of the same client when the client is at its own cap);
  when every connection is busy with a request, the new one gets 503 and is closed.
- With TLS the handshake happens after admission and inside IDLE_TIMEOUT, so a client that opens
  connections and never says hello is counted and cut off like any other.

Microdot answers HTTP/1.0 and closes after each response: there are no keep-alive connections.

Public API:
- `await start_server(handler, host, port, ssl_context=None, request_timeout=10.0)
  -> asyncio.Server`, `handler(reader, writer)` being microdot's `Microdot.handle_request`.
- `ConnectionLimiter(max_total, max_per_client)`: `admit(key) -> (slot | None, evicted slots)`,
  `ready(slot)` (its head is complete: no longer evictable), `release(slot)`, `count(key=None)`.
- `HeadTooLarge(status, message)`; `await read_head(reader, deadline_first) -> bytes`.
- `json_depth(doc) -> int`: nesting depth of a parsed JSON value, without recursion.
"""

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING

from firmware.web.sessions import client_key

if TYPE_CHECKING:
    import ssl
    from collections.abc import Callable
    from typing import Any

MAX_CONNECTIONS = 32
MAX_PER_CLIENT = 8
IDLE_TIMEOUT = 3.0  # seconds from the accept to the first byte (and the TLS handshake)
MAX_REQUEST_LINE = 2048
MAX_HEADERS = 48
MAX_HEADER_BYTES = 12 * 1024  # all header lines together, CRLFs included
READ_CHUNK = 4096
LINGER = 0.5  # after an error answer, input is read and dropped this long (at most LINGER_BYTES)
LINGER_BYTES = 256 * 1024  # so the client sees the answer instead of a reset
WARN_EVERY = 60.0
STREAM_WRITE_TIMEOUT = 10.0  # a lifted deadline: each write of a stream drains within this

log = logging.getLogger("doorline.web")

REASONS = {414: "URI Too Long", 431: "Request Header Fields Too Large",
           503: "Service Unavailable", 400: "Bad Request"}


class HeadTooLarge(Exception):
    def __init__(self, status: int, message: str) -> None:
        Exception.__init__(self, message)
        self.status = status
        self.message = message


class _Slot:
    __slots__ = ("key", "writer", "ready", "open")

    def __init__(self, key: str, writer: "asyncio.StreamWriter") -> None:
        self.key = key
        self.writer = writer
        self.ready = False  # a complete request head arrived: no longer evictable
        self.open = True


class ConnectionLimiter:
    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self._slots: list[_Slot] = []  # in order of acceptance
        self.refused = 0
        self.evicted = 0

    def count(self, key: str | None = None) -> int:
        return sum(1 for s in self._slots if key is None or s.key == key)

    def admit(self, key: str,
              writer: "Any" = None) -> "tuple[_Slot | None, list[_Slot]]":  # Any: tests pass none
        """(slot, evicted): `slot` is None when the connection must be refused; `evicted` are
        the slots closed to make room (their writers are for the caller to close)."""
        evicted: list[_Slot] = []
        if self.count(key) >= self.max_per_client:
            if not self._evict(lambda s: s.key == key, evicted):
                self.refused += 1
                return None, evicted
        if len(self._slots) >= self.max_total:
            if not self._evict(lambda s: True, evicted):
                self.refused += 1
                return None, evicted
        slot = _Slot(key, writer)
        self._slots.append(slot)
        return slot, evicted

    def _evict(self, which: "Callable[[_Slot], bool]", evicted: "list[_Slot]") -> bool:
        for slot in self._slots:
            if not slot.ready and which(slot):
                self.release(slot)
                evicted.append(slot)
                self.evicted += 1
                return True
        return False

    @staticmethod
    def ready(slot: "_Slot") -> None:
        slot.ready = True

    def release(self, slot: "_Slot") -> None:
        if slot.open:
            slot.open = False
            self._slots.remove(slot)


async def read_head(reader: "asyncio.StreamReader", deadline_first: float) -> bytes:
    """The request line and header lines up to and including the empty line, as bytes.
    Raises HeadTooLarge, TimeoutError (nothing within `deadline_first` s) or EOFError."""
    buf = bytearray()
    start = 0  # where the current line starts
    headers = 0
    line_end = -1  # end of the request line, once seen
    while True:
        newline = buf.find(b"\n", start)
        if newline < 0:
            if line_end < 0 and len(buf) > MAX_REQUEST_LINE:
                raise HeadTooLarge(414, f"the request line is longer than {MAX_REQUEST_LINE} "
                                        "bytes")
            if line_end >= 0 and len(buf) - line_end > MAX_HEADER_BYTES:
                raise HeadTooLarge(431, f"the request headers are larger than "
                                        f"{MAX_HEADER_BYTES} bytes")
            if buf:
                chunk = await reader.read(READ_CHUNK)
            else:
                chunk = await asyncio.wait_for(reader.read(READ_CHUNK), deadline_first)
            if not chunk:
                raise EOFError("the client closed before its request was complete")
            buf += chunk
            continue
        line = bytes(buf[start:newline]).strip()
        start = newline + 1
        if line_end < 0:
            if newline > MAX_REQUEST_LINE:
                raise HeadTooLarge(414, f"the request line is longer than {MAX_REQUEST_LINE} "
                                        "bytes")
            line_end = start
            continue
        if not line:
            return bytes(buf)  # may hold the first bytes of the body as well
        headers += 1
        if headers > MAX_HEADERS:
            raise HeadTooLarge(431, f"more than {MAX_HEADERS} request header lines")
        if start - line_end > MAX_HEADER_BYTES:
            raise HeadTooLarge(431, f"the request headers are larger than {MAX_HEADER_BYTES} "
                                    "bytes")


class _Replay:
    """A reader for microdot that first returns the already-read head, then the socket."""

    def __init__(self, data: bytes, reader: "asyncio.StreamReader") -> None:
        self._data = bytearray(data)
        self._reader = reader

    async def readline(self) -> bytes:
        newline = self._data.find(b"\n")
        if newline >= 0:
            line = bytes(self._data[:newline + 1])
            del self._data[:newline + 1]
            return line
        rest = bytes(self._data)
        self._data.clear()
        return rest + await self._reader.readline()

    async def readexactly(self, n: int) -> bytes:
        part = bytes(self._data[:n])
        del self._data[:n]
        if len(part) < n:
            part += await self._reader.readexactly(n - len(part))
        return part

    async def read(self, n: int = -1) -> bytes:
        if self._data:
            size = len(self._data) if n < 0 else min(n, len(self._data))
            part = bytes(self._data[:size])
            del self._data[:size]
            return part
        return await self._reader.read(n)


class _Writer:
    """The asyncio StreamWriter with the awrite/aclose microdot expects, and the request's
    deadline, which a streaming response lifts (`lift_deadline()`)."""

    def __init__(self, writer: "asyncio.StreamWriter",
                 deadline: "asyncio.TimerHandle | None" = None) -> None:
        self._writer = writer
        self._deadline = deadline
        self.streaming = False

    def __getattr__(self, name: str) -> "Any":
        return getattr(self._writer, name)

    def lift_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self.streaming = True

    async def awrite(self, data: bytes) -> None:
        self._writer.write(data)
        if self.streaming:
            await asyncio.wait_for(self._writer.drain(), STREAM_WRITE_TIMEOUT)
        else:
            await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass


def _plain_answer(status: int, message: str, extra: str = "") -> bytes:
    body = json.dumps({"error": message}).encode()
    return (f"HTTP/1.0 {status} {REASONS.get(status, 'Error')}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n"
            "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
            f"{extra}Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _answer_and_close(reader: "asyncio.StreamReader", writer: "asyncio.StreamWriter",
                            status: int, message: str, extra: str = "") -> None:
    """Send a short error, stop reading what the client still sends after LINGER s or
    LINGER_BYTES (so it sees the answer rather than a reset), then close."""
    try:
        writer.write(_plain_answer(status, message, extra))
        await asyncio.wait_for(writer.drain(), LINGER)
        if writer.can_write_eof():
            writer.write_eof()
        loop = asyncio.get_running_loop()
        end = loop.time() + LINGER
        dropped = 0
        while dropped < LINGER_BYTES and loop.time() < end:
            chunk = await asyncio.wait_for(reader.read(READ_CHUNK), end - loop.time())
            if not chunk:
                break
            dropped += len(chunk)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        pass
    finally:
        _abort(writer)


def _abort(writer: "asyncio.StreamWriter") -> None:
    transport = writer.transport
    if transport is not None and not transport.is_closing():
        try:
            transport.abort()
        except RuntimeError:  # the loop is already closed (the server shut down meanwhile)
            pass


def _peer(writer: "asyncio.StreamWriter") -> str:
    addr = writer.get_extra_info("peername")
    return addr[0] if isinstance(addr, (tuple, list)) and addr else "unknown"


async def start_server(handler: "Callable", host: str, port: int,
                       ssl_context: "ssl.SSLContext | None" = None,
                       request_timeout: float = 10.0) -> "asyncio.Server":
    """Listen on host:port and serve each admitted connection with `handler`."""
    limiter = ConnectionLimiter(MAX_CONNECTIONS, MAX_PER_CLIENT)
    last_warning = [-WARN_EVERY]

    def warn(what: str, key: str) -> None:
        now = time.monotonic()
        if now - last_warning[0] >= WARN_EVERY:
            last_warning[0] = now
            log.warning("web: %s (client %s; %d open, %d refused and %d idle ones closed so "
                        "far)", what, key, limiter.count(), limiter.refused, limiter.evicted)

    async def connection(reader: "asyncio.StreamReader", writer: "asyncio.StreamWriter") -> None:
        key = client_key(_peer(writer))
        slot, evicted = limiter.admit(key, writer)
        for old in evicted:
            _abort(old.writer)
        if evicted:
            warn("connection limit reached, closed the oldest idle connection", key)
        if slot is None:
            warn("connection limit reached, refused a connection", key)
            if ssl_context is None:  # (a TLS client could not read a plain answer)
                writer.write(_plain_answer(503, "too many connections; try again",
                                           "Retry-After: 5\r\n"))
            writer.close()
            return
        try:
            if ssl_context is not None:
                # At once, before the loop can read the ClientHello into the plain reader; the
                # transport is aborted if the handshake takes longer than IDLE_TIMEOUT.
                await writer.start_tls(ssl_context, ssl_handshake_timeout=IDLE_TIMEOUT)
            serving = asyncio.ensure_future(_serve(handler, reader, writer, slot, limiter,
                                                   request_timeout))
            try:
                await serving
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise  # the server is closing: not our deadline
                # the deadline cancelled it: timed out
        except (TimeoutError, EOFError, OSError, asyncio.IncompleteReadError):
            pass  # timed out, cut off or closed by the client (ssl.SSLError is an OSError)
        finally:
            limiter.release(slot)
            _abort(writer)

    server = await asyncio.start_server(connection, host, port, limit=READ_CHUNK * 4,
                                        start_serving=False)
    server.limiter = limiter  # type: ignore[attr-defined]  # kept with the server it limits
    await server.start_serving()
    return server


async def _serve(handler: "Callable", reader: "asyncio.StreamReader",
                 writer: "asyncio.StreamWriter", slot: "_Slot",
                 limiter: "ConnectionLimiter", request_timeout: float) -> None:
    task = asyncio.current_task()
    assert task is not None  # ensure_future made it
    deadline = asyncio.get_running_loop().call_later(request_timeout, task.cancel)
    try:
        await _serve_request(handler, reader, writer, slot, limiter, deadline)
    finally:
        deadline.cancel()


async def _serve_request(handler: "Callable", reader: "asyncio.StreamReader",
                         writer: "asyncio.StreamWriter", slot: "_Slot",
                         limiter: "ConnectionLimiter", deadline: "asyncio.TimerHandle") -> None:
    try:
        head = await read_head(reader, IDLE_TIMEOUT)
    except HeadTooLarge as exc:
        limiter.ready(slot)  # answering: not idle
        await _answer_and_close(reader, writer, exc.status, exc.message)
        return
    limiter.ready(slot)
    await handler(_Replay(head, reader), _Writer(writer, deadline))


def json_depth(doc: "Any") -> int:
    """How deeply lists and objects nest in `doc` (0 for a scalar), computed without recursion."""
    deepest = 0
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            value = list(value.values())
        elif not isinstance(value, list):
            continue
        deepest = max(deepest, depth)
        stack.extend((item, depth + 1) for item in value)
    return deepest
