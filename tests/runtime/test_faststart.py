"""firmware/runtime/faststart.py: the start plan and the REGISTER sent before asyncio.

The plan's rules (written only for UDP to a registrar given by IP address, valid only for the
configuration file it was made from, mode 0600, not rewritten when unchanged) and the early
REGISTER against a registrar that does not answer (a bound socket on loopback: the REGISTER
arrives there, the start goes on after `wait`). With Kamailio: tests/integration/
test_fast_register.py.
"""

import os
import socket
import stat
import time

import pytest

from firmware import config as configuration
from firmware.runtime import faststart
from firmware.sip.endpoint import Peer
from firmware.sip.message import parse


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make(tmp_path, registrar="127.0.0.1:5999", transport="udp", listen_port=None):
    listen_port = listen_port or free_udp_port()
    cfg = configuration.validate({"sip": {
        "registrar": registrar, "username": "door", "password": "s3cret",
        "transport": transport, "listen": f"127.0.0.1:{listen_port}"}})
    path = tmp_path / "doorline.toml"
    path.write_text("# the plan is keyed on this file\n")
    host, _, port = registrar.rpartition(":")
    return cfg.sip, os.fspath(path), ("127.0.0.1", listen_port), Peer(transport, host, int(port))


def test_the_plan_round_trips_and_is_private(tmp_path):
    sip, path, listen, registrar = make(tmp_path)
    assert faststart.remember(os.fspath(tmp_path), path, sip, listen, registrar)
    mode = stat.S_IMODE(os.stat(faststart.plan_path(os.fspath(tmp_path))).st_mode)
    assert mode == 0o600  # it holds the SIP password
    loaded = faststart.load_plan(os.fspath(tmp_path), path)
    assert loaded is not None
    assert loaded[0] == sip and loaded[1] == listen and loaded[2] == registrar
    # unchanged: not written again (an SD card is not written at every start)
    assert not faststart.remember(os.fspath(tmp_path), path, sip, listen, registrar)


def test_a_changed_configuration_file_voids_the_plan(tmp_path):
    sip, path, listen, registrar = make(tmp_path)
    faststart.remember(os.fspath(tmp_path), path, sip, listen, registrar)
    with open(path, "a") as f:
        f.write("# edited\n")
    assert faststart.load_plan(os.fspath(tmp_path), path) is None


@pytest.mark.parametrize("registrar, transport", [
    ("registrar.example.com:5060", "udp"),  # a host name needs DNS (RFC 3263)
    ("127.0.0.1:5060", "tcp"),
    ("127.0.0.1:5061", "tls"),
])
def test_no_plan_where_the_normal_path_must_decide(tmp_path, registrar, transport):
    sip, path, listen, _ = make(tmp_path)
    faststart.remember(os.fspath(tmp_path), path, sip, listen, Peer("udp", "127.0.0.1", 5999))
    other, _, _, peer = make(tmp_path, registrar, transport)
    assert not faststart.remember(os.fspath(tmp_path), path, other, listen, peer)
    assert not os.path.exists(faststart.plan_path(os.fspath(tmp_path)))  # the old one is gone
    assert faststart.register_first(os.fspath(tmp_path), path) is None


def test_the_register_leaves_before_the_rest_and_the_start_goes_on(tmp_path, monkeypatch):
    monkeypatch.delenv("DOORLINE_FAST_REGISTER", raising=False)
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a registrar that never answers
    silent.bind(("127.0.0.1", 0))
    silent.settimeout(2.0)
    try:
        sip, path, listen, registrar = make(tmp_path, "127.0.0.1:%d" % silent.getsockname()[1])
        faststart.remember(os.fspath(tmp_path), path, sip, listen, registrar)
        began = time.monotonic()
        early = faststart.register_first(os.fspath(tmp_path), path, wait=0.1)
        took = time.monotonic() - began
        assert early is not None
        try:
            assert took < 1.0  # bounded by `wait`, not by Timer F
            data, source = silent.recvfrom(65535)
            request = parse(data)
            assert request.method == "REGISTER"
            assert source == listen  # from the listen port the station then takes over
            assert "Authorization" not in request.headers
            assert early.ua.status()["state"] == "unregistered"  # its transaction goes on
            assert early.ua.get_timer() is not None  # Timer E / F, for the station's loop
            assert early.matches(sip, listen, registrar)
            assert not early.matches(sip, (listen[0], listen[1] + 1), registrar)
        finally:
            early.close()
    finally:
        silent.close()


