"""The one-pass parsing of the answer path (issue 14, seventh round): a header section without
folding or control characters, and an SDP with plain line ends, take a shorter way through
firmware/sip/message.py and firmware/sdp/session.py. Each must accept and refuse exactly what
the general way does; and a top Via the endpoint did not change reaches the response as the
caller wrote it (RFC 3261 §8.2.6.2)."""

import pytest

from firmware.sdp.session import SdpParseError, SessionDescription
from firmware.sip.endpoint import Endpoint, Peer, RequestReceived
from firmware.sip.errors import ParseError
from firmware.sip.message import NameAddress, Via, _format_display_name, parse

HEAD = ["INVITE sip:door@127.0.0.1 SIP/2.0",
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-fast",
        "From: Flat One <sip:flat@127.0.0.1>;tag=f1",
        "To: <sip:door@127.0.0.1>",
        "Call-ID: fast@flat",
        "CSeq: 1 INVITE",
        "Contact: <sip:flat@127.0.0.1:5062>, <sip:flat@127.0.0.2:5062>",
        "Supported: timer,100rel",
        "X-Odd-Name : kept",
        "Max-Forwards: 70"]


def datagram(lines, body=""):
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def fields(message):
    return [tuple(field) for field in message.headers._fields]


def test_an_unfolded_section_gives_the_fields_a_folded_one_gives():
    quick = parse(datagram(HEAD))  # no folding: the one-pass way
    folded = HEAD[:-1] + ["Max-Forwards:", " 70"]  # a continuation line: the general way
    general = parse(datagram(folded))
    assert fields(quick) == fields(general)
    assert quick.headers.get_all("Contact") == ["<sip:flat@127.0.0.1:5062>",
                                                "<sip:flat@127.0.0.2:5062>"]
    assert quick.headers.get_all("Supported") == ["timer", "100rel"]
    assert quick.headers.get("x-odd-name") == "kept"


@pytest.mark.parametrize("lines, reason", [
    (HEAD + ["No colon here"], "bad header line"),
    (HEAD + ["Bad Name: x"], "bad header line"),
    (HEAD + ["X-Many: %d" % n for n in range(250)], "too many header fields"),
    (HEAD + ["X-Long: " + "a" * 8200], "header field too long"),
    (HEAD + ["X-Ctl: a\x01b"], "control character in header section"),
    (HEAD + ["X-Ctl: a\rb"], "control character in header section"),
])
def test_the_one_pass_way_refuses_what_the_general_way_refuses(lines, reason):
    with pytest.raises(ParseError) as raised:
        parse(datagram(lines))
    assert raised.value.reason == reason
    with pytest.raises(ParseError) as raised:  # the same with a folded line first
        parse(datagram(lines[:2] + [" ;lr"] + lines[2:]))
    assert raised.value.reason == reason


def test_a_tab_in_a_value_takes_the_general_way_and_is_kept():
    message = parse(datagram(HEAD + ["Subject: a\tb"]))
    assert message.headers.get("Subject") == "a\tb"


@pytest.mark.parametrize("value, reason", [
    ("SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1", None),
    ("SIP / 2.0 / UDP 127.0.0.1 : 5062;branch=z9hG4bK1", None),
    ("SIP/2.0/U@P 127.0.0.1;branch=z9hG4bK1", "bad Via sent-by"),
    ("S(P/2.0/UDP 127.0.0.1;branch=z9hG4bK1", "bad Via sent-protocol"),
    ("SIP//UDP 127.0.0.1;branch=z9hG4bK1", "bad Via sent-protocol"),
    ("SIP/2.0/UDP;branch=z9hG4bK1", "bad Via sent-protocol"),
    ("SIP/2.0/UDP 127.0.0.1 x;branch=z9hG4bK1", "bad Via sent-by"),
    ("SIP/2.0/UDP 127.0.0.1;bra(nch=1", "bad header parameter"),
    ("SIP/2.0/UDP 127.0.0.1;branch=", "bad header parameter value"),
    ("SIP/2.0/UDP 127.0.0.1;branch=\"z9\"", None),
])
def test_via_tokens_checked_at_once_keep_their_reasons(value, reason):
    if reason is None:
        via = Via.parse(value)
        assert via.transport == "UDP" and via.host == "127.0.0.1"
    else:
        with pytest.raises(ParseError) as raised:
            Via.parse(value)
        assert raised.value.reason == reason


