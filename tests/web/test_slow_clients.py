"""A client that sends its request a byte at a time (slowloris) is cut off, and the server goes on
answering others."""

import asyncio

from firmware import config
from firmware.web import app as web
from tests.web.fake_station import FakeStation


def test_a_slow_request_is_cut_off_and_others_are_served(tmp_path, monkeypatch):
    monkeypatch.setattr(web, "REQUEST_TIMEOUT", 0.5)

    async def scenario():
        station = FakeStation(config.validate({}))
        app = web.create_app(station, str(tmp_path / "config.toml"), str(tmp_path))
        server = await web.start(app, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
            slow_writer.write(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n")  # never finished
            await slow_writer.drain()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /api/status HTTP/1.1\r\nHost: localhost\r\n\r\n")
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            closed = await asyncio.wait_for(slow_reader.read(), 5)  # EOF once cut off
            return answer, closed
        finally:
            server.close()

    answer, closed = asyncio.run(scenario())
    assert answer.split(b" ", 2)[1] == b"403"  # served (first boot: the API says set a password)
    assert closed == b""
