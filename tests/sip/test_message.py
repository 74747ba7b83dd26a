"""Message parsing, serialising, header types and stream framing (RFC 3261 §7, §8.2.6, §20)."""

import sys

import pytest

from firmware.sip.errors import ParseError
from firmware.sip.message import (
    KEEPALIVE_PING,
    KEEPALIVE_PONG,
    MAX_HEADER_LINE,
    MAX_HEADERS,
    MAX_MESSAGE_SIZE,
    CSeq,
    Headers,
    NameAddress,
    Request,
    Response,
    StreamReader,
    Via,
    check_message,
    parse,
)
from firmware.sip.uri import URI

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b'To: "Bob" <sip:bob@biloxi.example.com>\r\n'
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def test_parse_request():
    request = parse(INVITE)
    assert isinstance(request, Request)
    assert request.method == "INVITE"
    assert request.uri == URI.parse("sip:bob@biloxi.example.com")
    assert request.version == "SIP/2.0"
    assert request.headers.get("call-id") == "a84b4c76e66710@pc33.atlanta.example.com"
    assert request.body == b"v=0\n"
    assert "Content-Length" not in request.headers  # framing only; len(body) is the truth
    assert check_message(request) is None


def test_parse_response_and_reason():
    response = parse(b"SIP/2.0 180 Ringing Now\r\nCall-ID: x\r\n\r\n")
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (180, "Ringing Now")
    assert parse(b"SIP/2.0 100 \r\n\r\n").reason == ""
    assert Response(486).reason == "Busy Here"


def test_serialise_round_trip():
    request = parse(INVITE)
    data = request.to_bytes()
    assert data.startswith(b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n")
    assert data.endswith(b"Content-Length: 4\r\n\r\nv=0\n")
    again = parse(data)
    assert list(again.headers) == list(request.headers)
    assert again.body == request.body


def test_compact_forms_and_case_insensitive_names():
    data = (b"OPTIONS sip:a@b SIP/2.0\r\ni: abc\r\nm: <sip:c@d>\r\nf: <sip:a@b>;tag=1\r\n"
            b"t: <sip:a@b>\r\nv: SIP/2.0/UDP h\r\nl: 0\r\nc: text/plain\r\nk: timer\r\n"
            b"s: subject\r\no: dialog\r\nu: presence\r\nr: <sip:x@y>\r\nb: <sip:z@y>\r\n"
            b"x: 90\r\na: *;audio\r\nj: *;video\r\nd: proxy\r\ny: abc\r\nn: <http://x/y>\r\n"
            b"e: gzip\r\ncSeQ: 1 OPTIONS\r\n\r\n")
    headers = parse(data).headers
    names = [name for name, _ in headers]
    assert names == [
        "Call-ID", "Contact", "From", "To", "Via", "Content-Type", "Supported", "Subject",
        "Event", "Allow-Events", "Refer-To", "Referred-By", "Session-Expires",
        "Accept-Contact", "Reject-Contact", "Request-Disposition", "Identity", "Identity-Info",
        "Content-Encoding", "CSeq",
    ]
    assert headers.get("I") == "abc" and headers.get("CALL-ID") == "abc"
    assert "m" in headers and "contact" in headers


def test_unknown_header_name_kept_as_written():
    headers = parse(b"OPTIONS sip:a@b SIP/2.0\r\nX-Weird-NAME: v\r\nq: 1\r\n\r\n").headers
    assert list(headers) == [("X-Weird-NAME", "v"), ("q", "1")]
    assert headers.get("x-weird-name") == "v"


def test_folding():
    data = (b"OPTIONS sip:a@b SIP/2.0\r\nSubject: one\r\n two\r\n\t three\r\n"
            b"TO :\r\n sip:a@b ;\r\n  tag = 1\r\ncseq: 0009\r\n  OPTIONS\r\n\r\n")
    headers = parse(data).headers
    assert headers.get("Subject") == "one two three"
    assert NameAddress.parse(headers.get("To")).tag == "1"
    assert CSeq.parse(headers.get("CSeq")).seq == 9


def test_continuation_before_first_header_rejected():
    with pytest.raises(ParseError):
        parse(b"OPTIONS sip:a@b SIP/2.0\r\n folded\r\n\r\n")


def test_list_headers_split_respecting_quotes_and_brackets():
    data = (b'OPTIONS sip:a@b SIP/2.0\r\n'
            b'Contact: "Bell, A" <sip:a@b;x=1,2>;q=0.5, <sip:c@d>\r\n'
            b'Via: SIP/2.0/UDP a;branch=1 , SIP/2.0/TCP b;branch=2\r\n'
            b'Via: SIP/2.0/UDP c\r\n'
            b'Warning: 370 devnull "a, b", 399 x "c"\r\n'
            b'WWW-Authenticate: Digest realm="r", nonce="n, m"\r\n'
            b'Date: Sat, 13 Nov 2010 23:29:00 GMT\r\n'
            b'Allow: INVITE,ACK , BYE\r\n\r\n')
    headers = parse(data).headers
    assert headers.get_all("Contact") == ['"Bell, A" <sip:a@b;x=1,2>;q=0.5', "<sip:c@d>"]
    assert headers.get_all("Via") == ["SIP/2.0/UDP a;branch=1", "SIP/2.0/TCP b;branch=2",
                                      "SIP/2.0/UDP c"]
    assert headers.get("Via") == "SIP/2.0/UDP a;branch=1"
    assert headers.get_all("Warning") == ['370 devnull "a, b"', '399 x "c"']
    assert headers.get_all("WWW-Authenticate") == ['Digest realm="r", nonce="n, m"']
    assert headers.get_all("Date") == ["Sat, 13 Nov 2010 23:29:00 GMT"]
    assert headers.get_all("Allow") == ["INVITE", "ACK", "BYE"]


def test_headers_api():
    headers = Headers([("Via", "SIP/2.0/UDP a"), ("To", "<sip:a@b>"), ("Via", "SIP/2.0/UDP b")])
    headers.insert("v", "SIP/2.0/UDP top")
    assert headers.get_all("Via") == ["SIP/2.0/UDP top", "SIP/2.0/UDP a", "SIP/2.0/UDP b"]
    headers.insert("Route", "<sip:r1>, <sip:r2>")
    assert list(headers)[:2] == [("Route", "<sip:r1>"), ("Route", "<sip:r2>")]
    headers.set("VIA", "SIP/2.0/TCP only")
    assert headers.get_all("Via") == ["SIP/2.0/TCP only"]
    assert [name for name, _ in headers] == ["Route", "Route", "Via", "To"]
    headers.set("Expires", "60")
    assert list(headers)[-1] == ("Expires", "60")
    headers.remove("route")
    assert "Route" not in headers and len(headers) == 3
    assert headers.get("Missing", "x") == "x" and headers.get_all("Missing") == []
    copy = headers.copy()
    copy.add("Allow", "INVITE")
    assert "Allow" not in headers
    with pytest.raises(ParseError):
        headers.add("Subject", "a\r\nInjected: yes")
    assert Headers({"To": "<sip:a@b>"}).get("to") == "<sip:a@b>"


def test_bytes_writes_one_correct_content_length():
    request = Request("MESSAGE", "sip:a@b", [("Content-Length", "999")], b"hello")
    data = request.to_bytes()
    assert data.count(b"Content-Length") == 1
    assert b"Content-Length: 5\r\n\r\nhello" in data
    assert Response(200).to_bytes() == b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="MicroPython ignores __bytes__")
