"""Webhooks (issue 17): each event POSTed as JSON to the `[[webhooks]]` URLs that want it,
signed, retried with back-off from a bounded queue. Standard library only (asyncio streams,
ssl, hmac); loaded by runtime/house.py only when webhooks are configured.

Each webhook has its own queue (at most MAX_QUEUED events; when full the oldest is dropped and
counted) and one task that delivers them in order. A delivery is one HTTP/1.1 POST over a new
connection (`Connection: close`) with:
    Content-Type: application/json            the event as in GET /api/events
    X-Doorline-Event: <type>
    X-Doorline-Delivery: <event id>
    X-Doorline-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the secret>
It is done when the receiver answers 2xx. A 5xx, 408, 429, a refused or broken connection or
no answer within TIMEOUT_S is retried after RETRY_DELAYS_S[n] (1, 2, 4, 8, 16, 32 s: seven
attempts over about a minute), then dropped and logged; any other answer (a 4xx: the receiver
will not take it) is dropped at once. HTTPS verifies the certificate and the host name against
the system's CAs or the webhook's `tls_ca`, TLS 1.2 at least; redirects are not followed.

Nothing here runs on the station's path: `event()` only appends to a deque, a dead or slow
receiver costs one task waiting on its socket, and memory stays bounded.

Public API:
    Webhooks(hooks: list[WebhookConfig])
    event(event) (queued for each webhook that wants its type); start(); await stop()
    stats() -> [{"url", "queued", "delivered", "failed", "dropped"}]
    signature(secret, body) -> "sha256=<hex>"
"""

import asyncio
import collections
import hashlib
import hmac
import json
import logging
import ssl

from firmware.config import split_webhook_url
from firmware.settings import WebhookConfig

log = logging.getLogger("doorline.webhooks")

MAX_QUEUED = 50
RETRY_DELAYS_S = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)
TIMEOUT_S = 5.0  # connect, send and the status line, together
MAX_RESPONSE_HEAD = 8192
RETRIED_STATUS = (408, 429)
USER_AGENT = "Doorline-Webhook/1"


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class DeliveryError(Exception):
    """A failed attempt: `retry` says whether another attempt may succeed."""

    def __init__(self, message: str, retry: bool) -> None:
        super().__init__(message)
        self.retry = retry


class _Hook:
    def __init__(self, cfg: WebhookConfig) -> None:
        self.cfg = cfg
        self.scheme, self.host, self.port, self.path = split_webhook_url(cfg.url)
        self.queue: collections.deque[dict] = collections.deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.attempts = 0
        self.tls: ssl.SSLContext | None = None
        if self.scheme == "https":
            self.tls = ssl.create_default_context(cafile=cfg.tls_ca or None)
            self.tls.minimum_version = ssl.TLSVersion.TLSv1_2

    def offer(self, event: dict) -> None:
        if len(self.queue) >= MAX_QUEUED:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append(event)
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                event = self.queue[0]
                await self._deliver(event)
                if self.queue and self.queue[0] is event:
                    self.queue.popleft()

    async def _deliver(self, event: dict) -> None:
        body = json.dumps(event, separators=(",", ":"), default=str).encode("utf-8")
        for attempt in range(len(RETRY_DELAYS_S) + 1):
            self.attempts += 1
            try:
                await asyncio.wait_for(self._post(event, body), TIMEOUT_S)
                self.delivered += 1
                return
            except TimeoutError:
                error = DeliveryError("no answer within %.0f s" % TIMEOUT_S, True)
            except DeliveryError as exc:
                error = exc
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                error = DeliveryError("%s: %s" % (type(exc).__name__, exc), True)
            if not error.retry or attempt == len(RETRY_DELAYS_S):
                break
            delay = RETRY_DELAYS_S[attempt]
            log.info("webhook %s: event %s: %s; retrying in %.0f s", self.cfg.url,
                     event.get("id"), error, delay)
            await asyncio.sleep(delay)
        self.failed += 1
        log.warning("webhook %s: event %s dropped: %s", self.cfg.url, event.get("id"), error)

    async def _post(self, event: dict, body: bytes) -> None:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, ssl=self.tls,
            server_hostname=self.host if self.tls is not None else None)
        try:
            host = "[%s]" % self.host if ":" in self.host else self.host
            default = 443 if self.scheme == "https" else 80
            head = ("POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
                    "Content-Type: application/json\r\nContent-Length: %d\r\n"
                    "X-Doorline-Event: %s\r\nX-Doorline-Delivery: %s\r\n"
                    "X-Doorline-Signature: %s\r\nConnection: close\r\n\r\n") % (
                self.path, host if self.port == default else "%s:%d" % (host, self.port),
                USER_AGENT, len(body), event.get("type"), event.get("id"),
                signature(self.cfg.secret, body))
            writer.write(head.encode("ascii", "replace") + body)
            await writer.drain()
            line = await reader.readline()
            if len(line) > MAX_RESPONSE_HEAD or not line.startswith(b"HTTP/1."):
                raise DeliveryError("not an HTTP answer: %r" % line[:40], True)
            parts = line.split(None, 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if 200 <= status < 300:
                return
            retry = status >= 500 or status in RETRIED_STATUS or status == 0
            raise DeliveryError("HTTP %d" % status, retry)
        finally:
            writer.close()


class Webhooks:
    def __init__(self, hooks: "list[WebhookConfig]") -> None:
        self.hooks = [_Hook(cfg) for cfg in hooks]

    def start(self) -> None:
        for hook in self.hooks:
            hook.task = asyncio.ensure_future(hook.run())

    def event(self, event: dict) -> None:
        type_ = event.get("type")
        for hook in self.hooks:
            if hook.cfg.wants(type_ if isinstance(type_, str) else ""):
                hook.offer(event)

    async def stop(self) -> None:
        """Undelivered events are dropped (logged): shutdown must stay within its 3 s."""
        for hook in self.hooks:
            if hook.queue:
                log.warning("webhook %s: %d undelivered events dropped at stop",
                            hook.cfg.url, len(hook.queue))
            if hook.task is not None:
                hook.task.cancel()
                try:
                    await hook.task
                except (asyncio.CancelledError, Exception):
                    pass
                hook.task = None

    def stats(self) -> "list[dict]":
        return [{"url": h.cfg.url, "queued": len(h.queue), "delivered": h.delivered,
                 "failed": h.failed, "dropped": h.dropped, "attempts": h.attempts}
                for h in self.hooks]
