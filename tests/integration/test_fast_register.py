"""Issue 14, "register first": a restart with an unchanged configuration sends the REGISTER and
answers Kamailio's digest challenge before asyncio and the rest are imported
(firmware/runtime/faststart.py), and the station carries on with that registration; a changed
configuration takes the normal path. Started as the installed service starts it (`python -S`)."""

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
        assert EARLY not in station.log  # the first start: no plan yet, the normal path
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


def test_a_changed_configuration_takes_the_normal_path(tmp_path, kamailio):
    station = InstalledFirmware(tmp_path / "fw", station_config(kamailio, "udp"),
                                log_level="INFO").start()
    try:
        station.wait_log(r"web page on http://", timeout=10.0)
        station.stop(timeout=5.0)
        # another listen port: the plan no longer matches the file
        with open(station.config_path, "w", encoding="utf-8") as f:
            import tomli_w

            f.write(tomli_w.dumps(station_config(kamailio, "udp")))
        offset = station.log_offset()
        station.start()
        station.wait_log(r"registration registered", timeout=10.0, since=offset)
        station.wait_log(r"web page on http://", timeout=10.0, since=offset)
        assert EARLY not in station.log[offset:]
        # the plan now follows the new file: the next start is early again
        offset = restart(station)
        station.wait_log(EARLY + r".*: registration registered", timeout=10.0, since=offset)
        assert station.alive
    finally:
        station.kill()
        print(f"--- firmware log (tail) ---\n{station.log[-3000:]}")
