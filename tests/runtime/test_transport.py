"""firmware.runtime.transport.Transports with real loopback sockets (UDP, TCP, TLS).

Each test runs its own event loop (`asyncio.run`) and bounds every wait with `wait_for`.
The far ends are plain asyncio servers and clients written here, so what crosses the wire is
seen byte for byte.
"""

import asyncio
import ssl

import pytest

from firmware.runtime import transport as transport_module
from firmware.runtime.transport import Transports, client_tls_context
from firmware.sip.endpoint import Peer
from firmware.sip.message import Request
from tests.peers.certs import make_certificates
from tests.peers.process import free_port

HOST = "127.0.0.1"
WAIT = 5.0


def options(branch="z9hG4bK-test-1", call_id="call-1"):
    return (
        "OPTIONS sip:door@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1:5999;branch={branch}\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:test@127.0.0.1>;tag=1\r\n"
        "To: <sip:door@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


class Recorder:
    """The two callbacks of Transports, with awaitable arrivals."""

    def __init__(self):
        self.received = asyncio.Queue()
        self.failed = asyncio.Queue()

    def on_receive(self, item, peer):
        self.received.put_nowait((item, peer))

    def on_flow_failed(self, peer):
        self.failed.put_nowait(peer)

    def transports(self, tls_context=None):
        return Transports(self.on_receive, self.on_flow_failed, tls_context=tls_context)


class RawServer:
    """A TCP (or TLS) server that records connections and bytes, optionally answering pings."""

    def __init__(self, answer_pings=False, ssl_context=None):
        self.answer_pings = answer_pings
        self.ssl_context = ssl_context
        self.connections = []  # (reader, writer)
        self.data = []  # bytes per connection
        self.arrived = asyncio.Event()
        self.closed = asyncio.Event()
        self.port = None
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self._serve, HOST, 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader, writer):
        index = len(self.connections)
        self.connections.append((reader, writer))
        self.data.append(b"")
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                self.data[index] += chunk
                if self.answer_pings and chunk == b"\r\n\r\n":
                    writer.write(b"\r\n")
                self.arrived.set()
        except (ConnectionError, asyncio.CancelledError, ssl.SSLError):
            pass  # a reset, a failed handshake, or the test's loop ending
        self.closed.set()
        self.arrived.set()
        writer.close()

    async def wait_for(self, predicate, timeout=WAIT):
        async def poll():
            while not predicate():
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(poll(), timeout)

    def close(self):
        for _, writer in self.connections:
            writer.close()
        self.server.close()


def run(coroutine, timeout=20.0):
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def test_udp_send_and_receive():
    async def scenario():
        a, b = Recorder(), Recorder()
        port_a, port_b = free_port(), free_port()
        ta, tb = a.transports(), b.transports()
        await ta.listen(HOST, port_a)
        await tb.listen(HOST, port_b)
        try:
            assert ta.local_port() == port_a
            ta.send(options(), Peer("udp", HOST, port_b))
            data, peer = await asyncio.wait_for(b.received.get(), WAIT)
            assert data == options()
            assert (peer.transport, peer.host, peer.port) == ("udp", HOST, port_a)
            tb.send(b"pong", peer)  # answer to where it came from
            data, _ = await asyncio.wait_for(a.received.get(), WAIT)
            assert data == b"pong"
        finally:
            ta.close()
            tb.close()

    run(scenario())


def test_udp_reads_fit_the_largest_datagram_not_asyncios_256_kib():
    # asyncio's 256 KiB read buffer is above the fixed mmap threshold (runtime/memory.py): an
    # mmap and munmap per datagram on the answer path (issue 14). 64 KiB takes any datagram.
    async def scenario():
        a, b = Recorder(), Recorder()
        port_a, port_b = free_port(), free_port()
        ta, tb = a.transports(), b.transports()
        await ta.listen(HOST, port_a)
        await tb.listen(HOST, port_b)
        try:
            assert tb.udp.max_size == transport_module.MAX_DATAGRAM == 65536
            moved = await tb.add_udp_port()
            assert tb.udp.max_size == 65536
            largest = b"x" * 65507  # the most an IPv4 UDP datagram carries
            for port in (port_b, moved):
                ta.send(largest, Peer("udp", HOST, port))
                data, _ = await asyncio.wait_for(b.received.get(), WAIT)
                assert data == largest
        finally:
            ta.close()
            tb.close()

    run(scenario())


