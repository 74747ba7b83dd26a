"""RFC 4475 and RFC 5118 torture messages, plus fuzzing: the parser never crashes.

Every message is fed as one UDP datagram (read in binary), then as a TCP stream in small chunks.
Verdicts come from the vectors' manifest.tsv (see ../shared/vectors/README.md):
* expected=valid: parses, passes check_message(), and parse(msg.to_bytes()) is equivalent.
* expected=invalid: ParseError, or parses and check_message() names the problem (the element
  answers 400/505, or drops a response); with liberal_ok=yes it may also be accepted, as long as
  what we would write back out is clean (RFC 4475 §3.1.2: never forward the bad syntax).
"""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.sip.errors import ParseError
from firmware.sip.message import (
    KEEPALIVE_PING,
    KEEPALIVE_PONG,
    MAX_MESSAGE_SIZE,
    CSeq,
    NameAddress,
    Request,
    Response,
    StreamReader,
    Via,
    check_message,
    parse,
)
from firmware.sip.uri import URI
from tests.conftest import VECTORS


def _manifest(folder):
    path = VECTORS / folder / "manifest.tsv"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    columns = lines[0].split("\t")
    return [dict(zip(columns, line.split("\t"), strict=True), folder=folder) for line in lines[1:]]


ROWS = _manifest("rfc4475") + _manifest("rfc5118")
VALID = [row for row in ROWS if row["expected"] == "valid"]
INVALID = [row for row in ROWS if row["expected"] == "invalid"]


def _data(row):
    return (VECTORS / row["folder"] / row["file"]).read_bytes()


def _ids(rows):
    return [row["file"] for row in rows]


def _canonical(message):
    if isinstance(message, Request):
        start = ("request", message.method, str(message.uri), message.version)
    else:
        start = ("response", message.status, message.reason, message.version)
    fields = sorted((name.lower(), index, value) for index, (name, value)
                    in enumerate(message.headers))
    # Order matters only among fields of one name (§7.3.1): keep it, forget the rest.
    per_name = {}
    for name, _, value in fields:
        per_name.setdefault(name, []).append(value)
    return start, per_name, message.body


def _outcome(data):
    """'rejected', 'flagged' or 'accepted' for one datagram; any other exception fails."""
    try:
        message = parse(data)
    except ParseError as error:
        assert error.reason
        return "rejected", None
    problem = check_message(message)
    return ("flagged" if problem else "accepted"), message


def test_manifests_present():
    assert len([r for r in ROWS if r["folder"] == "rfc4475"]) == 49
    assert len([r for r in ROWS if r["folder"] == "rfc5118"]) == 12


# What the RFC text says about particular messages, beyond "it parses".
VALID_DETAILS = {
    "wsinv.dat": lambda m: (CSeq.parse(m.headers.get("CSeq")).seq == 9
                            and len(m.headers.get_all("Via")) == 3 and len(m.body) == 150),
    "intmeth.dat": lambda m: m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    and NameAddress.parse(m.headers.get("To")).display_name == "BEL:\x07 NUL:\x00 DEL:\x7f",
    "esc01.dat": lambda m: m.uri.user == "sips%3Auser%40example.com"
    and NameAddress.parse(m.headers.get("Contact")).uri.params.get("name") is not None,
    "esc02.dat": lambda m: m.method == "RE%47IST%45R"
    and len(m.headers.get_all("Contact")) == 2 and m.headers.get("C%6Fntact") is not None,
    "lwsdisp.dat": lambda m: NameAddress.parse(m.headers.get("From")).display_name == "caller",
    "longreq.dat": lambda m: len(m.headers.get_all("Via")) == 34,
    "dblreq.dat": lambda m: m.method == "REGISTER" and m.body == b"",
    "semiuri.dat": lambda m: m.uri.user == "user;par=u%40example.net" and not m.uri.params,
    "transports.dat": lambda m: [Via.parse(v).transport for v in m.headers.get_all("Via")]
    == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"],
    "mpart01.dat": lambda m: len(m.body) == 553 and b"\x00" in m.body,
    "unreason.dat": lambda m: m.status == 200 and "\u043f\u0440\u043e\u0441\u0442" in m.reason,
    "noreason.dat": lambda m: m.status == 100 and m.reason == "",
    "unkscm.dat": lambda m: m.uri.scheme == "nobodyknowsthisscheme",
    "unksm2.dat": lambda m: NameAddress.parse(m.headers.get("To")).uri.scheme == "isbn",
    "cparam01.dat": lambda m: list(NameAddress.parse(m.headers.get("Contact")).params.items())
    == [("unknownparam", None)],
    "cparam02.dat": lambda m: list(NameAddress.parse(m.headers.get("Contact")).uri.params.items())
    == [("unknownparam", None)],
    "regescrt.dat": lambda m: list(NameAddress.parse(m.headers.get("Contact")).uri.headers.items())
    == [("Route", "%3Csip:sip.example.com%3E")],
    "inv2543.dat": lambda m: Via.parse(m.headers.get("Via")).branch is None and len(m.body) > 0,
    "zeromf.dat": lambda m: m.headers.get("Max-Forwards") == "0",
    "ipv6-good.dat": lambda m: m.uri.host == "[2001:db8::10]",
    "port-ambiguous.dat": lambda m: (m.uri.host, m.uri.port) == ("[2001:db8::10:5070]", None),
    "port-unambiguous.dat": lambda m: (m.uri.host, m.uri.port) == ("[2001:db8::10]", 5070),
    "via-received-param-with-delim.dat": lambda m: Via.parse(m.headers.get("Via"))
    .params["received"] == "[2001:db8::9:255]",
    "via-received-param-no-delim.dat": lambda m: Via.parse(m.headers.get("Via"))
    .params["received"] == "2001:db8::9:255",
    "mult-ip-in-header.dat": lambda m: [Via.parse(v).host for v in m.headers.get_all("Via")]
    == ["[2001:db8::9:1]", "192.0.2.1", "[2001:db8::9:255]"],
    "ipv6-correct-abnf-2-colons.dat": lambda m: m.uri.host == "[2001:db8::192.0.2.1]",
}


