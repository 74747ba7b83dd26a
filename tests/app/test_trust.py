"""Who is trusted (issue 12): in direct-IP mode an identity counts only from its own host."""

from firmware.app import actions as a
from firmware.app import callers
from tests.app.harness import ControllerHarness, config, events, of_type

ALICE = "sip:alice@127.0.0.1"
BOB = "sip:bob@127.0.0.2"
TWO_HOSTS = {"sip": {"registrar": ""}, "answer": {"allow": [ALICE, BOB]},
             "door": {"codes": [{"caller": ALICE, "code": "2468"}]}}


def test_direct_ip_identity_is_trusted_only_from_its_own_host():
    assert callers.direct_ip_trusted(ALICE, "127.0.0.1", {"127.0.0.1", "127.0.0.2"})
    assert not callers.direct_ip_trusted(ALICE, "127.0.0.2", {"127.0.0.1", "127.0.0.2"})
    assert callers.direct_ip_trusted('"A" <sip:alice@127.0.0.1:5062>;tag=x', "127.0.0.1",
                                     {"127.0.0.1"})
    assert callers.direct_ip_trusted("sip:alice@[::1]", "::1", {"::1"})
    # the host must be an allow entry's address, and a name proves nothing
    assert not callers.direct_ip_trusted("sip:eve@127.0.0.3", "127.0.0.3", {"127.0.0.1"})
    assert not callers.direct_ip_trusted("sip:alice@door.example", "127.0.0.1", {"127.0.0.1"})
    assert not callers.direct_ip_trusted("not a uri", "127.0.0.1", {"127.0.0.1"})


def test_an_allowed_address_cannot_claim_another_entrys_identity():
    station = ControllerHarness(config(**TWO_HOSTS))
    out = station.incoming("in1", ALICE, source="udp:127.0.0.2:5060", trusted=False)
    assert of_type(out, a.Reject) == [a.Reject("in1", 403)]
    assert events(out, "caller_rejected")[0]["reason"] == "untrusted source"
    out = station.incoming("in2", BOB, source="udp:127.0.0.2:5060", trusted=False)
    assert of_type(out, a.Answer) == [a.Answer("in2")]
    station.do("call_ended", "in2", "remote hangup", None)
    out = station.incoming("in3", ALICE, source="udp:127.0.0.1:5060", trusted=False)
    assert of_type(out, a.Answer) == [a.Answer("in3")]


def test_a_borrowed_identity_cannot_type_its_door_code():
    station = ControllerHarness(config(**dict(TWO_HOSTS, answer={"mode": "ring",
                                                                "allow": [ALICE, BOB]})))
    station.incoming("in1", ALICE, source="udp:127.0.0.2:5060", trusted=False)
    station.do("call_established", "in1")
    out = []
    for digit in "2468":
        out += station.do("dtmf", "in1", digit)
    assert not of_type(out, a.PulseRelay)
    assert events(out, "code_failed")[0]["reason"] == "untrusted call"


def test_registered_calls_keep_the_sip_layers_verdict():
    """While registered the SIP layer decides (registrar source, [answer] identity); a call it
    did not trust (e.g. no P-Asserted-Identity) is refused whatever its From says."""
    station = ControllerHarness(config(answer={"allow": [ALICE], "identity": "asserted"}))
    out = station.incoming("in1", ALICE, trusted=False)
    assert of_type(out, a.Reject) == [a.Reject("in1", 403)]
    out = station.incoming("in2", ALICE, trusted=True)
    assert of_type(out, a.Answer) == [a.Answer("in2")]


def test_a_wildcard_name_address_is_no_caller():
    """`*` parses as a NameAddress without a URI (Contact: *); found by the type checker."""
    assert callers.caller_key("*") is None
    assert not callers.direct_ip_trusted("*", "127.0.0.1", {"127.0.0.1"})
