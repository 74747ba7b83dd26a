"""Digest authentication: shared known answers, challenge parsing, header building."""

import hashlib
import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware.sip import digest
from firmware.sip.errors import ParseError
from tests.conftest import VECTORS

VECTOR_FILE = VECTORS / "digest" / "digest_vectors.json"


def load_entries():
    if not VECTOR_FILE.is_file():
        return []
    return json.loads(VECTOR_FILE.read_text(encoding="utf-8"))["entries"]


ENTRIES = load_entries()


def credentials_fields(header_value):
    """The parameters of an Authorization value, read back with the challenge parser."""
    assert header_value.startswith("Digest ")
    return digest.parse_challenges([header_value])[0].params


def challenge_text(entry):
    fields = [f'realm="{entry["realm"]}"', f'nonce="{entry["nonce"]}"',
              f'algorithm={entry["algorithm"]}']
    if entry["qop"]:
        fields.append(f'qop="{entry["qop"]}"')
    if entry.get("opaque"):
        fields.append(f'opaque="{entry["opaque"]}"')
    return "Digest " + ", ".join(fields)


def skip_unless_supported(entry):
    """MicroPython's hashlib has MD5 and SHA-256 only: its vectors for SHA-512-256 are skipped
    (CPython runs them all)."""
    algorithm = entry["algorithm"].upper()
    if algorithm.endswith("-SESS"):
        algorithm = algorithm[:-5]
    if algorithm not in digest.supported_algorithms():
        pytest.skip(algorithm + " not in this interpreter's hashlib")


def test_vectors_present():
    assert len(ENTRIES) >= 7, f"digest vectors missing at {VECTOR_FILE}"


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_compute_response_matches_known_answer(entry):
    skip_unless_supported(entry)
    response = digest.compute_response(
        entry["algorithm"], entry["username"], entry["realm"], entry["password"],
        entry["method"], entry["uri"], entry["nonce"], entry["nc"], entry["cnonce"],
        entry["qop"])
    assert response == entry["expected_response"]


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["id"] for e in ENTRIES])
def test_authorization_header_answers_challenge_built_from_vector(entry):
    skip_unless_supported(entry)
    challenge = digest.Challenge.parse(challenge_text(entry))
    nc = int(entry["nc"], 16) if entry["nc"] else 1
    value = digest.authorization_header(challenge, entry["method"], entry["uri"],
                                        entry["username"], entry["password"],
                                        entry["cnonce"] or "unused", nc)
    fields = credentials_fields(value)
    assert fields["response"] == entry["expected_response"]
    assert fields["username"] == entry["username"]
    assert fields["realm"] == entry["realm"]
    assert fields["nonce"] == entry["nonce"]
    assert fields["uri"] == entry["uri"]
    assert fields["algorithm"] == entry["algorithm"]
    assert fields.get("opaque") == entry.get("opaque")
    if entry["qop"]:
        assert fields["qop"] == "auth"
        assert fields["nc"] == entry["nc"]
        assert fields["cnonce"] == entry["cnonce"]
    else:  # RFC 2069 form: cnonce and nc must not be sent without qop (RFC 2617 3.2.2)
        assert "qop" not in fields and "nc" not in fields and "cnonce" not in fields


def test_userhash_hides_the_username():
    entry = next(e for e in ENTRIES if e.get("userhash"))
    skip_unless_supported(entry)
    challenge = digest.Challenge.parse(challenge_text(entry) + ", userhash=true")
    value = digest.authorization_header(challenge, entry["method"], entry["uri"],
                                        entry["username"], entry["password"],
                                        entry["cnonce"], 1)
    fields = credentials_fields(value)
    assert fields["username"] == entry["expected_userhash"]
    assert fields["userhash"] == "true"
    assert fields["response"] == entry["expected_response"]


def test_parse_challenge_fields_quotes_and_case():
    challenge = digest.Challenge.parse(
        'digest REALM="door \\"A\\", lobby", Nonce="n=1,2", algorithm=sha-256,'
        ' qop="auth, auth-int", opaque="op", stale=TRUE, domain="sip:example.org"')
    assert challenge.realm == 'door "A", lobby'
    assert challenge.nonce == "n=1,2"
    assert challenge.algorithm == "sha-256"
    assert challenge.qop == ["auth", "auth-int"]
    assert challenge.opaque == "op"
    assert challenge.stale is True
    assert challenge.params["domain"] == "sip:example.org"
    assert challenge.supported


def test_parse_challenge_defaults():
    challenge = digest.Challenge.parse('Digest realm="r", nonce="n"')
    assert challenge.algorithm == "MD5"
    assert challenge.qop == []
    assert challenge.opaque is None
    assert challenge.stale is False
    assert challenge.chosen_qop is None


@pytest.mark.parametrize("value", [
    'Basic realm="r"',
    'Digest realm="r"',
    'Digest nonce="n"',
    'Digest realm="r, nonce="n"',
    'realm="r", nonce="n"',
    '',
    'Digest realm="a", nonce="b", Digest realm="c", nonce="d"',
])
def test_parse_challenge_rejects(value):
    with pytest.raises(ParseError):
        digest.Challenge.parse(value)


def test_several_challenges_in_one_value_and_other_schemes_skipped():
    challenges = digest.parse_challenges([
        'Basic realm="x", Digest realm="a", nonce="1", algorithm=MD5, '
        'Digest realm="a", nonce="2", algorithm=SHA-256',
        'Digest realm="a", nonce="3"'])
    assert [c.nonce for c in challenges] == ["1", "2", "3"]