@pytest.mark.parametrize("name, written", [
    ("Flat One", "Flat One"), ("Flat  One", '"Flat  One"'), (" Flat", '" Flat"'),
    ("Flat ", '"Flat "'), ("", '""'), ('Fl"at', '"Fl\\"at"'), ("Flat@1", '"Flat@1"'),
    ("Tür", '"Tür"'),
])
def test_display_names_are_quoted_unless_single_spaced_tokens(name, written):
    assert _format_display_name(name) == written


def test_display_name_words_must_be_tokens():
    assert NameAddress.parse("Flat  One <sip:flat@127.0.0.1>").display_name == "Flat One"
    with pytest.raises(ParseError):
        NameAddress.parse("Fl@t <sip:flat@127.0.0.1>")


OFFER = ["v=0", "o=flat 1 2 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
         "m=audio 4000 RTP/AVP 0 101", "a=rtpmap:0 PCMU/8000", "a=sendrecv"]


def sdp_lines(sd):
    return sd.lines()


def test_sdp_with_crlf_lf_or_blank_lines_parses_alike():
    crlf = SessionDescription.parse("\r\n".join(OFFER) + "\r\n")
    lf = SessionDescription.parse("\n".join(OFFER) + "\n\n")
    bare_cr_at_end = SessionDescription.parse("\r\n".join(OFFER) + "\r")  # the general way
    assert sdp_lines(crlf) == sdp_lines(lf) == sdp_lines(bare_cr_at_end) == OFFER


@pytest.mark.parametrize("text, reason", [
    ("\r\n".join(OFFER[:3] + ["c IN IP4 127.0.0.1"] + OFFER[4:]), "not a <type>=<value> line"),
    ("\r\n".join(OFFER[:3] + ["x"] + OFFER[4:]), "not a <type>=<value> line"),
    ("\r\n".join(OFFER) + "\r\na=x\rb\r\n", "not a <type>=<value> line"),
    ("\r\n".join(OFFER) + "\r\na=" + "x" * 5000 + "\r\n", "line too long"),
    ("\r\n".join(OFFER[:5] + ["m=audio 4000 RTP/AVP 0 1@1"]), "bad format"),
    ("\r\n".join(OFFER[:1] + ["o=flat 1 2 I@N IP4 127.0.0.1"] + OFFER[2:]), "bad nettype"),
    ("\r\n".join(OFFER[:3] + ["c=IN I@P4 127.0.0.1"] + OFFER[4:]), "bad addrtype"),
    ("\r\n".join(OFFER + ["a=bad@name"]), "bad attribute name"),
])
def test_sdp_one_pass_refuses_what_the_general_way_refuses(text, reason):
    with pytest.raises(SdpParseError) as raised:
        SessionDescription.parse(text)
    assert raised.value.reason.startswith(reason)


def test_a_top_via_left_unchanged_reaches_the_response_as_written():
    """RFC 3261 §8.2.6.2: the response's Via values equal the request's. A Via the endpoint
    has nothing to add to (sent-by = the source, no rport) is not rewritten in our spelling."""
    via = "SIP/2.0/UDP 127.0.0.1:5062 ;branch=z9hG4bK-as-written"
    endpoint = Endpoint("127.0.0.1", 5060)
    endpoint.receive(datagram(["OPTIONS sip:door@127.0.0.1:5060 SIP/2.0", "Via: " + via]
                              + HEAD[2:5] + ["CSeq: 1 OPTIONS", "Content-Length: 0"]),
                     Peer("udp", "127.0.0.1", 5062), 0.0)
    event = endpoint.next_event()
    assert isinstance(event, RequestReceived)
    assert event.request.make_response(200).headers.get("Via") == via
