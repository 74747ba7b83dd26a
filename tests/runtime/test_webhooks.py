"""firmware/runtime/webhooks.py without a station: signatures, bounded queues, what is retried."""

import asyncio
import hashlib
import hmac
import json

from firmware.runtime import webhooks
from firmware.settings import WebhookConfig


def test_signature_is_hmac_sha256_of_the_body():
    body = b'{"id":1,"type":"button"}'
    expected = hmac.new(b"k", body, hashlib.sha256).hexdigest()
    assert webhooks.signature("k", body) == "sha256=" + expected


def test_queue_is_bounded_and_filtered():
    async def run():
        hooks = webhooks.Webhooks([
            WebhookConfig("http://127.0.0.1:9/a", ["button"], "s"),
            WebhookConfig("http://127.0.0.1:9/b", [], "s")])
        for i in range(500):  # not started: nothing is sent, everything waits
            hooks.event({"id": i, "type": "button" if i % 2 else "login"})
        return hooks.stats()

    a, b = asyncio.run(run())
    assert a["queued"] == webhooks.MAX_QUEUED and a["dropped"] == 250 - webhooks.MAX_QUEUED
    assert b["queued"] == webhooks.MAX_QUEUED and b["dropped"] == 500 - webhooks.MAX_QUEUED


def test_5xx_and_refused_retried_4xx_not(monkeypatch):
    monkeypatch.setattr(webhooks, "RETRY_DELAYS_S", (0.01, 0.01, 0.01))
    seen = []

    async def run():
        async def handle(reader, writer):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int([h for h in head.split(b"\r\n")
                          if h.lower().startswith(b"content-length:")][0].split(b":")[1])
            body = await reader.readexactly(length)
            path = head.split(b" ")[1].decode()
            seen.append((path, json.loads(body)["id"]))
            status = 500 if path == "/five" else 404
            writer.write(b"HTTP/1.1 %d X\r\nContent-Length: 0\r\n\r\n" % status)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        closed = await asyncio.start_server(handle, "127.0.0.1", 0)
        dead_port = closed.sockets[0].getsockname()[1]
        closed.close()
        await closed.wait_closed()
        hooks = webhooks.Webhooks([
            WebhookConfig(f"http://127.0.0.1:{port}/five", [], "s"),
            WebhookConfig(f"http://127.0.0.1:{port}/four", [], "s"),
            WebhookConfig(f"http://127.0.0.1:{dead_port}/", [], "s")])
        hooks.start()
        hooks.event({"id": 1, "type": "button"})
        for _ in range(200):
            await asyncio.sleep(0.01)
            if sum(s["failed"] for s in hooks.stats()) == 3:
                break
        stats = hooks.stats()
        await hooks.stop()
        server.close()
        await server.wait_closed()
        return stats

    five, four, dead = asyncio.run(run())
    assert five["attempts"] == 4 and five["failed"] == 1  # 1 + 3 retries
    assert four["attempts"] == 1 and four["failed"] == 1  # 404: the receiver will not take it
    assert dead["attempts"] == 4 and dead["failed"] == 1
    assert seen.count(("/five", 1)) == 4 and seen.count(("/four", 1)) == 1
