"""sd_notify over a real AF_UNIX datagram socket standing in for systemd's."""

import os
import socket
import tempfile
import time

import pytest

from firmware.runtime.sdnotify import Notifier


@pytest.fixture
def fake_systemd():
    """A bound datagram socket at a short path (AF_UNIX paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="dl-notify-") as directory:
        path = os.path.join(directory, "notify")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        server.bind(path)
        server.settimeout(2.0)
        yield path, server
        server.close()


def test_sends_state_as_one_datagram(fake_systemd):
    path, server = fake_systemd
    notifier = Notifier(path)
    assert notifier.enabled
    assert notifier.notify("READY=1\nSTATUS=listening")
    assert server.recv(4096) == b"READY=1\nSTATUS=listening"
    notifier.close()


def test_abstract_namespace_address():
    name = f"doorline-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name)
    server.settimeout(2.0)
    try:
        notifier = Notifier("@" + name)
        assert notifier.notify("WATCHDOG=1")
        assert server.recv(4096) == b"WATCHDOG=1"
        notifier.close()
    finally:
        server.close()


def test_reads_notify_socket_from_environment(fake_systemd, monkeypatch):
    path, server = fake_systemd
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert Notifier().notify("STOPPING=1")
    assert server.recv(4096) == b"STOPPING=1"


def test_unset_socket_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_missing_listener_does_not_raise(tmp_path, caplog):
    notifier = Notifier(str(tmp_path / "nobody-listens"))
    assert notifier.notify("WATCHDOG=1") is False
    assert notifier.notify("WATCHDOG=1") is False
    assert sum("sd_notify" in r.message for r in caplog.records) == 1
    notifier.close()


def test_a_full_queue_never_blocks_the_sender(fake_systemd):
    """systemd not reading must not hang the event loop: sends fail fast instead."""
    path, _server = fake_systemd  # bound, never read: the kernel queue fills up
    notifier = Notifier(path)
    start = time.monotonic()
    results = [notifier.notify("WATCHDOG=1") for _ in range(2000)]
    assert time.monotonic() - start < 1.0
    assert results[0] is True
    assert results[-1] is False
    notifier.close()
