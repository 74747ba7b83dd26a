"""Admission control (firmware/sip/admission.py) and its hooks in the endpoint and user agent."""

from firmware.sip import admission
from firmware.sip.endpoint import MessageRejected, Peer
from firmware.sip.message import Request, parse
from firmware.sip.uri import URI
from firmware.sip.useragent import UserAgent

REGISTRAR = Peer("udp", "192.0.2.1", 5060)
STRANGER = Peer("udp", "192.0.2.66", 5099)


def request(method="INVITE", uri="sip:door@192.0.2.10:5070", to_tag=None, branch="z9hG4bK1",
            call_id="c1"):
    to = "<sip:door@192.0.2.10>" + (";tag=%s" % to_tag if to_tag else "")
    text = ("%s %s SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.66:5099;branch=%s\r\n"
            "From: <sip:x@192.0.2.66>;tag=f\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: 1 %s\r\n"
            "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n") % (method, uri, branch, to,
                                                                 call_id, method)
    return text.encode()


def test_token_bucket_allows_the_burst_then_the_rate():
    bucket = admission.TokenBucket(rate=10, burst=5, now=0.0)
    assert [bucket.take(0.0) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(0.1) and not bucket.take(0.1)  # 0.1 s buys one token
    assert sum(bucket.take(10.0) for _ in range(100)) == 5  # never more than the burst


def test_per_source_buckets_are_independent_and_the_global_cap_binds():
    gate = admission.Admission(source_rate=1, source_burst=3, global_rate=1, global_burst=5)
    assert [gate.admit("a", False, 0.0) for _ in range(4)] == [True, True, True, False]
    assert [gate.admit("b", False, 0.0) for _ in range(3)] == [True, True, False]  # global: 5
    assert gate.admitted == 5 and gate.dropped == 2
    # The registrar has its own bucket: a flood from elsewhere does not starve it.
    assert all(gate.admit("r", True, 0.0) for _ in range(50))


def test_source_table_is_bounded_least_recently_used_first():
    gate = admission.Admission(source_rate=0.001, source_burst=1, global_burst=10 ** 6,
                               max_sources=3)
    for host in ("a", "b", "c"):
        assert gate.admit(host, False, 0.0)
    assert not gate.admit("a", False, 0.0)  # a is now the most recently used
    assert gate.admit("d", False, 0.0) and len(gate) == 3  # b, the oldest, was forgotten
    assert not gate.admit("a", False, 0.0) and not gate.admit("c", False, 0.0)
    assert gate.admit("b", False, 0.0)  # forgotten: starts over with a full bucket


def test_is_ours_checks_user_and_host():
    users, hosts = ("door",), ("192.0.2.10", "example.org")
    assert admission.is_ours(URI.parse("sip:door@192.0.2.10:5070"), users, hosts)
    assert admission.is_ours(URI.parse("sip:192.0.2.10"), users, hosts)
    assert admission.is_ours(URI.parse("sips:door@EXAMPLE.org"), users, hosts)
    assert not admission.is_ours(URI.parse("sip:flat1@192.0.2.10"), users, hosts)
    assert not admission.is_ours(URI.parse("sip:door@198.51.100.7"), users, hosts)
    assert not admission.is_ours(URI.parse("tel:+15551234"), users, hosts)
    assert admission.is_ours(URI.parse("sip:door@198.51.100.7"), users, ("0.0.0.0",))
    assert not admission.is_ours(URI.parse("sip:door@evil.example"), users, ("0.0.0.0",))


def test_policy_while_registered_is_uniform_for_strangers():
    users, hosts = ("door",), ("192.0.2.10",)
    statuses = set()
    for method in ("INVITE", "MESSAGE", "SUBSCRIBE", "INFO", "BYE"):
        for user in ("door", "flat1", "100", "admin"):
            msg = parse(request(method, "sip:%s@192.0.2.10" % user))
            statuses.add(admission.screen_request(msg, False, True, users, hosts))
    assert statuses == {admission.FORBIDDEN}  # nothing to tell extensions apart
    assert admission.screen_request(parse(request("OPTIONS")), False, True, users, hosts) is None
    assert admission.screen_request(parse(request("REGISTER")), False, True, users, hosts) is None
    in_dialog = parse(request("BYE", to_tag="abc"))
    assert admission.screen_request(in_dialog, False, True, users, hosts) is None
    foreign = parse(request("INVITE", "sip:flat1@192.0.2.10"))
    assert admission.screen_request(foreign, True, True, users, hosts) == admission.NOT_FOUND
    assert admission.screen_request(foreign, False, False, users, hosts) == admission.NOT_FOUND
    ours = parse(request("INVITE"))
    assert admission.screen_request(ours, True, True, users, hosts) is None


def user_agent(registrar=REGISTRAR):
    return UserAgent({"host": "192.0.2.10", "port": 5070, "transport": "udp",
                      "username": "door", "domain": "example.org", "password": "pw",
                      "registrar": registrar})


def drain(ua):
    events = []
    while True:
        event = ua.next_event()
        if event is None:
            return events
        events.append(event)


def test_stranger_gets_a_stateless_403_and_no_transaction():
    ua = user_agent()
    ua.receive(request("INVITE", "sip:flat1@192.0.2.10"), STRANGER, 1.0)
    out = ua.datagrams_to_send()
    assert len(out) == 1 and out[0][0].startswith(b"SIP/2.0 403 ")
    assert b";tag=" in out[0][0].split(b"\r\nTo:", 1)[1].split(b"\r\n", 1)[0]
    assert out[0][1] == Peer("udp", "192.0.2.66", 5099)
    assert len(ua.endpoint.table) == 0
    rejected = [e for e in drain(ua) if isinstance(e, MessageRejected)]
    assert rejected and rejected[0].request.method == "INVITE"


def test_foreign_request_uri_from_the_registrar_gets_404_and_is_not_relayed():
    ua = user_agent()
    ua.receive(request("MESSAGE", "sip:+15551234@192.0.2.10"), REGISTRAR, 1.0)
    out = ua.datagrams_to_send()
    assert [d[0].split(b"\r\n")[0] for d in out] == [b"SIP/2.0 404 Not Found"]
    # Back to the registrar (received= its address, §18.2.2), never onwards to the target.
    assert [d[1] for d in out] == [Peer("udp", "192.0.2.1", 5099)]


def test_flood_is_dropped_silently_before_any_transaction():
    ua = user_agent()
    answered = 0
    for i in range(1000):  # 1000 INVITEs within one second from one stranger
        ua.receive(request(branch="z9hG4bKf%d" % i, call_id="f%d" % i), STRANGER, 1.0 + i / 1000)
        answered += len(ua.datagrams_to_send())
    assert 40 <= answered <= 40 + 20 + 1  # the burst plus one second of the rate
    assert len(ua.endpoint.table) == 0
    # The registrar still gets through while the stranger is throttled.
    ua.receive(request("OPTIONS", branch="z9hG4bKreg"), REGISTRAR, 2.0)
    assert [d[0].split(b"\r\n")[0] for d in ua.datagrams_to_send()] == [b"SIP/2.0 200 OK"]


def test_ack_is_never_answered_by_the_screen():
    ua = user_agent()
    ua.receive(request("ACK", "sip:flat1@192.0.2.10"), STRANGER, 1.0)
    assert ua.datagrams_to_send() == []


def test_direct_ip_mode_lets_strangers_reach_the_call_layer():
    ua = user_agent(registrar=None)
    ua.receive(request("OPTIONS"), STRANGER, 1.0)
    assert ua.datagrams_to_send()[0][0].startswith(b"SIP/2.0 200 ")
    ua.receive(request("INVITE", "sip:flat1@192.0.2.10", branch="z9hG4bK9"), STRANGER, 1.0)
    assert ua.datagrams_to_send()[0][0].startswith(b"SIP/2.0 404 ")


def test_built_request_round_trip_sanity():
    # The helper above must produce something the parser accepts, or the tests prove nothing.
    assert isinstance(parse(request()), Request)


def test_requests_in_our_dialogs_have_a_budget_of_their_own():
    gate = admission.Admission(source_rate=1, source_burst=2, global_rate=1, global_burst=3,
                               dialog_rate=10, dialog_burst=5)
    assert sum(gate.admit("s%d" % i, False, 0.0) for i in range(10)) == 3  # global cap spent
    # A live dialog's requests pay their source's dialog bucket, not the spent global one...
    assert [gate.admit_dialog("phone", 0.0) for _ in range(6)] == [True] * 5 + [False]
    assert gate.admit_dialog("phone", 0.1)  # ...which refills at its own rate
    # ...and do not touch the source's bucket for new requests.
    assert gate.admit("phone", False, 10.0) and gate.admit("phone", False, 10.0)


def _answered_call_through_a_flood():
    """A door (direct IP) in a call with a phone, while strangers spend the global cap."""
    from tests.sip.test_call import FLAT1, Network, Phone, Station, answered_call

    net = Network()
    door, phone = Station(net), Phone(net, FLAT1)
    call, invite = answered_call(net, door, phone)
    phone.take("ACK")
    screen = door.ua.endpoint.screen
    flood = 0
    for i in range(400):  # 400 sources, one OPTIONS each, in the same instant
        stranger = Peer("udp", "198.51.100.%d" % (i % 250), 5060 + i)
        door.ua.receive(request("OPTIONS", branch="z9hG4bKfl%d" % i, call_id="fl%d" % i),
                        stranger, net.now)
        flood += len(door.ua.datagrams_to_send())
    assert flood <= 100 + 1 and screen.admission.dropped >= 299  # the global cap binds
    return net, door, phone, call, invite


def test_a_flood_from_elsewhere_does_not_drop_a_real_calls_bye():
    from tests.sip.test_call import Phone, cseq

    net, door, phone, call, invite = _answered_call_through_a_flood()
    phone.request("BYE", 2, Phone.dialog_of(invite))
    ok = phone.take(200)
    assert cseq(ok).method == "BYE" and call.state == "ended"


def test_a_bye_naming_no_dialog_of_ours_pays_like_a_strangers_request():
    from tests.sip.test_call import Phone

    net, door, phone, call, invite = _answered_call_through_a_flood()
    forged = dict(Phone.dialog_of(invite), call_id="not-ours@x")  # tags right, Call-ID not
    phone.request("BYE", 2, forged)
    assert phone.count(200) == 0 and phone.count(481) == 0  # dropped: the global cap is spent
    assert call.state != "ended"