@pytest.mark.parametrize("order", [("MD5", "SHA-256"), ("SHA-256", "MD5")])
def test_strongest_supported_challenge_is_chosen(order):
    challenges = digest.parse_challenges(
        [f'Digest realm="a", nonce="{name}", algorithm={name}, qop="auth"' for name in order]
        + ['Digest realm="a", nonce="future", algorithm=SHA-3-512, qop="auth"'])
    assert digest.choose_challenge(challenges).algorithm == "SHA-256"


def test_sha512_256_preferred_when_available():
    challenges = digest.parse_challenges([
        'Digest realm="a", nonce="1", algorithm=SHA-256',
        'Digest realm="a", nonce="2", algorithm=SHA-512-256'])
    chosen = digest.choose_challenge(challenges)
    if "SHA-512-256" in digest.supported_algorithms():
        assert chosen.algorithm == "SHA-512-256"
    else:
        assert chosen.algorithm == "SHA-256"


def test_nothing_supported():
    challenges = digest.parse_challenges([
        'Digest realm="a", nonce="1", algorithm=SHA-3-512',
        'Digest realm="a", nonce="2", qop="auth-conf"'])
    assert not any(c.supported for c in challenges)
    assert digest.choose_challenge(challenges) is None
    with pytest.raises(ValueError):
        digest.authorization_header(challenges[1], "REGISTER", "sip:a", "u", "p", "c", 1)


def hex_of(name, text):
    data = text if isinstance(text, bytes) else text.encode()
    return getattr(hashlib, name)(data).digest().hex()  # MicroPython: no new()/hexdigest()


def test_md5_sess_with_qop_auth_written_out_by_hand():
    challenge = digest.Challenge.parse(
        'Digest realm="biloxi.com", nonce="abc", algorithm=MD5-sess, qop="auth"')
    value = digest.authorization_header(challenge, "REGISTER", "sip:biloxi.com", "bob",
                                        "zanzibar", "c0ffee", 255)
    ha1 = hex_of("md5", hex_of("md5", "bob:biloxi.com:zanzibar") + ":abc:c0ffee")
    ha2 = hex_of("md5", "REGISTER:sip:biloxi.com")
    expected = hex_of("md5", f"{ha1}:abc:000000ff:c0ffee:auth:{ha2}")
    fields = credentials_fields(value)
    assert fields["response"] == expected
    assert fields["nc"] == "000000ff"
    assert fields["algorithm"] == "MD5-sess"


def test_sha256_auth_int_hashes_the_body():
    challenge = digest.Challenge.parse(
        'Digest realm="r", nonce="n", algorithm=SHA-256, qop="auth-int"')
    body = b"v=0\r\n"
    value = digest.authorization_header(challenge, "INVITE", "sip:door@r", "u", "p", "cn", 2,
                                        body=body)
    ha1 = hex_of("sha256", "u:r:p")
    ha2 = hex_of("sha256", "INVITE:sip:door@r:" + hex_of("sha256", body))
    expected = hex_of("sha256", f"{ha1}:n:00000002:cn:auth-int:{ha2}")
    fields = credentials_fields(value)
    assert fields["qop"] == "auth-int"
    assert fields["response"] == expected
    other_body = digest.authorization_header(challenge, "INVITE", "sip:door@r", "u", "p", "cn",
                                             2, body=b"v=1\r\n")
    assert credentials_fields(other_body)["response"] != expected


def test_auth_preferred_over_auth_int():
    challenge = digest.Challenge.parse('Digest realm="r", nonce="n", qop="auth-int,auth"')
    assert challenge.chosen_qop == "auth"


def test_quotes_in_username_are_escaped():
    challenge = digest.Challenge.parse('Digest realm="r", nonce="n"')
    value = digest.authorization_header(challenge, "REGISTER", "sip:r", 'd"o\\r', "p", "c", 1)
    assert credentials_fields(value)["username"] == 'd"o\\r'


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='Digest realm nonce="\\,= \tqopaMD5-', max_size=80))
def test_parse_never_fails_other_than_parse_error(text):
    try:
        challenges = digest.parse_challenges([text])
    except ParseError:
        return
    for challenge in challenges:
        assert isinstance(challenge.realm, str) and isinstance(challenge.nonce, str)


def _modules_after(code):
    """sys.modules of a fresh interpreter (`-S`, as the service runs) after `code`."""
    import pathlib
    import subprocess
    script = ("import sys\nfrom firmware.sip import digest\n" + code +
              "\nprint(' '.join(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True,
                            timeout=30, cwd=str(pathlib.Path(__file__).resolve().parents[2]))
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


CHALLENGE_OF = 'digest.Challenge.parse(\'Digest realm="r", nonce="n", qop="auth", algorithm=%s\')'


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's built-in hashes")
def test_md5_and_sha256_answers_do_not_load_hashlib():
    # issue 14: hashlib loads OpenSSL's libcrypto (~3.7 MB RSS); MD5 and SHA-256 do without it
    code = "\n".join(
        "digest.authorization_header(%s, 'REGISTER', 'sip:r', 'u', 'p', 'c', 1)"
        % (CHALLENGE_OF % algorithm) for algorithm in ("MD5", "SHA-256", "MD5-sess"))
    modules = _modules_after(code)
    assert "firmware.sip.digest" in modules
    assert "hashlib" not in modules and "_hashlib" not in modules


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="CPython's built-in hashes")
def test_sha512_256_loads_hashlib_when_asked():
    modules = _modules_after("print(%s.supported)" % (CHALLENGE_OF % "SHA-512-256"))
    assert "_hashlib" in modules