def test_an_added_udp_port_sends_and_the_listen_port_keeps_receiving():
    async def scenario():
        a, b = Recorder(), Recorder()
        port_a, port_b = free_port(), free_port()
        ta, tb = a.transports(), b.transports()
        await ta.listen(HOST, port_a)
        await tb.listen(HOST, port_b)
        try:
            moved = [await ta.add_udp_port() for _ in range(3)]
            assert len(set(moved + [port_a])) == 4 and ta.local_port() == moved[-1]
            ta.send(options(), Peer("udp", HOST, port_b))
            data, peer = await asyncio.wait_for(b.received.get(), WAIT)
            assert peer.port == moved[-1]  # leaves from the newest port
            for port in (port_a, moved[1], moved[2]):  # the listen port and the last two
                tb.send(b"to %d" % port, Peer("udp", HOST, port))
                data, _ = await asyncio.wait_for(a.received.get(), WAIT)
                assert data == b"to %d" % port
            assert len(ta.moved_udp) == 2  # the first added one is closed
        finally:
            ta.close()
            tb.close()
            await ta.wait_closed()

    run(scenario())


def test_udp_to_a_host_name_is_resolved_without_blocking():
    async def scenario():
        a, b = Recorder(), Recorder()
        port_b = free_port()
        ta, tb = a.transports(), b.transports()
        await ta.listen(HOST, free_port())
        await tb.listen(HOST, port_b)
        try:
            # /etc/hosts names it: no DNS query leaves the machine.
            ta.send(b"first", Peer("udp", "localhost", port_b))  # via getaddrinfo, off-loop
            ta.send(b"second", Peer("udp", HOST, port_b))
            got = [(await asyncio.wait_for(b.received.get(), WAIT))[0] for _ in range(2)]
            # The numeric destination did not wait behind the name lookup.
            assert got == [b"second", b"first"]
        finally:
            ta.close()
            tb.close()

    run(scenario())


def test_tcp_outbound_connection_is_reused_and_carries_requests_back():
    async def scenario():
        recorder = Recorder()
        server = await RawServer().start()
        transports = recorder.transports()
        await transports.listen(HOST, free_port())
        peer = Peer("tcp", HOST, server.port)
        try:
            transports.send(options("z9hG4bK-a"), peer)
            transports.send(options("z9hG4bK-b"), peer)
            await server.wait_for(
                lambda: server.data and server.data[0].count(b"OPTIONS sip:") == 2)
            assert len(server.connections) == 1
            # The server sends a request over the connection we opened: it arrives parsed,
            # tagged with that flow, and the answer goes back over the same connection.
            _, writer = server.connections[0]
            writer.write(options("z9hG4bK-from-server", "call-2"))
            message, source = await asyncio.wait_for(recorder.received.get(), WAIT)
            assert isinstance(message, Request) and message.method == "OPTIONS"
            assert source.transport == "tcp" and source.flow is not None
            transports.send(bytes(message.make_response(200)), source)
            await server.wait_for(lambda: b"SIP/2.0 200" in server.data[0])
            assert len(server.connections) == 1
        finally:
            transports.close()
            server.close()

    run(scenario())


def test_request_on_an_accepted_connection_is_answered_over_it():
    async def scenario():
        recorder = Recorder()
        transports = recorder.transports()
        port = free_port()
        await transports.listen(HOST, port)
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(options())
            message, source = await asyncio.wait_for(recorder.received.get(), WAIT)
            assert message.method == "OPTIONS"
            local = writer.get_extra_info("sockname")
            assert (source.host, source.port) == (local[0], local[1])
            transports.send(bytes(message.make_response(200)), source)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            assert head.startswith(b"SIP/2.0 200 OK\r\n")
            # Without the flow id, the same address still finds the open connection.
            response = message.make_response(202)
            transports.send(bytes(response), Peer("tcp", source.host, source.port))
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            assert head.startswith(b"SIP/2.0 202 ")
            # A client's ping is answered with a pong (RFC 5626 §4.4.1).
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
        finally:
            writer.close()
            transports.close()

    run(scenario())


