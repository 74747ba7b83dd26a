"""HTTPS: the first-boot self-signed certificate and serving the app over TLS."""

import asyncio
import os
import ssl
import stat
import sys

import pytest

from firmware.web import certs
from firmware.web.app import create_app, start
from tests.web.fake_station import FakeStation


def test_certificate_made_once_with_a_private_key(tmp_path):
    cert_path, key_path = certs.ensure_certificate(str(tmp_path), hosts=("doorline.local",))
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    with open(cert_path, "rb") as f:
        first = f.read()
    assert certs.ensure_certificate(str(tmp_path)) == (cert_path, key_path)
    with open(cert_path, "rb") as f:
        assert f.read() == first, "an existing certificate must be kept"
    from cryptography import x509
    names = x509.load_pem_x509_certificate(first).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "doorline.local" in names.get_values_for_type(x509.DNSName)


def test_missing_cryptography_is_explained(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(certs.CertificateError, match="cryptography"):
        certs.ensure_certificate(str(tmp_path))


def test_app_served_over_tls_sets_secure_cookies(tmp_path):
    station = FakeStation()
    app = create_app(station, str(tmp_path / "doorline.toml"), str(tmp_path))
    server_context = certs.server_ssl_context(str(tmp_path))
    client_context = ssl.create_default_context(
        cafile=os.path.join(str(tmp_path), certs.CERT_FILE))

    async def fetch_login_page():
        server = await start(app, "127.0.0.1", 0, server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context, server_hostname="127.0.0.1"), 5)
            writer.write(f"GET /setup HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            response = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return response.decode()
        finally:
            server.close()
            await server.wait_closed()

    response = asyncio.run(fetch_login_page())
    assert response.startswith("HTTP/1.0 200")
    cookie = next(line for line in response.split("\r\n") if line.startswith("Set-Cookie:"))
    assert "__Host-doorline_session=" in cookie and "; Secure" in cookie


def test_certificate_names_the_mdns_name_and_its_fingerprint_is_logged(tmp_path, caplog):
    import socket

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    with caplog.at_level("INFO", logger="doorline.web"):
        certs.server_ssl_context(str(tmp_path), hosts=("0.0.0.0",))
    cert_path = os.path.join(str(tmp_path), certs.CERT_FILE)
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"{socket.gethostname()}.local" in names.get_values_for_type(x509.DNSName)
    assert all(not a.is_unspecified for a in names.get_values_for_type(x509.IPAddress))
    expected = cert.fingerprint(hashes.SHA256()).hex(":").upper()
    assert certs.fingerprint(cert_path) == expected
    assert any(expected in r.getMessage() for r in caplog.records)


def test_a_tls_client_that_never_says_hello_is_cut_off(tmp_path):
    """With HTTPS the handshake comes after the connection limits and within IDLE_TIMEOUT; it
    used to get asyncio's 60 s handshake timeout, uncounted."""
    from firmware.web import limits

    station = FakeStation()
    app = create_app(station, str(tmp_path / "doorline.toml"), str(tmp_path))
    server_context = certs.server_ssl_context(str(tmp_path))

    async def silent_client():
        server = await start(app, "127.0.0.1", 0, server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            began = asyncio.get_running_loop().time()
            try:
                closed = await asyncio.wait_for(reader.read(), limits.IDLE_TIMEOUT + 2.0)
            except TimeoutError:
                closed = None
            took = asyncio.get_running_loop().time() - began
            writer.close()
            return closed, took
        finally:
            server.close()
            await server.wait_closed()

    closed, took = asyncio.run(silent_client())
    assert closed == b"", f"a TLS connection without a handshake still open after {took:.1f} s"
    assert took < limits.IDLE_TIMEOUT + 1.0


def test_an_existing_certificate_is_served_without_datetime_or_cryptography(tmp_path):
    """Issue 14, sixth round: an https station whose certificate exists (every start after the
    first) loads neither cryptography nor datetime (~0.25 MB) for its TLS context."""
    import site
    import subprocess

    from tests.conftest import ROOT

    certs.ensure_certificate(str(tmp_path))
    probe = ("import sys\nfrom firmware.web import certs\n"
             f"certs.server_ssl_context({str(tmp_path)!r})\n"
             "print(sorted(m for m in ('datetime', '_datetime', 'cryptography') "
             "if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(site.getsitepackages())}
    done = subprocess.run([sys.executable, "-S", "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=30, env=env)  # -S: as the service starts it
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
