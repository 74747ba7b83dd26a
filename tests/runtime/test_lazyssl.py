"""Issue 14: asyncio is imported without ssl (firmware/runtime/lazyssl.py), and the first
`import ssl` anywhere gives asyncio a working ssl: a TLS round trip through asyncio's streams.

Runs in a fresh interpreter (the test process has imported asyncio with ssl long ago)."""

import os
import subprocess
import sys
import textwrap

from tests.peers.certs import make_certificates

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent("""
    import sys
    from firmware.runtime.lazyssl import asyncio, deferred
    assert "ssl" not in sys.modules and "_ssl" not in sys.modules, "asyncio loaded ssl"
    assert deferred()
    import asyncio.sslproto
    assert asyncio.base_events.ssl is None

    async def main(cert, key, ca):
        import ssl  # the first import: asyncio gets it
        assert not deferred()
        assert asyncio.base_events.ssl is ssl and asyncio.selector_events.ssl is ssl
        assert asyncio.sslproto.ssl is ssl and asyncio.sslproto.SSLAgainErrors
        server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ctx.load_cert_chain(cert, key)

        async def echo(reader, writer):
            writer.write((await reader.readline()).upper())
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        client_ctx = ssl.create_default_context(cafile=ca)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx), 10)
        writer.write(b"hello over tls\\n")
        answer = await asyncio.wait_for(reader.readline(), 10)
        version = writer.get_extra_info("ssl_object").version()
        writer.close()
        server.close()
        await server.wait_closed()
        print(answer.decode().strip(), version)

    asyncio.run(main(*sys.argv[1:4]))
""")


def test_asyncio_without_ssl_until_first_import_then_tls_works(tmp_path):
    certs = make_certificates(tmp_path / "certs")
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(certs.cert_path), str(certs.key_path),
         str(certs.ca_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:3] == ["HELLO", "OVER", "TLS"], result.stdout
    assert result.stdout.split()[3].startswith("TLSv1."), result.stdout


def test_asyncio_already_imported_is_left_alone():
    child = ("import asyncio, sys\n"
             "from firmware.runtime import lazyssl\n"
             "assert lazyssl.asyncio is asyncio and 'ssl' in sys.modules\n"
             "assert not lazyssl.deferred()\n")
    result = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
