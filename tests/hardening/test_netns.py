"""Network faults inside a network namespace the test creates itself.

`unshare -n` gives the scenario its own loopback; tests/hardening/netns_driver.py runs Kamailio,
the station and a seeded userspace UDP relay in it (this kernel has no `tc netem`, see
../shared/peers/NOTES.md) and prints its measurements. Skipped, with the reason, where creating
a namespace is not allowed (no root, no unshare).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.peers

PYTHON = ROOT / ".venv" / "bin" / "python"


def _namespaces_allowed():
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip is not installed"
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True, timeout=10)
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.strip()}"
    return None


def run_scenario(name, workdir, timeout):
    problem = _namespaces_allowed()
    if problem:
        pytest.skip(problem)
    python = os.fspath(PYTHON if PYTHON.exists() else sys.executable)
    done = subprocess.run(["unshare", "-n", python, "-m", "tests.hardening.netns_driver", name,
                           os.fspath(workdir)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, (
        f"{name} driver failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def test_loss_and_jitter_on_rtp_keep_audio_flowing(tmp_path):
    result = run_scenario("media", tmp_path, timeout=90)
    print(f"5 % loss, 0-100 ms jitter on RTP: {result}")
    relay = result["relay"]
    assert relay["lost"] > 0, result  # the impairment really happened
    assert result["windows"] >= 40, result  # ~5.5 s of speaker audio analysed
    assert result["with_tone"] >= 0.85 * result["windows"], result
    assert result["longest_gap_ms"] <= 400, result


def test_registrar_outage_of_60_s_re_registers_after_it_ends(tmp_path):
    result = run_scenario("outage", tmp_path, timeout=180)
    print(f"60 s registrar outage: {result}")
    assert result["relay"]["blocked"] > 0, result  # REGISTERs were really lost
    # The registration really lapsed: Kamailio forgot the contact during the outage.
    assert result["registrar_dropped_contact_after_s"] is not None, result
    # A REGISTER still being retransmitted gets through within T2 = 4 s; a failed one is
    # retried after at most 20 s (firmware/sip/registration.py back-off cap).
    assert result["registered_again_after_s"] <= 25, result
    assert result["alive"], result


def test_nat_remap_keepalive_dead_registrar_and_symmetric_rtp(tmp_path):
    """Issue 19: keep-alives through a NAT that remaps, a registrar that goes silent, and RTP
    from a NATed caller (port may latch, IP may not)."""
    result = run_scenario("nat", tmp_path, timeout=120)
    print(f"NAT and keep-alive: {result}")
    period = result["keepalive_s"]
    assert result["received_before"], result  # Kamailio saw the NAT's outside port
    remapped = result["remapped"]
    # the next keep-alive's answer shows the new rport; the station re-registers at once from
    # a new local port (its one binding's Contact moved there, the old one removed)
    assert result["contact_ports_before"] == [remapped["listen_port"]], result
    assert remapped["binding_followed_after_s"] is not None, result
    assert len(remapped["contact_ports_after"]) == 1, result
    assert remapped["contact_ports_after"][0] != remapped["listen_port"], result
    assert remapped["binding_followed_after_s"] <= period + 3, result  # + scheduling slack
    assert remapped["logged"] == 1, result
    # the NAT's own mapping of the new local port is the new baseline: no port hopping
    assert remapped["logged_later"] == 1, result
    assert remapped["contact_ports_later"] == remapped["contact_ports_after"], result
    # two periods at worst (blocked just after an answered keep-alive), plus scheduling slack
    assert result["dead_noticed_after_s"] <= 2 * period + 1.5, result
    rtp = result["rtp"]
    assert rtp["to_rogue"] == 0, result  # another IP never latches
    assert rtp["second_half_to_nat_port"] >= 50, result  # the port latched (~75 sent)
    assert rtp["second_half_to_sdp_port"] == 0, result
    assert result["alive"], result
