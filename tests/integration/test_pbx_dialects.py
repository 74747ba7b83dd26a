"""PBX dialects against the running station (issue 19): one SIPp scenario per quirk, written
from what FRITZ!Box, Asterisk/FreePBX, 3CX and Kamailio-based PBXs send (docs/INSTALL.md has
the settings per PBX). The scenarios live in tests/integration/scenarios/pbx_*.xml and
registrar_*.xml, each documenting its flow; SIPp exits 0 only when every expected message
arrived and every `ereg check_it` matched.

- PBX → station (SIPp UAC, the station in direct-IP mode as in test_calls_sipp.py): delayed
  offer + re-INVITE without SDP + UPDATE; Require with an unsupported extension (420); a caller
  requiring 100rel (reliable 180, retransmitted until PRACKed).
- station → PBX (the call button rings a SIPp UAS through Kamailio, as test_early_media.py):
  reliable 18x that need PRACK, early media in a reliable 183; digest with qop=auth-int and
  SHA-256 on the INVITE and a 401 on the BYE.
- station → registrar (SIPp as the registrar): 423 Min-Expires, MD5 and SHA-256 challenges
  with qop="auth,auth-int", a stale nonce, a 200 listing another phone's binding besides ours,
  Path and Service-Route; 503 with Retry-After; 403.
"""

import re
import socket
import time

import pytest

from tests.integration.helpers import Firmware, station_config
from tests.integration.test_calls_sipp import SCENARIOS, sipp_call, stations  # noqa: F401 (fixture)
from tests.integration.test_door_station import DoorStation, door_config
from tests.peers.process import free_port
from tests.peers.sipp import start_sipp

pytestmark = pytest.mark.peers


# -- the PBX calls the door ------------------------------------------------------------------
def test_delayed_offer_reinvite_without_sdp_and_update(stations, tmp_path):
    station = stations()
    result = sipp_call("pbx_delayed_offer.xml", station, tmp_path / "sipp").wait()
    assert result.returncode == 0, result.describe()
    station.wait_log(r"call \S+ ended", timeout=5)
    assert not re.search(r"unusable answer|Traceback", station.log), station.log[-3000:]


def test_an_unsupported_required_extension_gets_420(stations, tmp_path):
    station = stations()
    result = sipp_call("pbx_require_unsupported.xml", station, tmp_path / "sipp").wait()
    assert result.returncode == 0, result.describe()
    assert "SIP/2.0 420" in result.messages and "call from" not in station.log


def test_a_caller_requiring_100rel_gets_a_reliable_180_until_it_pracks(stations, tmp_path):
    station = stations(answer_mode="ring")
    result = sipp_call("pbx_100rel_caller.xml", station, tmp_path / "sipp").wait()
    assert result.returncode == 0, result.describe()
    ringing = re.findall(r"SIP/2.0 180 .*?RSeq: (\d+)", result.messages, re.S)
    assert len(ringing) >= 2 and len(set(ringing)) == 1, ringing  # resent, same RSeq
    assert "SIP/2.0 487" in result.messages
