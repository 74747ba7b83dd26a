"""Issue 14, "register first": the station sends the REGISTER and answers Kamailio's digest
challenge before asyncio and the rest are imported (firmware/runtime/faststart.py), from the
start plan of the last start or, without one, from the configuration file, and carries on with
that registration. Started as the installed service starts it (`python -S`)."""

import os
import time

import pytest

from tests.integration.helpers import station_config, wait_contacts
from tests.integration.test_lean_start import InstalledFirmware

pytestmark = pytest.mark.peers

EARLY = "SIP started before the rest of the station"


def restart(station):
    station.stop(timeout=5.0)
    offset = station.log_offset()
    station.start()
    return offset


def test_a_restart_registers_before_the_rest_and_keeps_that_registration(tmp_path, kamailio):
    station = InstalledFirmware(tmp_path / "fw", station_config(kamailio, "udp"),
                                log_level="INFO").start()
    try:
        station.wait_log(r"web page on http://", timeout=10.0)
        # the first start: no plan yet, the REGISTER leaves once the file is parsed
        station.wait_log(EARLY + r".*: registration registered", timeout=10.0)
        plan = os.path.join(station.state_dir, "sip-start.plan")
        assert os.path.exists(plan)
        offset = restart(station)
        web = station.wait_log(r"web page on http://", timeout=10.0, since=offset)
        early = station.wait_log(EARLY + r".*: registration registered", timeout=10.0,
                                 since=offset)
        assert early.start() < web.start()
        wait_contacts(kamailio, "door", timeout=5.0)
        time.sleep(0.3)
        # taken over, not registered again: one outcome in the restart's log
        assert station.count_log(r"doorline: registration registered", since=offset) == 1
        assert station.count_log(r"listening on", since=offset) == 1
        assert station.alive
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-3000:]}")


def test_a_changed_configuration_registers_from_the_file_and_renews_the_plan(tmp_path,
                                                                              kamailio):
    station = InstalledFirmware(tmp_path / "fw", station_config(kamailio, "udp"),
                                log_level="INFO").start()
    try:
        station.wait_log(r"web page on http://", timeout=10.0)
        plan = os.path.join(station.state_dir, "sip-start.plan")
        with open(plan, "rb") as f:
            before = f.read()
        station.stop(timeout=5.0)
        # another listen port: the plan no longer matches the file
        config = station_config(kamailio, "udp")
        port = int(config["sip"]["listen"].rpartition(":")[2])
        with open(station.config_path, "w", encoding="utf-8") as f:
            import tomli_w

            f.write(tomli_w.dumps(config))
        offset = station.log_offset()
        station.start()
        station.wait_log(EARLY + r".*: registration registered", timeout=10.0, since=offset)
        station.wait_log(r"web page on http://", timeout=10.0, since=offset)
        assert f"listening on 127.0.0.1:{port} " in station.log[offset:]
        wait_contacts(kamailio, "door", lambda contacts: any(f":{port}" in c for c in contacts),
                      timeout=5.0)
        with open(plan, "rb") as f:
            assert f.read() != before  # the plan follows the new file
        assert station.alive
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-3000:]}")


def test_switched_off_the_station_registers_on_the_normal_path(tmp_path, kamailio,
                                                                monkeypatch):
    monkeypatch.setenv("DOORLINE_FAST_REGISTER", "0")  # the station's environment is ours
    station = InstalledFirmware(tmp_path / "fw", station_config(kamailio, "udp"),
                                log_level="INFO").start()
    try:
        station.wait_log(r"doorline: registration registered", timeout=10.0)
        station.wait_log(r"web page on http://", timeout=10.0)
        assert EARLY not in station.log
    finally:
        station.kill()
