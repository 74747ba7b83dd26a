"""G.711 against the ITU-T G.191 STL reference data (strict G.191 convention, not audioop)."""

import struct

import pytest

from firmware.codecs.g711 import CODECS, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ENCODERS = {"ulaw": ulaw_encode, "alaw": alaw_encode}
DECODERS = {"ulaw": ulaw_decode, "alaw": alaw_decode}


def read_table(path, delimiter=","):
    """Rows of a header-first CSV/TSV file without quoting, as dicts (csv is CPython only)."""
    lines = path.read_text().splitlines()
    columns = lines[0].split(delimiter)
    return [dict(zip(columns, line.split(delimiter), strict=True)) for line in lines[1:] if line]


def _every_int16_as_pcm():
    # Not struct.pack("<65536h", *range(...)): MicroPython takes at most 65535 arguments.
    return b"".join(struct.pack("<h", value) for value in range(-32768, 32768))


def test_sweep_source_is_every_int16_in_order(vectors):
    assert (vectors / "g711" / "stl" / "sweep.src").read_bytes() == _every_int16_as_pcm()


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encode_matches_g191_table_for_all_65536_inputs(vectors, law):
    expected = (vectors / "g711" / f"{law}_encode.bin").read_bytes()
    encoded = ENCODERS[law](_every_int16_as_pcm())
    mismatches = [i - 32768 for i in range(65536) if encoded[i] != expected[i]]
    assert mismatches == []


@pytest.mark.parametrize("law, stl_code_file", [("ulaw", "sweep-r.u"), ("alaw", "sweep-r.a")])
def test_encode_matches_stl_sweep(vectors, law, stl_code_file):
    stl = vectors / "g711" / "stl"
    codes = struct.unpack("<65536h", (stl / stl_code_file).read_bytes())
    assert ENCODERS[law]((stl / "sweep.src").read_bytes()) == bytes(codes)


@pytest.mark.parametrize(
    "law, names",
    [("ulaw", ("sweep-r.reu", "sweep-r.u-u")), ("alaw", ("sweep-r.rea", "sweep-r.a-a"))],
)
def test_encode_then_decode_matches_stl_sweeps(vectors, law, names):
    stl = vectors / "g711" / "stl"
    round_trip = DECODERS[law](ENCODERS[law]((stl / "sweep.src").read_bytes()))
    for name in names:
        assert round_trip == (stl / name).read_bytes()


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode_matches_csv_for_all_256_codes(vectors, law):
    table = read_table(vectors / "g711" / f"{law}_decode.csv")
    rows = [(int(row["code"]), int(row["linear16"])) for row in table]
    assert [code for code, _ in rows] == list(range(256))
    decoded = struct.unpack("<256h", DECODERS[law](bytes(range(256))))
    assert list(decoded) == [value for _, value in rows]


def test_ulaw_follows_g191_not_audioop_where_they_differ(vectors):
    rows = read_table(vectors / "g711" / "audioop_ulaw_disagreements.csv")
    assert len(rows) == 508
    inputs = [int(row["input_linear16"]) for row in rows]
    encoded = ulaw_encode(struct.pack(f"<{len(inputs)}h", *inputs))
    assert list(encoded) == [int(row["itu_g191_code"]) for row in rows]
    assert all(int(r["itu_g191_code"]) != int(r["audioop_code"]) for r in rows)


@pytest.mark.parametrize(
    "sample, ulaw, alaw", [(0, 0xFF, 0xD5), (3, 0xFF, 0xD5), (-1, 0x7F, 0x55), (32767, 0x80, 0xAA)]
)
def test_zero_and_extremes(sample, ulaw, alaw):
    pcm = struct.pack("<h", sample)
    assert ulaw_encode(pcm) == bytes([ulaw])
    assert alaw_encode(pcm) == bytes([alaw])


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_decoded_values_encode_back_to_their_code(name):
    # Decoded values are interval midpoints. Only µ-law "negative zero" (0x7F) decodes to 0,
    # which encodes as positive zero (0xFF).
    codec = CODECS[name]
    expected = bytearray(range(256))
    if name == "PCMU":
        expected[0x7F] = 0xFF
    assert codec.encode(codec.decode(bytes(range(256)))) == bytes(expected)


@pytest.mark.parametrize("name", ["PCMU", "PCMA"])
def test_codec_round_trip_error_is_bounded(name):
    codec = CODECS[name]
    samples = list(range(-32768, 32768, 37))
    pcm = struct.pack(f"<{len(samples)}h", *samples)
    back = struct.unpack(f"<{len(samples)}h", codec.decode(codec.encode(pcm)))
    for original, decoded in zip(samples, back, strict=True):
        # Quantisation error stays within half a step plus the dropped low bits: ~3.2 % relative.
        assert abs(original - decoded) <= max(16, abs(original) // 30), (original, decoded)


def test_codec_table():
    pcmu, pcma = CODECS["PCMU"], CODECS["PCMA"]
    assert (pcmu.name, pcmu.payload_type, pcmu.clock_rate) == ("PCMU", 0, 8000)
    assert (pcma.name, pcma.payload_type, pcma.clock_rate) == ("PCMA", 8, 8000)
    assert pcmu.decode(bytes([pcmu.silence]) * 4) == bytes(8)
    assert pcma.decode(bytes([pcma.silence])) == struct.pack("<h", 8)
    assert pcmu.silence == ulaw_encode(bytes(2))[0]
    assert pcma.silence == alaw_encode(bytes(2))[0]


def test_sipp_pcma_capture_decodes_and_reencodes_unchanged(vectors):
    payloads = [p for p in _rtp_payloads((vectors / "g711" / "pcap" / "g711a.pcap").read_bytes())]
    assert len(payloads) == 236
    for payload in payloads:
        assert len(payload) == 240
        assert alaw_encode(alaw_decode(payload)) == payload


def _rtp_payloads(pcap):
    """PT 8 RTP payloads from a little-endian Ethernet/IPv4/UDP libpcap file."""
    offset = 24
    while offset < len(pcap):
        caplen = struct.unpack_from("<I", pcap, offset + 8)[0]
        frame = pcap[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        if frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ip_header = (frame[14] & 0x0F) * 4
        rtp = frame[14 + ip_header + 8 :]
        csrc_count = rtp[0] & 0x0F
        if rtp[1] & 0x7F == 8:
            yield rtp[12 + 4 * csrc_count :]


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_short_and_odd_sized_inputs_follow_the_sample_by_sample_rule(law):
    """The C-level fast paths (compat.byte_lookup, byte_pairs) special-case short input: 0, 1
    and 2 samples give what encoding each sample alone gives; decoding is per byte."""
    encode, decode = (ulaw_encode, ulaw_decode) if law == "ulaw" else (alaw_encode, alaw_decode)
    samples = [0, -1, 32767, -32768, 1000]
    singles = [encode(struct.pack("<h", s)) for s in samples]
    assert all(len(code) == 1 for code in singles)
    assert encode(b"") == b"" and decode(b"") == b""
    assert encode(struct.pack("<2h", *samples[:2])) == singles[0] + singles[1]
    assert encode(struct.pack("<5h", *samples)) == b"".join(singles)
    codes = b"".join(singles)
    assert decode(codes) == b"".join(decode(codes[i:i + 1]) for i in range(len(codes)))
    assert decode(bytearray(codes)) == decode(codes)  # any bytes-like payload
    assert len(decode(codes[:1])) == 2
