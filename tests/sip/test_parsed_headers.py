"""Header values are parsed once per message (firmware/sip/message.py `top_via`, `cseq`,
`from_address`, `to_address`, `contact_address`), not again at every layer that reads them."""

import pytest

from firmware.sip import message as sipmessage
from firmware.sip.call import CallManager, IncomingCall
from firmware.sip.endpoint import Peer
from firmware.sip.errors import ParseError
from firmware.sip.message import Request, Via, check_message, parse
from firmware.sip.useragent import UserAgent

PHONE = Peer("udp", "127.0.0.1", 5062)
OFFER = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 4000 RTP/AVP 0\r\n")


def request(method, cseq, to_tag=None, branch="z9hG4bKinv1", body=b""):
    to = "<sip:door@127.0.0.1>" + (";tag=" + to_tag if to_tag else "")
    lines = ["%s sip:door@127.0.0.1:5060 SIP/2.0" % method,
             "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=%s;rport" % branch,
             "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKproxy",
             "Max-Forwards: 70", 'From: "Flat" <sip:flat@127.0.0.1>;tag=ft',
             "To: " + to, "Call-ID: c1@phone", "CSeq: %d %s" % (cseq, method),
             "Contact: <sip:flat@127.0.0.1:5062>"]
    if body:
        lines.append("Content-Type: application/sdp")
    head = "\r\n".join(lines + ["Content-Length: %d" % len(body)]) + "\r\n\r\n"
    return head.encode() + body


def test_a_value_is_parsed_once_and_kept():
    message = parse(request("INVITE", 1))
    assert check_message(message) is None
    assert message.top_via() is message.top_via()
    assert message.top_via().branch == "z9hG4bKinv1"
    assert message.cseq() is message.cseq() and message.cseq().seq == 1
    assert message.from_address() is message.from_address()
    assert message.from_address().tag == "ft" and message.to_address().tag is None
    assert str(message.contact_address().uri) == "sip:flat@127.0.0.1:5062"


def test_a_header_set_to_new_text_is_parsed_again():
    message = parse(request("INVITE", 1))
    before = message.to_address()
    message.headers.set("To", "<sip:door@127.0.0.1>;tag=new")
    assert message.to_address() is not before and message.to_address().tag == "new"
    message.headers.set("CSeq", "9 INVITE")
    assert message.cseq().seq == 9


def test_set_top_via_keeps_the_others_and_the_parsed_value():
    message = parse(request("INVITE", 1))
    via = Via.parse(message.headers.get("Via"))
    via.params["received"] = "127.0.0.9"
    message.set_top_via(via)
    assert message.top_via() is via
    assert message.headers.get_all("Via")[0] == str(via)
    assert message.headers.get_all("Via")[1] == "SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bKproxy"


def test_missing_or_bad_values_raise_parse_error():
    built = Request("OPTIONS", "sip:door@127.0.0.1")
    assert built.contact_address() is None
    for read in (built.top_via, built.cseq, built.from_address, built.to_address):
        with pytest.raises(ParseError):
            read()
    built.headers.set("CSeq", "x OPTIONS")
    with pytest.raises(ParseError):
        built.cseq()


def test_an_incoming_call_parses_each_header_once(monkeypatch):
    """One INVITE received through the UA and the call layer: its Via, CSeq, From, To and
    Contact are each parsed once (before: the Via 6 times, CSeq 3, the addresses 10)."""
    counts = {}
    for cls in (sipmessage.Via, sipmessage.NameAddress, sipmessage.CSeq):
        def counted(value, cls=cls, parse_value=cls.parse):
            counts[cls.__name__] = counts.get(cls.__name__, 0) + 1
            return parse_value(value)
        monkeypatch.setattr(cls, "parse", counted)
    ua = UserAgent({"host": "127.0.0.1", "port": 5060, "username": "door",
                    "domain": "example.org"})
    CallManager(ua)
    ua.receive(request("INVITE", 1, body=OFFER), PHONE, 0.0)
    events = []
    while True:
        event = ua.next_event()
        if event is None:
            break
        events.append(event)
    assert [type(e) for e in events] == [IncomingCall]
    # Via: the top one, and the second one checked once; From, To, Contact once each
    assert counts == {"Via": 2, "CSeq": 1, "NameAddress": 3}


# -- across messages: the URIs and addresses a caller repeats (issue 14, the answer path) -----

def test_the_same_uri_and_address_texts_give_the_same_shared_objects():
    from firmware.sip import uri as sipuri

    first, second = parse(request("INVITE", 1)), parse(request("INVITE", 1, branch="z9hG4bKb"))
    for message in (first, second):
        assert check_message(message) is None
    assert first.uri is second.uri  # the Request-URI
    assert first.contact_address() is second.contact_address()
    assert first.to_address() is second.to_address()
    assert first.top_via() is not second.top_via()  # the endpoint writes received/rport in it
    assert sipmessage.NameAddress.parse("<sip:a@b>") is sipmessage.NameAddress.parse("<sip:a@b>")
    assert sipuri.URI.parse("sip:a@b") is sipuri.URI.parse("sip:a@b")


def test_kept_parses_are_bounded_and_errors_and_long_texts_are_not_kept():
    from firmware.sip import uri as sipuri

    for n in range(3 * sipuri.MAX_PARSED):
        sipuri.URI.parse("sip:caller%d@127.0.0.1" % n)
        sipmessage.NameAddress.parse("<sip:caller%d@127.0.0.1>;tag=%d" % (n, n))
        assert len(sipuri._PARSED) <= sipuri.MAX_PARSED
        assert len(sipmessage._ADDRESSES) <= sipmessage.MAX_ADDRESSES
    long_uri = "sip:" + "a" * sipuri.MAX_PARSED_LENGTH + "@127.0.0.1"
    assert sipuri.URI.parse(long_uri) is not sipuri.URI.parse(long_uri)
    for _ in range(2):
        with pytest.raises(ParseError):
            sipuri.URI.parse("sip:bad host@127.0.0.1")
        with pytest.raises(ParseError):
            sipmessage.NameAddress.parse("<sip:flat@127.0.0.1")
    assert "sip:bad host@127.0.0.1" not in sipuri._PARSED
