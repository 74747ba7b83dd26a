"""UA-wide policy of firmware/sip/useragent.py, fed literal datagrams with a fake clock."""

from firmware.session.routing import next_hop
from firmware.settings import SipConfig
from firmware.sip.call import CallManager
from firmware.sip.endpoint import MessageRejected, Peer
from firmware.sip.message import NameAddress, parse
from firmware.sip.useragent import UASettings, UserAgent

PHONE = Peer("udp", "127.0.0.1", 5062)
REGISTRAR = Peer("udp", "127.0.0.1", 5070)


def make_ua(registrar=None, with_calls=True):
    ua = UserAgent({"host": "127.0.0.1", "port": 5060, "transport": "udp", "username": "door",
                    "domain": "example.org", "password": "secret", "registrar": registrar})
    if with_calls:
        CallManager(ua)
    return ua


def request_text(method, via_branch="z9hG4bKua1", to_tag=None, extra=()):
    to = "<sip:door@127.0.0.1>" + (";tag=" + to_tag if to_tag else "")
    lines = ["%s sip:door@127.0.0.1:5060 SIP/2.0" % method,
             "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=%s;rport" % via_branch,
             "Max-Forwards: 70", "From: <sip:flat@127.0.0.1>;tag=ft", "To: " + to,
             "Call-ID: ua1@phone", "CSeq: 7 %s" % method] + list(extra)
    return ("\r\n".join(lines + ["Content-Length: 0"]) + "\r\n\r\n").encode()


def answers(ua):
    return [(parse(data), peer) for data, peer in ua.datagrams_to_send()]


def events(ua):
    found = []
    while True:
        event = ua.next_event()
        if event is None:
            return found
        found.append(event)


def only_answer(ua):
    sent = answers(ua)
    assert len(sent) == 1, sent
    response, peer = sent[0]
    assert peer == PHONE
    return response


def test_options_is_answered_with_capabilities():
    ua = make_ua()
    ua.receive(request_text("OPTIONS"), PHONE, 0.0)
    response = only_answer(ua)
    assert response.status == 200
    assert "INVITE" in response.headers.get_all("Allow")
    assert "BYE" in response.headers.get_all("Allow")
    assert "application/sdp" in response.headers.get_all("Accept")
    assert "timer" in response.headers.get_all("Supported")
    assert NameAddress.parse(response.headers.get("To")).tag


def test_register_is_refused_405_and_logged():
    ua = make_ua()
    ua.receive(request_text("REGISTER"), PHONE, 0.0)
    response = only_answer(ua)
    assert response.status == 405 and "INVITE" in response.headers.get_all("Allow")
    [event] = events(ua)
    assert isinstance(event, MessageRejected) and event.source == PHONE


def test_unknown_method_gets_501():
    ua = make_ua()
    ua.receive(request_text("PUBLISH"), PHONE, 0.0)
    assert only_answer(ua).status == 501


def test_bye_outside_any_dialog_gets_481():
    ua = make_ua()
    ua.receive(request_text("BYE", to_tag="nope"), PHONE, 0.0)
    assert only_answer(ua).status == 481


def test_stray_ack_is_absorbed():
    ua = make_ua()
    ua.receive(request_text("ACK", to_tag="nope"), PHONE, 0.0)
    assert answers(ua) == []


def test_unparseable_request_with_the_needed_headers_gets_a_stateless_400():
    ua = make_ua()
    data = request_text("OPTIONS", extra=("this line is no header",))
    ua.receive(data, PHONE, 0.0)
    response = only_answer(ua)
    assert response.status == 400
    assert response.headers.get("Call-ID") == "ua1@phone"
    assert response.headers.get("CSeq") == "7 OPTIONS"
    assert isinstance(events(ua)[0], MessageRejected)


def test_unparseable_request_without_a_call_id_gets_nothing():
    ua = make_ua()
    data = request_text("OPTIONS", extra=("this line is no header",))
    data = data.replace(b"Call-ID: ua1@phone\r\n", b"")
    ua.receive(data, PHONE, 0.0)
    assert answers(ua) == []


def test_malformed_response_gets_no_answer():
    ua = make_ua()
    ua.receive(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\n"
               b"CSeq: one\r\nContent-Length: 0\r\n\r\n", PHONE, 0.0)
    ua.receive(b"SIP/2.0 2OO OK\r\n\r\n", PHONE, 0.0)
    assert answers(ua) == []
    assert all(isinstance(e, MessageRejected) for e in events(ua))


