"""URI parsing, serialising and comparison (RFC 3261 §19.1, RFC 3966, RFC 5118)."""

import pytest

from firmware.sip.errors import ParseError
from firmware.sip.uri import URI, split_host_port


def test_sip_uri_parts():
    uri = URI.parse("sip:alice:secret@Atlanta.example.com:5070;transport=TCP;lr?Subject=hi&P=x")
    assert uri.scheme == "sip"
    assert uri.user == "alice"
    assert uri.password == "secret"
    assert uri.host == "Atlanta.example.com"
    assert uri.port == 5070
    assert list(uri.params.items()) == [("transport", "TCP"), ("lr", None)]
    assert list(uri.headers.items()) == [("Subject", "hi"), ("P", "x")]
    assert uri.transport == "tcp"


def test_scheme_and_param_names_lower_case():
    uri = URI.parse("SIPS:bob@example.com;Transport=tls;MAddr=239.255.255.1")
    assert uri.scheme == "sips"
    assert list(uri.params.items()) == [("transport", "tls"), ("maddr", "239.255.255.1")]


def test_without_user():
    uri = URI.parse("sip:example.com")
    assert uri.user is None and uri.host == "example.com" and uri.port is None
    assert str(uri) == "sip:example.com"


@pytest.mark.parametrize(
    "text",
    [
        "sip:alice@example.com",
        "sips:alice:pw@example.com:5061;transport=tls",
        "sip:[2001:db8::10]:5070;lr",
        "sip:user;par=u%40example.net@example.com",
        "sip:example.com;maddr=[::1]?h=%20v&k=",
        "tel:+1-201-555-0123;ext=1234",
        "tel:7042;phone-context=example.com",
        "urn:service:sos",
        "http://www.example.com/a?b",
    ],
)
def test_round_trip(text):
    uri = URI.parse(text)
    assert str(uri) == text
    assert URI.parse(str(uri)) == uri


def test_ipv6_references():
    assert URI.parse("sip:[2001:db8::10]").host == "[2001:db8::10]"
    # RFC 5118 §4.3: inside brackets 5070 is part of the address, not a port.
    ambiguous = URI.parse("sip:[2001:db8::10:5070]")
    assert ambiguous.host == "[2001:db8::10:5070]" and ambiguous.port is None
    unambiguous = URI.parse("sip:[2001:db8::10]:5070")
    assert unambiguous.host == "[2001:db8::10]" and unambiguous.port == 5070
    assert URI.parse("sip:u@[::ffff:192.0.2.2]").host == "[::ffff:192.0.2.2]"
    assert URI.parse("sip:[1:2:3:4:5:6:7:8]").host == "[1:2:3:4:5:6:7:8]"


@pytest.mark.parametrize(
    "text",
    [
        "sip:user@2001:db8::10",  # RFC 5118 §4.2: no brackets
        "sip:[2001:db8:::192.0.2.1]",  # RFC 5118 §4.10: three colons
        "sip:[1:2:3:4:5:6:7:8:9]",
        "sip:[12345::1]",
        "sip:[::1",
        "sip:[::1]x",
        "sip:[1.2.3.4::]",
        "sip:256.1.1.1",
        "sip:host:99999",
        "sip:host:",
        "sip:host:12a",
        "sip:",
        "sip:@host",
        "sip:user@",
        "sip:us er@host",
        "sip:user@host;;lr",
        "sip:user@host;lr;lr",
        "sip:user@host?",
        "sip:user@host?novalue",
        "sip:user%4@host",
        "sip:user%zz@host",
        "sip:-host-",
        "sip:a..b",
        "<sip:user@host>",
        "sip:user@host>",
        "1sip:host",
        "noscheme",
        ":nothing",
        "tel:+",
        "tel:12345",  # local number without phone-context (RFC 3966 §5.1.5)
        "tel:+12x",
        "other:has space",
        "",
    ],
)
def test_garbage_rejected(text):
    with pytest.raises(ParseError):
        URI.parse(text)


def test_non_text_rejected():
    with pytest.raises(ParseError):
        URI.parse(b"sip:host")


def test_escapes_kept_as_written_and_param_names_decoded():
    uri = URI.parse("sip:cal%6Cer@host5.example.net;%6C%72;n%61me=v%61lue%25%34%31")
    assert uri.user == "cal%6Cer"
    assert list(uri.params.items()) == [("lr", None), ("name", "v%61lue%25%34%31")]
    assert uri == URI.parse("sip:caller@host5.example.net;lr;name=value%2541")


def test_escaped_null_user():
    uri = URI.parse("sip:null-%00-null@example.com")
    assert uri.user == "null-%00-null"
    assert uri != URI.parse("sip:null--null@example.com")


def test_weird_but_valid_user_and_password():
    text = ("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too."
            "(doesn't-it)@example.com")
    uri = URI.parse(text)
    assert uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert uri.host == "example.com"
    assert str(uri) == text


# RFC 3261 §19.1.4 examples.
@pytest.mark.parametrize(
    "left, right",
    [
        ("sip:%61lice@atlanta.com;transport=TCP", "sip:alice@AtLanTa.CoM;Transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;newparam=5"),
        ("sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
         "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com"),
        ("sip:alice@atlanta.com?subject=project%20x&priority=urgent",
         "sip:alice@atlanta.com?priority=urgent&subject=project%20x"),
        ("tel:+1-201-555-0123", "tel:+1.201.555.0123"),
        ("tel:7042;phone-context=Example.com", "tel:7042;phone-context=example.com"),
    ],
)
def test_equivalent(left, right):
    assert URI.parse(left) == URI.parse(right)
    assert hash(URI.parse(left)) == hash(URI.parse(right))


@pytest.mark.parametrize(
    "left, right",
    [
        ("SIP:ALICE@AtLanTa.CoM;Transport=udp", "sip:alice@AtLanTa.CoM;Transport=UDP"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
        ("sip:bob@biloxi.com", "sip:bob@biloxi.com:6000;transport=tcp"),
        ("sip:carol@chicago.com", "sip:carol@chicago.com?Subject=next%20meeting"),
        ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
        ("sip:carol@chicago.com;security=on", "sip:carol@chicago.com;security=off"),
        ("sip:alice@atlanta.com", "sips:alice@atlanta.com"),
        ("sip:alice:a@atlanta.com", "sip:alice:b@atlanta.com"),
        ("sip:a%3Bb@host", "sip:a;b@host"),  # an escaped reserved character stays distinct
        ("tel:+1-201-555-0123", "tel:+1-201-555-0123;ext=1"),
        ("urn:a", "urn:b"),
    ],
)
def test_not_equivalent(left, right):
    assert URI.parse(left) != URI.parse(right)
    assert not URI.parse(left) == URI.parse(right)


def test_compare_with_other_type():
    assert URI.parse("sip:host") != "sip:host"


def test_build_and_copy():
    uri = URI("sip", "door", "127.0.0.1", 5060, {"transport": "tcp"})
    assert str(uri) == "sip:door@127.0.0.1:5060;transport=tcp"
    copy = uri.copy()
    copy.params["lr"] = None
    assert "lr" not in uri.params
    assert str(URI("tel", "+4930123")) == "tel:+4930123"


def test_split_host_port():
    assert split_host_port("example.com") == ("example.com", None)
    assert split_host_port("192.0.2.1:5060") == ("192.0.2.1", 5060)
    assert split_host_port("[::1]:5061") == ("[::1]", 5061)
    for bad in ("[::1", "a:b", "::1", "host:", "[::1]5060"):
        with pytest.raises(ParseError):
            split_host_port(bad)
