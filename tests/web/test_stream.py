"""firmware/web/stream.py without a server: backlog, no duplicates, a client that falls
behind is let go (it resumes from the log), the number of streams is bounded."""

import asyncio

from firmware.web import stream


class Log:
    def __init__(self):
        self.events = []
        self.subscribers = []

    def subscribe(self, callback):
        self.subscribers.append(callback)
        return lambda: self.subscribers.remove(callback)

    def since(self, last_id):
        return [e for e in self.events if last_id is None or e["id"] > last_id]

    def append(self, type_="button"):
        event = {"id": len(self.events) + 1, "time": 0.0, "type": type_}
        self.events.append(event)
        for callback in list(self.subscribers):
            callback(event)


def test_backlog_then_live_without_duplicates():
    async def run():
        log = Log()
        for _ in range(3):
            log.append()
        streams = stream.EventStreams(log.subscribe, log.since, asyncio.get_running_loop().time)
        body = streams.open(1)
        chunks = [await body.__anext__()]  # retry: (subscribed from here on)
        log.append()
        for _ in range(3):
            chunks.append(await body.__anext__())
        await body.aclose()
        return chunks, streams.count, log.subscribers

    chunks, count, subscribers = asyncio.run(run())
    assert chunks[0] == b"retry: 2000\n\n"
    assert [c.split(b"\n")[0] for c in chunks[1:]] == [b"id: 2", b"id: 3", b"id: 4"]
    assert count == 0 and subscribers == []


def test_a_client_that_falls_behind_is_let_go():
    async def run():
        log = Log()
        streams = stream.EventStreams(log.subscribe, log.since, asyncio.get_running_loop().time)
        body = streams.open(None)
        await body.__anext__()
        for _ in range(stream.QUEUE_LIMIT + 10):  # it reads nothing meanwhile
            log.append()
        got = await asyncio.wait_for(_all(body), 1.0)  # ends at once: it resumes from the log
        return got, streams.count

    got, count = asyncio.run(run())
    assert got == [] and count == 0


async def _all(body):
    return [chunk async for chunk in body]


def test_at_most_max_streams():
    async def run():
        log = Log()
        streams = stream.EventStreams(log.subscribe, log.since, asyncio.get_running_loop().time)
        bodies = [streams.open(None) for _ in range(stream.MAX_STREAMS)]
        for body in bodies:
            await body.__anext__()
        refused = streams.open(None)
        await bodies[0].aclose()
        again = streams.open(None)
        for body in bodies[1:]:
            await body.aclose()
        return refused, again

    refused, again = asyncio.run(run())
    assert refused is None and again is not None