def test_bytes_of_a_message_is_its_serialisation():
    request = Request("MESSAGE", "sip:a@b", [("Subject", "x")], b"hello")
    assert bytes(request) == request.to_bytes()
    assert bytes(Response(404)) == Response(404).to_bytes()


def test_content_length_rules_on_datagrams():
    head = b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n"
    assert parse(head + b"Content-Length: 3\r\n\r\nabcdef").body == b"abc"  # truncated
    assert parse(head + b"\r\nabcdef").body == b"abcdef"  # missing: rest of the datagram
    assert parse(head + b"l: 0\r\n\r\n").body == b""
    for bad in (b"Content-Length: 7\r\n\r\nabc", b"Content-Length: -1\r\n\r\n",
                b"Content-Length: x\r\n\r\n", b"Content-Length: 1\r\nl: 1\r\n\r\na",
                b"Content-Length: 99999999999999999999\r\n\r\n", b"Content-Length: \r\n\r\n"):
        with pytest.raises(ParseError):
            parse(head + bad)


def test_leading_crlf_ignored_and_empty_rejected():
    assert parse(b"\r\n\r\n" + INVITE).method == "INVITE"
    for bad in (b"", b"\r\n", b"\r\n\r\n", b"garbage", b"INVITE sip:a@b SIP/2.0\r\n"):
        with pytest.raises(ParseError):
            parse(bad)


