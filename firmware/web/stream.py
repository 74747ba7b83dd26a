"""GET /api/events/stream: the event log as Server-Sent Events (issue 17), for the page and for
scripts (the WHATWG HTML "Server-sent events" format: `id:`, `data:` lines, `retry:`, comments
as keep-alives).

Bounds (docs/API.md):
- at most MAX_STREAMS streams at once (others get 503 and retry);
- each stream has its own queue of at most QUEUE_LIMIT events, filled by the event log's
  subscriber hook without waiting; a client that does not read (its socket does not drain
  within STREAM_WRITE_TIMEOUT, firmware/web/limits.py) or falls QUEUE_LIMIT events behind is
  disconnected, and catches up from the log when it reconnects with `Last-Event-ID`: one slow
  client never holds the others or the station back;
- a stream ends after MAX_STREAM_S (the client reconnects and is authenticated again);
  a comment every KEEPALIVE_S finds dead connections.
On (re)connection the events after `Last-Event-ID` (or `?since=`) are sent first, at most
BACKLOG_LIMIT of them; without either, only new events.

Public API:
    EventStreams(subscribe, since, clock)  subscribe(callback) -> unsubscribe; since(id) -> [events]
    .open(last_id) -> an async iterator of bytes, or None when MAX_STREAMS are open
    .count
    frame(event) -> bytes
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable

MAX_STREAMS = 8
QUEUE_LIMIT = 256
BACKLOG_LIMIT = 200
KEEPALIVE_S = 15.0
MAX_STREAM_S = 900.0
RETRY_MS = 2000


def frame(event: dict) -> bytes:
    data = json.dumps(event, separators=(",", ":"), default=str)
    return ("id: %d\ndata: %s\n\n" % (event.get("id", 0), data)).encode("utf-8")


class EventStreams:
    def __init__(self, subscribe: "Callable[[Callable[[dict], None]], Callable[[], None]]",
                 since: "Callable[[int | None], list[dict]]",
                 clock: "Callable[[], float]") -> None:
        self.subscribe = subscribe
        self.since = since
        self.clock = clock
        self.count = 0

    def open(self, last_id: int | None) -> "AsyncIterator[bytes] | None":
        if self.count >= MAX_STREAMS:
            return None
        return self._stream(last_id)  # counted from its first step (the finally uncounts it)

    async def _stream(self, last_id: int | None) -> "AsyncIterator[bytes]":
        queue: asyncio.Queue[dict] = asyncio.Queue(QUEUE_LIMIT)
        behind = [False]

        def on_event(event: dict) -> None:
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                behind[0] = True

        self.count += 1
        unsubscribe = self.subscribe(on_event)
        end = self.clock() + MAX_STREAM_S
        try:
            yield ("retry: %d\n\n" % RETRY_MS).encode()
            sent = last_id
            if last_id is not None:
                for event in self.since(last_id)[-BACKLOG_LIMIT:]:
                    sent = event["id"]
                    yield frame(event)
            while not behind[0]:
                left = end - self.clock()
                if left <= 0:
                    return
                try:
                    event = await asyncio.wait_for(queue.get(), min(KEEPALIVE_S, left))
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if sent is not None and event.get("id", 0) <= sent:
                    continue  # already sent with the backlog
                sent = event.get("id", sent)
                yield frame(event)
        finally:
            unsubscribe()
            self.count -= 1
