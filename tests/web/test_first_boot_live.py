"""First boot cannot be taken over from a web page (issue 12), against the running firmware.

- DNS rebinding: `python -m firmware --board pc-sim` with its page on loopback; requests with
  `Host: evil.example` to /, /setup, /api/setup, /api/status and a static file all get 421 and
  the admin password is not set; the station's own names still work.
- From the LAN: in a network namespace this test creates (veth pair, 192.0.2.0/24; see
  tests/web/netns_first_boot.py), a client that is not on loopback is refused 421 for a foreign
  Host even with the right setup code, gets 403 without a code and with a wrong one, and 200
  with the code logged at start; a station's own loopback needs no code. Skipped, with the
  reason, where a namespace cannot be created.
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.integration.helpers import Firmware
from tests.peers.process import free_port
from tests.web.netns_first_boot import request

PASSWORD = "Klingel-Draht-4182"
PYTHON = ROOT / ".venv" / "bin" / "python"


def fetch(port, method, path, host, body=None):
    """(status, body text) of one request to the station on 127.0.0.1 with this Host."""
    return request("127.0.0.1", port, method, path, host, body)


def start_station(workdir, **web):
    port = free_port(("tcp",))
    config = {"sip": {"listen": f"127.0.0.1:{free_port(('udp', 'tcp'))}"},
              "web": {"listen": f"127.0.0.1:{port}", **web}}
    fw = Firmware(workdir, config).start()
    try:
        fw.wait_log(r"web page on http://", 10)
    except BaseException:
        fw.kill()
        raise
    fw.web_port = port
    return fw


@pytest.fixture
def station(tmp_path):
    fw = start_station(tmp_path / "fw")
    try:
        yield fw
    finally:
        fw.kill()


def test_dns_rebinding_cannot_set_the_password(station):
    port, admin = station.web_port, os.path.join(station.state_dir, "admin.json")
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}",
                 f"localhost.evil.example:{port}"):
        for method, path, body in [("GET", "/", None), ("GET", "/setup", None),
                                   ("POST", "/api/setup", {"password": PASSWORD}),
                                   ("GET", "/api/status", None), ("GET", "/static/app.js", None),
                                   ("GET", "/metrics", None)]:
            status, text = fetch(port, method, path, host, body)
            assert status == 421, (host, method, path, status, text[:200])
            assert "DNS rebinding" in text
    assert not os.path.exists(admin), "a rebinding request set the admin password"
    assert station.alive
    assert "refused a web request for Host 'evil.example'" in station.log
    # The station's own names still reach it, and from loopback no setup code is needed.
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST.", f"[::1]:{port}"):
        assert fetch(port, "GET", "/static/app.js", host)[0] == 200, host
    assert fetch(port, "GET", "/api/status", f"127.0.0.1:{port}")[0] == 403  # first boot
    status, text = fetch(port, "POST", "/api/setup", f"localhost:{port}", {"password": PASSWORD})
    assert status == 200, text
    assert os.path.exists(admin)


def test_names_in_web_hostnames_are_accepted(tmp_path):
    fw = start_station(tmp_path / "fw", hostnames=["door.example.org", "192.0.2.80"])
    try:
        port = fw.web_port
        for host in ("door.example.org", f"Door.Example.Org.:{port}", "192.0.2.80:8443"):
            assert fetch(port, "GET", "/static/app.js", host)[0] == 200, host
        assert fetch(port, "GET", "/static/app.js", "door.example.org.evil")[0] == 421
    finally:
        fw.kill()


def _namespaces_allowed():
    if shutil.which("unshare") is None or shutil.which("ip") is None or \
            shutil.which("nsenter") is None:
        return "unshare, nsenter or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "add", "t0", "type", "veth", "peer",
                            "name", "t1"], capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"cannot create a network namespace with a veth pair here: {probe.stderr.strip()}"
    return None


def test_first_password_from_the_lan_needs_the_setup_code(tmp_path):
    problem = _namespaces_allowed()
    if problem:
        pytest.skip(problem)
    python = os.fspath(PYTHON if PYTHON.exists() else sys.executable)
    done = subprocess.run(["unshare", "-n", python, "-m", "tests.web.netns_first_boot", "driver",
                           os.fspath(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=90)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (
        f"driver failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"first boot from the LAN: {result}")
    rebinding = result["rebinding"]
    assert rebinding["statuses"] == [421] * 5, result
    assert rebinding["explained"] and not rebinding["password_set"], result
    assert result["own_names"] == [200, 403, 200, 200, 200], result
    remote = result["remote_setup"]
    assert remote["without_code"] == 403 and remote["wrong_code"] == 403, result
    assert "journalctl -u doorline" in remote["message"], result
    assert not remote["password_set_before_code"], result
    assert remote["with_code"] == 200 and remote["password_set"], result
    assert remote["code_file_removed"], result
    assert remote["failures_logged"] == ["setup_code", "setup_code"], result
    assert result["code_logged"], result
    assert result["loopback_setup"] == {"status": 200, "password_set": True}, result
    assert result["alive"], result