@pytest.mark.parametrize(
    "start_line",
    [
        b"INVITE sip:a@b SIP/2.0 extra", b"INVITE sip:a@b", b"INVITE  SIP/2.0",
        b"INV\xc3\xa9TE sip:a@b SIP/2.0", b"INVITE sip:a@b SIP/2", b"INVITE sip:a@b HTTP/1.1",
        b"INVITE sip:a@b SIP/x.0", b"SIP/2.0 1000 Big", b"SIP/2.0 99 Small",
        b"SIP/2.0 700 Huge", b"SIP/2.0 2OO OK", b"SIP/2.0", b"SIP/a.b 200 OK",
        b"INVITE\tsip:a@b\tSIP/2.0",
    ],
)
def test_bad_start_lines(start_line):
    with pytest.raises(ParseError):
        parse(start_line + b"\r\nCall-ID: x\r\n\r\n")


def test_liberal_request_line_spacing_written_clean():
    request = parse(b"OPTIONS  sip:a@b   SIP/2.0  \r\nCall-ID: x\r\n\r\n")
    assert request.to_bytes().startswith(b"OPTIONS sip:a@b SIP/2.0\r\n")


def test_header_section_must_be_utf8_body_may_be_binary():
    with pytest.raises(ParseError):
        parse(b"OPTIONS sip:a@b SIP/2.0\r\nSubject: \xff\xfe\r\n\r\n")
    message = parse(b"OPTIONS sip:a@b SIP/2.0\r\nSubject: \xd0\xbf\r\n\r\n\x00\xff")
    assert message.headers.get("Subject") == "\u043f"
    assert message.body == b"\x00\xff"


def test_control_characters():
    for bad in (b"Subject: a\x00b", b"Subject: a\rb", b"Subject: a\nb", b"Subject: a\x7fb"):
        with pytest.raises(ParseError):
            parse(b"OPTIONS sip:a@b SIP/2.0\r\n" + bad + b"\r\n\r\n")
    quoted = parse(b'OPTIONS sip:a@b SIP/2.0\r\nTo: "N\\\x00L" <sip:a@b>\r\n\r\n')
    assert NameAddress.parse(quoted.headers.get("To")).display_name == "N\x00L"


def test_bad_header_lines():
    for bad in (b"NoColon", b"Bad Name: x", b": empty", b"Br<ket: x"):
        with pytest.raises(ParseError):
            parse(b"OPTIONS sip:a@b SIP/2.0\r\n" + bad + b"\r\n\r\n")
    padded = parse(b"OPTIONS sip:a@b SIP/2.0\r\nSubject  \t:   x  \r\nS:\r\n\r\n").headers
    assert padded.get_all("Subject") == ["x", ""]