def test_response_whose_via_is_not_ours_is_dropped():
    ua = make_ua()
    ua.receive(b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKx\r\n"
               b"From: <sip:door@127.0.0.1>;tag=a\r\nTo: <sip:flat@127.0.0.1>;tag=b\r\n"
               b"Call-ID: x@door\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n", PHONE, 0.0)
    assert answers(ua) == []
    [event] = events(ua)
    assert isinstance(event, MessageRejected) and "sent-by" in event.reason


def test_from_registrar_compares_transport_host_and_port():
    ua = make_ua(registrar=REGISTRAR)
    assert ua.from_registrar(Peer("udp", "127.0.0.1", 5070))
    assert not ua.from_registrar(Peer("udp", "127.0.0.1", 5071))
    assert not ua.from_registrar(Peer("tcp", "127.0.0.1", 5070))
    assert not make_ua().from_registrar(REGISTRAR)


def test_requests_outside_a_dialog_route_to_the_registrar():
    """The one next-hop function (firmware/session/routing.py) with the UA's registrar; the UA
    keeps no second one (the call layer sends where it is told)."""
    target = "sip:flat@127.0.0.1:5062"
    assert next_hop(target, make_ua(registrar=REGISTRAR).registrar, "udp") == REGISTRAR
    assert next_hop(target, make_ua().registrar, "udp") == PHONE
    assert not hasattr(UserAgent, "route_for")


def test_without_a_call_layer_invite_gets_481_and_no_100():
    ua = make_ua(with_calls=False)
    ua.receive(request_text("INVITE"), PHONE, 0.0)
    ua.handle_timer(0.0)  # the turn is over: the 481 came within it, no 100 (§17.2.1)
    statuses = [response.status for response, _ in answers(ua)]
    assert statuses == [481]


# -- UASettings: the UA's settings, read once ------------------------------------------------
SIP_SECTION = SipConfig(transport="tcp", username="door", password="secret",
                        display_name="Door", expires=600, registrar="pbx.example.org:5060",
                        domain="", listen="127.0.0.1:5070", tls_ca="")


def test_settings_from_the_config_section_drive_the_register():
    settings = UASettings.from_config(SIP_SECTION, "127.0.0.1", 5070, "example.org",
                                      Peer("tcp", "127.0.0.1", 5060))
    ua = UserAgent(settings)
    assert ua.settings is settings
    assert ua.aor() == "sip:door@example.org"
    assert ua.registrar_uri() == "sip:pbx.example.org:5060;transport=tcp"
    assert ua.contact_uri() == "sip:door@127.0.0.1:5070;transport=tcp"
    ua.start(0.0)
    (data, peer), = ua.datagrams_to_send()
    register = parse(data)
    assert register.method == "REGISTER" and peer == Peer("tcp", "127.0.0.1", 5060)
    assert register.headers.get("Expires") == "600"


def test_settings_from_a_dict_equal_the_same_settings_built_directly():
    built = UASettings("127.0.0.1", 5060, username="", password=None, domain="example.org")
    converted = make_ua(with_calls=False).settings
    for name in UASettings.__slots__:
        if name != "password":
            assert getattr(converted, name) == getattr(built, name), name
    assert built.username == "door" and built.password == ""  # the defaults, applied once


def test_bad_settings_raise_a_clear_error():
    for settings, word in (({"port": 5060}, "host"), ({"host": "127.0.0.1"}, "port"),
                           ({"host": "127.0.0.1", "port": 0}, "port"),
                           ({"host": "127.0.0.1", "port": 5060, "transport": "sctp"},
                            "transport"),
                           ({"host": "127.0.0.1", "port": 5060, "usrname": "x"}, "usrname")):
        try:
            UserAgent(settings)
        except ValueError as exc:
            assert word in str(exc), (settings, exc)
        else:
            raise AssertionError("accepted %r" % (settings,))


def test_settings_repr_never_shows_the_password():
    settings = UASettings("127.0.0.1", 5060, password="hunter2")
    assert "hunter2" not in repr(settings)


# -- what the runtime asks instead of reaching into the endpoint ------------------------------
def test_awaiting_final_responses_follows_the_register_in_flight():
    ua = make_ua(registrar=REGISTRAR)
    assert not ua.awaiting_final_responses()
    ua.start(0.0)
    (data, _), = ua.datagrams_to_send()
    assert ua.awaiting_final_responses()
    ok = parse(data).make_response(200)
    ok.headers.set("Contact", parse(data).headers.get("Contact") + ";expires=600")
    ua.receive(ok.to_bytes(), REGISTRAR, 0.1)
    assert ua.registration.state == "registered"
    assert not ua.awaiting_final_responses()


def test_new_id_comes_from_the_injected_random():
    ua = UserAgent({"host": "127.0.0.1", "port": 5060}, random=lambda n: bytes(range(n)))
    assert ua.new_id() == "000102030405"