@pytest.mark.parametrize("row", VALID, ids=_ids(VALID))
def test_valid_message(row):
    message = parse(_data(row))
    assert check_message(message) is None
    again = parse(message.to_bytes())
    assert _canonical(again) == _canonical(message)
    if isinstance(message, Request):
        assert again.uri == message.uri
    detail = VALID_DETAILS.get(row["file"])
    assert detail is None or detail(message)


@pytest.mark.parametrize("row", INVALID, ids=_ids(INVALID))
def test_invalid_message(row):
    outcome, message = _outcome(_data(row))
    if outcome == "accepted":
        assert row["liberal_ok"] == "yes", row["file"] + " accepted without a problem"
        # Accepted liberally: what we would send on is well-formed.
        clean = message.to_bytes()
        start_line = clean.split(b"\r\n", 1)[0].split(b" ")
        assert len(start_line) == 3 and all(start_line)
        assert _outcome(clean)[0] == "accepted"


def test_specific_verdicts():
    """Where the RFCs leave no choice about the layer that catches the problem."""
    by_file = {row["file"]: row for row in ROWS}
    for name in ("clerr.dat", "ncl.dat", "mcl01.dat", "bigcode.dat", "lwsruri.dat",
                 "baddn.dat", "ipv6-bad.dat"):
        assert _outcome(_data(by_file[name]))[0] == "rejected", name
    expected_problems = {
        "badvers.dat": "Version Not Supported",
        "mismatch01.dat": "CSeq method does not match the request",
        "mismatch02.dat": "CSeq method does not match the request",
        "insuf.dat": "Missing To header",
        "escruri.dat": "Headers not allowed in the Request-URI",
        "baddate.dat": "Bad Date",
    }
    for name, problem in expected_problems.items():
        assert check_message(parse(_data(by_file[name]))) == problem, name
    for name in ("badinv01.dat", "scalar02.dat", "scalarlg.dat", "quotbal.dat", "multi01.dat",
                 "regbadct.dat", "badaspec.dat"):
        assert _outcome(_data(by_file[name]))[0] == "flagged", name


def test_summary(capsys):
    counts = {"valid parsed": 0, "valid total": len(VALID), "invalid rejected (ParseError)": 0,
              "invalid flagged (check_message)": 0, "invalid accepted liberally": 0,
              "invalid total": len(INVALID)}
    for row in VALID:
        counts["valid parsed"] += _outcome(_data(row))[0] == "accepted"
    for row in INVALID:
        outcome = _outcome(_data(row))[0]
        key = {"rejected": "invalid rejected (ParseError)",
               "flagged": "invalid flagged (check_message)"}.get(outcome,
                                                                 "invalid accepted liberally")
        counts[key] += 1
    with capsys.disabled():
        print("\nRFC 4475/5118 torture summary: " +
              ", ".join(name + " " + str(count) for name, count in counts.items()))
    assert counts["valid parsed"] == counts["valid total"]
    assert counts["invalid accepted liberally"] <= len([r for r in INVALID
                                                        if r["liberal_ok"] == "yes"])


