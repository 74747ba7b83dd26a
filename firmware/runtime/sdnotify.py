"""sd_notify(3): tell systemd about the service's state over the `$NOTIFY_SOCKET` datagram socket.

The protocol is one AF_UNIX datagram per notification holding newline-separated `KEY=value`
assignments (`READY=1`, `WATCHDOG=1`, `STOPPING=1`, `STATUS=...`). An address starting with `@`
is in the Linux abstract namespace (the `@` stands for a leading NUL byte).

    notifier = Notifier()            # reads $NOTIFY_SOCKET; a no-op when it is unset
    notifier.enabled                 # True when there is somewhere to send to
    notifier.notify("READY=1")       # True when the datagram was sent
    notify("STATUS=hello")           # the same through a module-wide notifier

Sending never raises and never blocks: a service must not die or hang because its supervisor
went away or stopped reading (a full datagram queue would otherwise block the event loop). The
first failure is logged once; later ones are silent until a send succeeds again.
"""

import logging
import os
import socket

log = logging.getLogger("doorline.sdnotify")


def _socket_address(text: str) -> str:
    if text.startswith("@"):
        return "\0" + text[1:]
    return text


class Notifier:
    def __init__(self, address: str | None = None) -> None:
        if address is None:
            address = os.environ.get("NOTIFY_SOCKET", "")
        self.address = _socket_address(address) if address else None
        self._socket: socket.socket | None = None
        self._failing = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, state: str) -> bool:
        """Send `state` (e.g. "READY=1\\nSTATUS=running") as one datagram."""
        if self.address is None:
            return False
        try:
            if self._socket is None:
                kind = socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK
                self._socket = socket.socket(socket.AF_UNIX, kind)
            self._socket.sendto(state.encode("utf-8"), self.address)
        except OSError as exc:
            if not self._failing:
                log.warning("sd_notify to %r failed: %s", self.address, exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


_default = None


def notify(state: str) -> bool:
    """Send `state` through a notifier created from the environment on first use."""
    global _default
    if _default is None:
        _default = Notifier()
    return _default.notify(state)