@pytest.fixture
def fast_keepalive(monkeypatch):
    monkeypatch.setattr(transport_module, "KEEPALIVE_INTERVAL", 0.3)
    monkeypatch.setattr(transport_module, "KEEPALIVE_TIMEOUT", 0.3)
    monkeypatch.setattr(transport_module, "KEEPALIVE_TICK", 0.05)


def test_keepalive_without_pong_fails_the_flow(fast_keepalive):
    async def scenario():
        recorder = Recorder()
        server = await RawServer(answer_pings=False).start()
        transports = recorder.transports()
        await transports.listen(HOST, free_port())
        try:
            transports.send(options(), Peer("tcp", HOST, server.port))
            await server.wait_for(lambda: server.data and server.data[0].startswith(options())
                                  and server.data[0] != options())
            assert server.data[0] == options() + b"\r\n\r\n"  # one ping, nothing else
            failed = await asyncio.wait_for(recorder.failed.get(), WAIT)
            assert (failed.transport, failed.host, failed.port) == ("tcp", HOST, server.port)
            await asyncio.wait_for(server.closed.wait(), WAIT)
            assert transports.flows == {}
        finally:
            transports.close()
            server.close()

    run(scenario())


def test_keepalive_with_pongs_keeps_the_flow(fast_keepalive):
    async def scenario():
        recorder = Recorder()
        server = await RawServer(answer_pings=True).start()
        transports = recorder.transports()
        await transports.listen(HOST, free_port())
        try:
            transports.send(options(), Peer("tcp", HOST, server.port))
            # Three pings answered: the flow lived through several timeouts' worth of time.
            await server.wait_for(lambda: server.data
                                  and server.data[0] == options() + b"\r\n\r\n" * 3)
            assert recorder.failed.empty()
            assert len(transports.flows) == 1 and len(server.connections) == 1
        finally:
            transports.close()
            server.close()

    run(scenario())


def test_stream_with_a_garbage_header_section_is_closed():
    async def scenario():
        recorder = Recorder()
        transports = recorder.transports()
        port = free_port()
        await transports.listen(HOST, port)
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(b"\x16\x03\x01garbage without any header\r\nmore: junk\r\n\r\n")
            assert await asyncio.wait_for(reader.read(), WAIT) == b""  # closed by the station
            assert recorder.received.empty()
        finally:
            writer.close()
            transports.close()

    run(scenario())


def test_stream_survives_one_well_framed_unparseable_message():
    async def scenario():
        recorder = Recorder()
        transports = recorder.transports()
        port = free_port()
        await transports.listen(HOST, port)
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            # Framing is fine (Content-Length: 0), one header line is not a header.
            bad = options().replace(b"Max-Forwards: 70", b"this line has no colon")
            assert bad != options()
            writer.write(bad + options("z9hG4bK-after"))
            message, _ = await asyncio.wait_for(recorder.received.get(), WAIT)
            assert "z9hG4bK-after" in message.headers.get("Via")
            assert recorder.received.empty()
        finally:
            writer.close()
            transports.close()

    run(scenario())


def test_accepted_connections_are_bounded(monkeypatch):
    monkeypatch.setattr(transport_module, "MAX_CONNECTIONS", 2)

    async def scenario():
        recorder = Recorder()
        transports = recorder.transports()
        port = free_port()
        await transports.listen(HOST, port)
        clients = []
        try:
            for _ in range(3):
                clients.append(await asyncio.open_connection(HOST, port))
            # The third is dropped at once; the first two stay usable.
            assert await asyncio.wait_for(clients[2][0].read(), WAIT) == b""
            for index, (_, writer) in enumerate(clients[:2]):
                writer.write(options(f"z9hG4bK-{index}"))
                message, _ = await asyncio.wait_for(recorder.received.get(), WAIT)
                assert f"z9hG4bK-{index}" in message.headers.get("Via")
            assert len(transports.flows) == 2
        finally:
            for _, writer in clients:
                writer.close()
            transports.close()

    run(scenario())