def test_size_limits():
    head = b"OPTIONS sip:a@b SIP/2.0\r\n"
    many = head + b"".join(b"X-H: %d\r\n" % n for n in range(MAX_HEADERS)) + b"\r\n"
    assert len(parse(many).headers) == MAX_HEADERS
    too_many = head + b"X-H: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n"
    with pytest.raises(ParseError):
        parse(too_many)
    with pytest.raises(ParseError):
        parse(head + b"Subject: " + b"a" * (MAX_HEADER_LINE + 1) + b"\r\n\r\n")
    folded_long = b"Subject: a" + b"\r\n b" * (MAX_HEADER_LINE // 2) + b"\r\n\r\n"
    with pytest.raises(ParseError):
        parse(head + folded_long)
    with pytest.raises(ParseError):
        parse(head + b"\r\n" + b"x" * MAX_MESSAGE_SIZE)


def test_via():
    via = Via.parse("SIP  /   2.0 /udp    192.0.2.2 : 5062 ;branch=z9hG4bK1;received=[::1];rport")
    assert (via.protocol, via.transport, via.host, via.port) == ("SIP/2.0", "UDP", "192.0.2.2",
                                                                 5062)
    assert via.branch == "z9hG4bK1"
    assert list(via.params.items()) == [
        ("branch", "z9hG4bK1"), ("received", "[::1]"), ("rport", None)]
    assert str(via) == "SIP/2.0/UDP 192.0.2.2:5062;branch=z9hG4bK1;received=[::1];rport"
    no_delim = Via.parse("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255")
    assert no_delim.host == "[2001:db8::9:1]" and no_delim.params["received"] == "2001:db8::9:255"
    assert Via.parse("SIP/2.0/TLS h").branch is None
    assert str(Via("TCP", "h", params={"branch": "z9hG4bKx"})) == "SIP/2.0/TCP h;branch=z9hG4bKx"
    for bad in ("SIP/2.0/UDP", "SIP/2.0 h", "SIP/2.0/UDP h h2", "SIP/2.0/UDP 192.0.2.15;;",
                ";", "SIP/2.0/UDP h;branch=", "SIP/2.0/UDP h;a=1;a=2", "SIP/2.0/UDP h:x",
                "S P/2.0/UDP h", "SIP/2.0/UDP h;branch=a b"):
        with pytest.raises(ParseError):
            Via.parse(bad)


def test_name_address_forms():
    quoted = NameAddress.parse('"J Rosenberg \\\\\\""  <sip:jdrosen@example.com> ; tag = 98a')
    assert quoted.display_name == 'J Rosenberg \\"'
    assert quoted.uri.user == "jdrosen" and quoted.tag == "98a"
    assert NameAddress.parse(str(quoted)).display_name == quoted.display_name
    tokens = NameAddress.parse("caller<sip:caller@example.com>;tag=323")
    assert tokens.display_name == "caller"
    assert str(tokens) == "caller <sip:caller@example.com>;tag=323"
    assert list(NameAddress.parse("<sip:a@b>;tag").params.items()) == [("tag", None)]
    bare = NameAddress.parse("sip:user@example.com;tag=1;expires=60")
    assert bare.display_name is None and not bare.uri.params
    assert list(bare.params.items()) == [("tag", "1"), ("expires", "60")]
    inner = NameAddress.parse("<sip:+19725552222@gw1.example.net;unknownparam>")
    assert list(inner.uri.params.items()) == [("unknownparam", None)] and not inner.params
    star = NameAddress.parse(" * ")
    assert star.wildcard and str(star) == "*"
    quoted_param = NameAddress.parse('<sip:a@b>;+sip.instance="<urn:uuid:1>"')
    assert quoted_param.params["+sip.instance"] == '"<urn:uuid:1>"'
    other = NameAddress.parse("<http://www.example.com>;tag=3")
    assert other.uri.scheme == "http"
    built = NameAddress(URI.parse("sip:a@b"), 'Door "1"', {"tag": "x"})
    assert str(built) == '"Door \\"1\\"" <sip:a@b>;tag=x'


@pytest.mark.parametrize(
    "text",
    [
        '"Mr. J. User <sip:j.user@example.com>',  # RFC 4475 quotbal
        "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",  # baddn
        '"Watson, Thomas" < sip:t.watson@example.org >',  # badaspec
        "sip:user@example.com?Route=%3Csip:sip.example.com%3E",  # regbadct
        '"Joe" <sip:joe@example.org>;;;;',  # badinv01
        "<sip:a@b",
        "<sip:a@b> junk",
        '"quoted" sip:a@b',
        "<sip:a@b>;tag=1;tag=2",
        "",
        "<>",
    ],
)
def test_name_address_garbage(text):
    with pytest.raises(ParseError):
        NameAddress.parse(text)


def test_cseq():
    cseq = CSeq.parse("0009\r\n INVITE".replace("\r\n", ""))
    assert (cseq.seq, cseq.method) == (9, "INVITE")
    assert str(CSeq(4294967295, "BYE")) == "4294967295 BYE"
    assert CSeq.parse("4294967295 BYE").seq == 4294967295
    for bad in ("4294967296 BYE", "36893488147419103232 REGISTER", "1", "x INVITE",
                "1 INVITE extra", "-1 BYE", "1 IN\"VITE"):
        with pytest.raises(ParseError):
            CSeq.parse(bad)


def test_make_response():
    request = parse(INVITE.replace(b"Max-Forwards: 70\r\n",
                                   b"Via: SIP/2.0/UDP second;branch=z9hG4bK2\r\nTimestamp: 54\r\n"))
    response = request.make_response(180, to_tag="abc")
    assert (response.status, response.reason) == (180, "Ringing")
    assert response.headers.get_all("Via") == request.headers.get_all("Via")
    for name in ("From", "Call-ID", "CSeq"):
        assert response.headers.get(name) == request.headers.get(name)
    assert NameAddress.parse(response.headers.get("To")).tag == "abc"
    assert "Contact" not in response.headers and "Timestamp" not in response.headers
    trying = request.make_response(100)
    assert trying.headers.get("Timestamp") == "54"
    assert NameAddress.parse(trying.headers.get("To")).tag is None
    assert request.make_response(100, to_tag="abc").headers.get("To") == request.headers.get("To")
    tagged = Request("BYE", "sip:a@b", [("To", "<sip:a@b>;tag=old")])
    assert tagged.make_response(200, "Fine", to_tag="new").headers.get("To") == "<sip:a@b>;tag=old"
    assert tagged.make_response(200, "Fine").reason == "Fine"
    broken = Request("INVITE", "sip:a@b", [("To", '"unterminated <sip:a@b>')])
    assert broken.make_response(400, to_tag="t").headers.get("To") == '"unterminated <sip:a@b>'


def _options(**changes):
    headers = {
        "Via": "SIP/2.0/UDP h;branch=z9hG4bK1", "Max-Forwards": "70", "To": "<sip:a@b>",
        "From": "<sip:c@d>;tag=1", "Call-ID": "abc@h", "CSeq": "1 OPTIONS",
    }
    headers.update(changes)
    return Request("OPTIONS", "sip:a@b", [(n, v) for n, v in headers.items() if v is not None])


def test_check_message():
    assert check_message(_options()) is None
    assert check_message(_options(**{"Max-Forwards": None})) is None  # RFC 2543 peers
    assert check_message(_options(**{"Max-Forwards": "0068"})) is None
    for name in ("To", "From", "CSeq", "Call-ID", "Via"):
        assert check_message(_options(**{name: None})) == "Missing " + name + " header"
    assert "CSeq" in check_message(_options(CSeq="1 INVITE"))
    assert check_message(_options(CSeq="99999999999 OPTIONS")).startswith("Bad")
    assert check_message(_options(**{"Max-Forwards": "256"})) == "Bad Max-Forwards"
    assert check_message(_options(Via="SIP/2.0/UDP")).startswith("Bad")
    assert check_message(_options(Contact='"x <sip:a@b>')).startswith("Bad")
    assert check_message(_options(Contact='<sip:a@b>, "x <sip:c@d>, <sip:e@f>')) is not None
    assert check_message(_options(Date="Fri, 01 Jan 2010 16:00:00 EST")) == "Bad Date"
    assert check_message(_options(Date="Fri, 01 Jan 2010 16:00:00 GMT")) is None
    assert check_message(_options(**{"Call-ID": "a b"})) == "Bad Call-ID"
    doubled = _options()
    doubled.headers.add("To", "<sip:x@y>")
    assert check_message(doubled) == "Multiple To headers"
    routed = _options()
    routed.uri = URI.parse("sip:a@b?Route=%3Csip:x%3E")
    assert "Request-URI" in check_message(routed)
    old = _options()
    old.version = "SIP/7.0"
    assert check_message(old) == "Version Not Supported"
    response = _options().make_response(200)
    assert check_message(response) is None
    response.headers.set("CSeq", "1 INVITE")  # a response's CSeq names the request's method
    assert check_message(response) is None
    response.headers.remove("Call-ID")
    assert check_message(response) == "Missing Call-ID header"


def test_stream_reader_frames_messages_in_small_chunks():
    reader = StreamReader()
    stream = b"\r\n\r\n" + INVITE + b"\r\n" + INVITE
    out = []
    for index in range(0, len(stream), 7):
        out.extend(reader.feed(stream[index : index + 7]))
    assert out[0] is KEEPALIVE_PING and out[2] is KEEPALIVE_PONG
    assert [m.method for m in (out[1], out[3])] == ["INVITE", "INVITE"]
    assert out[3].body == b"v=0\n" and reader.pending == 0 and not reader.broken


def test_stream_reader_waits_for_body_and_reports_bad_messages():
    reader = StreamReader()
    assert reader.feed(INVITE[:-2]) == []
    assert reader.pending == len(INVITE) - 2
    bad = b"BAD LINE\r\nContent-Length: 2\r\n\r\nxy"
    out = reader.feed(INVITE[-2:] + bad + b"\r\n")
    assert out[0].method == "INVITE" and isinstance(out[1], ParseError)
    assert out[2] is KEEPALIVE_PONG and not reader.broken


def test_stream_reader_requires_content_length():
    reader = StreamReader()
    out = reader.feed(b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\nOPTIONS")
    assert len(out) == 1 and isinstance(out[0], ParseError)
    assert reader.broken and reader.pending == 0
    assert reader.feed(INVITE) == []


def test_stream_reader_bounded():
    reader = StreamReader()
    out = []
    chunk = b"X-Long: " + b"a" * 1000 + b"\r\n"
    out.extend(reader.feed(b"OPTIONS sip:a@b SIP/2.0\r\n"))
    while not out and reader.pending <= MAX_MESSAGE_SIZE:
        out.extend(reader.feed(chunk))
    assert isinstance(out[0], ParseError) and reader.broken and reader.pending == 0
    huge = StreamReader().feed(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 65536\r\n\r\n")
    assert isinstance(huge[0], ParseError)


def test_keepalive_split_ping_waits():
    reader = StreamReader()
    assert reader.feed(b"\r\n\r") == []
    assert reader.feed(b"\n") == [KEEPALIVE_PING]