def _feed_in_chunks(reader, data, size):
    out = []
    for index in range(0, len(data), size):
        out.extend(reader.feed(data[index : index + size]))
    return out


@pytest.mark.parametrize("row", ROWS, ids=_ids(ROWS))
def test_stream_framing(row):
    data = _data(row)
    reader = StreamReader()
    out = _feed_in_chunks(reader, data, 11)
    for item in out:
        assert isinstance(item, (Request, Response, ParseError)) or item in (KEEPALIVE_PING,
                                                                           KEEPALIVE_PONG)
    assert reader.pending <= MAX_MESSAGE_SIZE
    try:
        datagram = parse(data)
    except ParseError:
        datagram = None
    if out and isinstance(out[0], (Request, Response)) and datagram is not None:
        assert _canonical(out[0]) == _canonical(datagram)
    if row["file"] in ("clerr.dat", "baddn.dat"):
        # A stream waits for the rest of the message (RFC 4475 §3.1.2.2) but not forever:
        # the reader holds at most MAX_MESSAGE_SIZE bytes, then gives up on the connection.
        assert out == [] and reader.pending == len(data)
        out = reader.feed(b"x" * MAX_MESSAGE_SIZE) + reader.feed(b"x" * MAX_MESSAGE_SIZE)
        assert isinstance(out[-1], ParseError) and reader.broken and reader.pending == 0
    if row["file"] == "inv2543.dat":  # no Content-Length: framing impossible on a stream
        assert isinstance(out[0], ParseError) and reader.broken


EXTRA = VECTORS / "rfc4475" / "extra" / "test.dat"  # in the RFC archive, no verdict
VECTOR_BYTES = [_data(row) for row in ROWS] + ([EXTRA.read_bytes()] if EXTRA.is_file() else [])


def test_extra_archive_message_does_not_crash():
    _must_not_crash(EXTRA.read_bytes())
    StreamReader().feed(EXTRA.read_bytes())
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _must_not_crash(data):
    try:
        message = parse(data)
    except ParseError:
        return
    check_message(message)
    # Whatever we accept, we can write and read back to the same thing.
    assert _canonical(parse(message.to_bytes())) == _canonical(message)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data):
    _must_not_crash(data)
    _must_not_crash(b"OPTIONS sip:a@b SIP/2.0\r\n" + data)
    _must_not_crash(b"SIP/2.0 200 OK\r\nVia: " + data)
    StreamReader().feed(data)


@FUZZ
@given(
    st.sampled_from(range(len(VECTOR_BYTES)) if VECTOR_BYTES else [None]),
    st.lists(st.tuples(st.integers(0, 4000), st.sampled_from(["flip", "insert", "delete", "cut"]),
                       st.binary(min_size=1, max_size=4)), min_size=1, max_size=6),
)
def test_mutated_vectors(index, mutations):
    if index is None:
        pytest.skip("vectors missing")
    data = bytearray(VECTOR_BYTES[index])
    for position, kind, chunk in mutations:
        position %= len(data) + 1
        if kind == "flip" and position < len(data):
            data[position] ^= chunk[0] or 1
        elif kind == "insert":
            data[position:position] = chunk
        elif kind == "delete":
            del data[position : position + len(chunk)]
        elif kind == "cut":
            del data[position:]
    _must_not_crash(bytes(data))
    reader = StreamReader()
    _feed_in_chunks(reader, bytes(data), 5)
    assert reader.pending <= MAX_MESSAGE_SIZE


@FUZZ
@given(st.text(max_size=80))
def test_value_parsers_only_raise_parse_error(text):
    for parser in (URI.parse, Via.parse, NameAddress.parse, CSeq.parse):
        try:
            parser(text)
        except ParseError:
            pass
    for prefix in ("sip:", "sips:u@", "tel:+1", "<sip:a@b>;", "SIP/2.0/UDP h;"):
        for parser in (URI.parse, NameAddress.parse, Via.parse):
            try:
                parsed = parser(prefix + text)
            except ParseError:
                continue
            assert str(parsed) and parser(str(parsed)) is not None