@pytest.fixture
def certificates(tmp_path):
    return make_certificates(tmp_path / "good")


def server_tls_context(certificates):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.cert_path, certificates.key_path)
    return context


@pytest.mark.parametrize("server_name", [None, "localhost"])
def test_tls_verified_against_the_configured_ca(certificates, server_name):
    async def scenario():
        recorder = Recorder()
        server = await RawServer(ssl_context=server_tls_context(certificates)).start()
        transports = recorder.transports(client_tls_context(str(certificates.ca_path)))
        await transports.listen(HOST, free_port())
        try:
            transports.send(options(), Peer("tls", HOST, server.port, server_name=server_name))
            await server.wait_for(lambda: server.data and server.data[0] == options())
            _, writer = server.connections[0]
            assert writer.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
            writer.write(options("z9hG4bK-back", "call-back"))
            message, source = await asyncio.wait_for(recorder.received.get(), WAIT)
            assert source.transport == "tls" and message.method == "OPTIONS"
            assert recorder.failed.empty()
        finally:
            transports.close()
            server.close()

    run(scenario())


@pytest.mark.parametrize("mistake", ["wrong CA", "wrong host name"])
def test_tls_verification_failure_fails_the_flow(certificates, tmp_path, mistake):
    async def scenario():
        recorder = Recorder()
        server = await RawServer(ssl_context=server_tls_context(certificates)).start()
        if mistake == "wrong CA":
            ca_path = make_certificates(tmp_path / "other").ca_path
            server_name = None
        else:
            ca_path = certificates.ca_path
            server_name = "registrar.example.com"  # not in the certificate's SAN
        transports = recorder.transports(client_tls_context(str(ca_path)))
        await transports.listen(HOST, free_port())
        try:
            peer = Peer("tls", HOST, server.port, server_name=server_name)
            transports.send(options(), peer)
            failed = await asyncio.wait_for(recorder.failed.get(), WAIT)
            assert (failed.transport, failed.port) == ("tls", server.port)
            await asyncio.sleep(0.2)
            assert b"OPTIONS" not in b"".join(server.data)
            assert transports.flows == {}
        finally:
            transports.close()
            server.close()

    run(scenario())


def test_tls_never_falls_back_to_plain_tcp(certificates):
    """A plain TCP listener where TLS was asked for sees a TLS ClientHello, never SIP."""

    async def scenario():
        recorder = Recorder()
        server = await RawServer().start()  # no TLS
        transports = recorder.transports(client_tls_context(str(certificates.ca_path)))
        await transports.listen(HOST, free_port())
        try:
            transports.send(options(), Peer("tls", HOST, server.port))
            await server.wait_for(lambda: server.data and server.data[0])
            hello = server.data[0]
            assert hello[0] == 0x16  # TLS handshake record
            assert b"OPTIONS" not in hello and b"SIP/2.0" not in hello
            server.close()  # the "server" hangs up: the handshake can never finish
            failed = await asyncio.wait_for(recorder.failed.get(), WAIT)
            assert failed.transport == "tls"
            assert all(b"OPTIONS" not in data for data in server.data)
        finally:
            transports.close()
            server.close()

    run(scenario())


def test_after_close_nothing_is_sent_and_no_failure_reported():
    async def scenario():
        recorder = Recorder()
        server = await RawServer().start()
        transports = recorder.transports()
        await transports.listen(HOST, free_port())
        transports.send(options(), Peer("tcp", HOST, server.port))
        await server.wait_for(lambda: server.data and server.data[0])
        transports.close()
        await asyncio.wait_for(server.closed.wait(), WAIT)
        transports.send(options("z9hG4bK-late"), Peer("tcp", HOST, server.port))
        await asyncio.sleep(0.2)
        assert len(server.connections) == 1
        assert recorder.failed.empty()
        server.close()

    run(scenario())