def test_switched_off_or_port_taken_sends_nothing(tmp_path, monkeypatch):
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.setblocking(False)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", 0))
    try:
        sip, path, listen, registrar = make(tmp_path, "127.0.0.1:%d" % silent.getsockname()[1])
        faststart.remember(os.fspath(tmp_path), path, sip, listen, registrar)
        monkeypatch.setenv("DOORLINE_FAST_REGISTER", "0")
        assert faststart.register_first(os.fspath(tmp_path), path, wait=0.1) is None
        monkeypatch.delenv("DOORLINE_FAST_REGISTER")
        sip2, _, listen2, _ = make(tmp_path, "127.0.0.1:%d" % silent.getsockname()[1],
                                   listen_port=taken.getsockname()[1])
        faststart.remember(os.fspath(tmp_path), path, sip2, listen2, registrar)
        assert faststart.register_first(os.fspath(tmp_path), path, wait=0.1) is None
        with pytest.raises(BlockingIOError):
            silent.recvfrom(65535)
    finally:
        silent.close()
        taken.close()


def test_a_request_meanwhile_is_held_for_the_station_and_the_200_registers(tmp_path,
                                                                             monkeypatch):
    """A registrar (a thread on loopback) that sends an OPTIONS to the station before it
    answers the REGISTER 200: the registration ends `registered`, the OPTIONS is kept, in
    order, for the station (which answers it once it runs)."""
    import threading

    monkeypatch.delenv("DOORLINE_FAST_REGISTER", raising=False)
    registrar = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    registrar.bind(("127.0.0.1", 0))
    registrar.settimeout(2.0)
    options = (b"OPTIONS sip:door@127.0.0.1 SIP/2.0\r\n"
               b"Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKopt1\r\n"
               b"From: <sip:127.0.0.1>;tag=o1\r\nTo: <sip:door@127.0.0.1>\r\n"
               b"Call-ID: opt-1\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
               b"Content-Length: 0\r\n\r\n" % registrar.getsockname()[1])
    seen = []

    def answer():
        data, source = registrar.recvfrom(65535)
        request = parse(data)
        seen.append(request)
        registrar.sendto(options, source)
        ok = request.make_response(200)
        ok.headers.add("Contact", request.headers.get("Contact") + ";expires=3600")
        registrar.sendto(ok.to_bytes(), source)

    thread = threading.Thread(target=answer, daemon=True)
    try:
        sip, path, listen, peer = make(tmp_path, "127.0.0.1:%d" % registrar.getsockname()[1])
        faststart.remember(os.fspath(tmp_path), path, sip, listen, peer)
        thread.start()
        early = faststart.register_first(os.fspath(tmp_path), path, wait=1.0)
        thread.join(2.0)
        assert early is not None
        try:
            assert seen and seen[0].method == "REGISTER"
            assert early.ua.status()["state"] == "registered"
            assert [data for data, _ in early.held] == [options]
            assert early.held[0][1] == registrar.getsockname()
        finally:
            early.close()
    finally:
        registrar.close()


def test_a_fault_in_the_early_register_leaves_the_start_to_the_normal_path(tmp_path,
                                                                         monkeypatch):
    monkeypatch.delenv("DOORLINE_FAST_REGISTER", raising=False)
    sip, path, listen, registrar = make(tmp_path)
    faststart.remember(os.fspath(tmp_path), path, sip, listen, registrar)

    def broken(self, now):
        raise RuntimeError("a bug")

    monkeypatch.setattr(faststart.UserAgent, "start", broken)
    assert faststart.register_first(os.fspath(tmp_path), path, wait=0.1) is None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind(listen)  # the early socket is closed: the station can bind the port


def test_without_a_plan_the_configuration_file_gives_it(tmp_path):
    import tomli_w

    path = tmp_path / "doorline.toml"
    port = free_udp_port()
    doc = {"sip": {"registrar": "127.0.0.1", "username": "door", "password": "s3cret",
                   "listen": f"127.0.0.1:{port}"}}
    path.write_text(tomli_w.dumps(doc))
    sip, listen, registrar = faststart.plan_from_config(os.fspath(path))
    assert listen == ("127.0.0.1", port)
    assert registrar == Peer("udp", "127.0.0.1", 5060)  # RFC 3263 §4.2: a numeric host
    assert sip.password == "s3cret"
    for changed in ({"registrar": "pbx.example.com"}, {"transport": "tcp"},
                    {"registrar": ""}, {"listen": "nonsense:port"}):
        path.write_text(tomli_w.dumps({"sip": {**doc["sip"], **changed}}))
        assert faststart.plan_from_config(os.fspath(path)) is None, changed
    assert faststart.plan_from_config(os.fspath(tmp_path / "missing.toml")) is None
    assert not (tmp_path / "missing.toml").exists()  # the normal path creates it


def test_a_sigterm_during_the_start_is_held_for_the_station():
    """Before the event loop's handlers exist, SIGTERM must not kill a station that may have
    registered already (firmware/runtime/launch.py stops it the usual way: unregister)."""
    import subprocess
    import sys

    code = ("import os, signal\n"
            "from firmware.runtime import faststart\n"
            "faststart.hold_signals()\n"
            "os.kill(os.getpid(), signal.SIGTERM)\n"  # our own process
            "print('held', faststart.signalled())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, cwd=os.path.dirname(os.path.dirname(
                              os.path.dirname(os.path.abspath(__file__)))))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "held True"
