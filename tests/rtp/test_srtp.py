import json
import os
import subprocess
import sys

import pytest

from firmware.rtp import srtp, srtp_libcrypto
from firmware.rtp.packet import RtpPacket
from firmware.rtp.srtp import (
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    INBOUND,
    OUTBOUND,
    SUITES,
    SrtpContext,
    SrtpError,
    SrtpSession,
    new_key_material,
    split_key_material,
)


@pytest.fixture(autouse=True, params=[srtp.LIBCRYPTO, srtp.PYLIBSRTP])
def backend(request, monkeypatch):
    """Every test runs on both backends: ours on libcrypto and pylibsrtp (libsrtp 2)."""
    monkeypatch.setattr(srtp, "_backend", request.param)
    return request.param


@pytest.fixture(scope="module")
def srtp_vectors(vectors):
    with open(vectors / "srtp" / "srtp_vectors.json") as handle:
        return json.load(handle)


def _contexts(section, suite=AES_CM_128_HMAC_SHA1_80):
    key = bytes.fromhex(section["master_key_hex"])
    salt = bytes.fromhex(section["master_salt_hex"])
    return SrtpContext(suite, key, salt, OUTBOUND), SrtpContext(suite, key, salt, INBOUND)


def _flip(data, index):
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def test_libsrtp_validate_rtp_known_answer(srtp_vectors):
    section = srtp_vectors["libsrtp_srtp_validate"]
    plain = bytes.fromhex(section["rtp"]["plain_hex"])
    protected = bytes.fromhex(section["rtp"]["protected_hex"])
    sender, receiver = _contexts(section)
    assert sender.protect(plain) == protected
    assert protected.endswith(bytes.fromhex(section["rtp"]["auth_tag_hex"]))
    assert receiver.unprotect(protected) == plain


def test_libsrtp_validate_rtcp_known_answer(srtp_vectors):
    section = srtp_vectors["libsrtp_srtp_validate"]
    plain = bytes.fromhex(section["rtcp"]["plain_hex"])
    protected = bytes.fromhex(section["rtcp"]["protected_hex"])
    sender, receiver = _contexts(section)
    # A fresh context sends SRTCP index 1 first, as the vector does.
    assert sender.protect_rtcp(plain) == protected
    assert receiver.unprotect_rtcp(protected) == plain
    _, fresh = _contexts(section)
    with pytest.raises(SrtpError):
        fresh.unprotect_rtcp(_flip(protected, 10))


@pytest.mark.parametrize("index", [0, 5, 12, 20, -1])
def test_any_changed_byte_fails_authentication(srtp_vectors, index):
    section = srtp_vectors["libsrtp_srtp_validate"]
    protected = bytes.fromhex(section["rtp"]["protected_hex"])
    _, receiver = _contexts(section)
    with pytest.raises(SrtpError) as error:
        receiver.unprotect(_flip(protected, index))
    assert "authentication" in error.value.reason
    assert receiver.unprotect(protected) == bytes.fromhex(section["rtp"]["plain_hex"])


def test_replayed_packet_is_rejected(srtp_vectors):
    section = srtp_vectors["libsrtp_srtp_validate"]
    protected = bytes.fromhex(section["rtp"]["protected_hex"])
    _, receiver = _contexts(section)
    receiver.unprotect(protected)
    with pytest.raises(SrtpError) as error:
        receiver.unprotect(protected)
    assert "replay" in error.value.reason


@pytest.mark.parametrize("suite", SUITES)
def test_generated_sequences_across_roc_rollover(srtp_vectors, suite):
    section = srtp_vectors["libsrtp_generated_sequences"]
    sender, receiver = _contexts(section, suite)
    entries = section["profiles"][suite]
    assert [entry["roc"] for entry in entries] == [0, 0, 0, 1, 1, 1]
    for entry in entries:
        plain = bytes.fromhex(entry["plain_hex"])
        protected = bytes.fromhex(entry["protected_hex"])
        assert RtpPacket.parse(plain).sequence == entry["seq"]
        tag_length = 4 if suite == AES_CM_128_HMAC_SHA1_32 else 10
        assert len(protected) == len(plain) + tag_length
        assert sender.protect(plain) == protected
        assert receiver.unprotect(protected) == plain


@pytest.mark.parametrize("suite", SUITES)
def test_wrong_roc_fails_authentication(srtp_vectors, suite):
    """A receiver that never saw the wrap assumes ROC 0 for a packet sent with ROC 1."""
    section = srtp_vectors["libsrtp_generated_sequences"]
    after_wrap = [entry for entry in section["profiles"][suite] if entry["roc"] == 1]
    for entry in after_wrap:
        _, receiver = _contexts(section, suite)
        with pytest.raises(SrtpError) as error:
            receiver.unprotect(bytes.fromhex(entry["protected_hex"]))
        assert "authentication" in error.value.reason
    # And a sender that starts at the same sequence number with ROC 0 produces other bytes.
    sender, _ = _contexts(section, suite)
    entry = after_wrap[0]
    assert sender.protect(bytes.fromhex(entry["plain_hex"])) != bytes.fromhex(
        entry["protected_hex"]
    )


def test_sdes_inline_key_from_sdp_drives_the_libsrtp_vector(srtp_vectors):
    """Chain the SDP module's a=crypto parsing to our contexts (the inline parse lives in SDP)."""
    session_module = pytest.importorskip("firmware.sdp.session")
    line = srtp_vectors["sdes_inline_for_libsrtp_key"]["attribute"]
    crypto = session_module.Crypto.parse(line.split(":", 1)[1])
    packet = srtp_vectors["libsrtp_srtp_validate"]["rtp"]
    sender = SrtpContext(crypto.suite, crypto.master_key, crypto.master_salt, OUTBOUND)
    assert sender.protect(bytes.fromhex(packet["plain_hex"])).hex() == packet["protected_hex"]


def test_session_round_trip_both_directions_and_rtcp():
    a_material, b_material = new_key_material(), new_key_material()
    assert len(a_material) == 30 and a_material != b_material
    a = SrtpSession(AES_CM_128_HMAC_SHA1_32, *split_key_material(a_material),
                    *split_key_material(b_material))
    b = SrtpSession(AES_CM_128_HMAC_SHA1_32, *split_key_material(b_material),
                    *split_key_material(a_material))
    for sequence in range(5):
        rtp = bytes(RtpPacket(0, sequence, 160 * sequence, 0x1234, b"\x55" * 160))
        assert b.unprotect(a.protect(rtp)) == rtp
        assert a.unprotect(b.protect(rtp)) == rtp
    rtcp = bytes.fromhex("81c90001" + "00001234")
    assert b.unprotect_rtcp(a.protect_rtcp(rtcp)) == rtcp
    with pytest.raises(SrtpError):
        a.unprotect(a.protect(bytes(RtpPacket(0, 9, 0, 0x99, b"x"))))  # our own key is not theirs


def test_bad_parameters_raise_srtp_error():
    key, salt = split_key_material(new_key_material())
    with pytest.raises(SrtpError):
        SrtpContext("AES_256_CM_HMAC_SHA1_80", key, salt, OUTBOUND)
    with pytest.raises(SrtpError):
        SrtpContext(AES_CM_128_HMAC_SHA1_80, key[:10], salt, OUTBOUND)
    with pytest.raises(SrtpError):
        SrtpContext(AES_CM_128_HMAC_SHA1_80, key, salt, "sideways")
    with pytest.raises(SrtpError):
        split_key_material(b"short")
    outbound = SrtpContext(AES_CM_128_HMAC_SHA1_80, key, salt, OUTBOUND)
    with pytest.raises(SrtpError):
        outbound.unprotect(b"\x80" * 40)
    inbound = SrtpContext(AES_CM_128_HMAC_SHA1_80, key, salt, INBOUND)
    for junk in (b"", b"\x80\x00", b"\x80" * 20, bytes(2000)):
        with pytest.raises(SrtpError):
            inbound.unprotect(junk)
    assert "key" not in repr(inbound).lower()


def test_backend_prefers_the_system_library_and_falls_back(monkeypatch):
    monkeypatch.setattr(srtp, "_backend", None)
    monkeypatch.delenv("DOORLINE_SRTP", raising=False)
    assert srtp.backend() == srtp.LIBCRYPTO
    monkeypatch.setattr(srtp, "_backend", None)
    monkeypatch.setenv("DOORLINE_SRTP", srtp.PYLIBSRTP)
    assert srtp.backend() == srtp.PYLIBSRTP
    monkeypatch.setattr(srtp, "_backend", None)
    monkeypatch.delenv("DOORLINE_SRTP")
    monkeypatch.setattr(srtp_libcrypto, "_crypto", None)
    monkeypatch.setattr(srtp_libcrypto, "_mapped_libcrypto", lambda: "")
    assert srtp.backend() == srtp.PYLIBSRTP
    with pytest.raises(srtp_libcrypto.Unavailable):
        srtp_libcrypto.load()


def test_both_backends_produce_the_same_bytes(backend):
    key, salt = split_key_material(new_key_material())
    packets = [bytes(RtpPacket(0, n, 160 * n, 0x4321, bytes([n]) * 160)) for n in range(3)]
    ours = SrtpContext(AES_CM_128_HMAC_SHA1_80, key, salt, OUTBOUND)
    srtp._backend = srtp.PYLIBSRTP if backend == srtp.LIBCRYPTO else srtp.LIBCRYPTO
    other = SrtpContext(AES_CM_128_HMAC_SHA1_80, key, salt, INBOUND)
    for packet in packets:
        assert other.unprotect(ours.protect(packet)) == packet


def test_an_srtp_call_loads_neither_pylibsrtp_nor_cffi():
    """Issue 14: pylibsrtp's binding carried its own OpenSSL (+5.6 MB in every SRTP call);
    ours uses the libcrypto that hashlib maps, and no second one."""
    code = (
        "import sys\n"
        "from firmware.rtp import srtp\n"
        "k = srtp.new_key_material()\n"
        "s = srtp.SrtpSession(srtp.AES_CM_128_HMAC_SHA1_80, *srtp.split_key_material(k),"
        " *srtp.split_key_material(k))\n"
        "assert s.unprotect(s.protect(bytes([0x80, 0, 0, 1]) + bytes(168)))\n"
        "print(srtp.backend(), sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('pylibsrtp', '_cffi_backend', 'cffi')),"
        " sum('libcrypto' in line for line in open('/proc/self/maps')) > 0,"
        " len({line.split()[-1] for line in open('/proc/self/maps') if 'libcrypto' in line}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DOORLINE_SRTP"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=30, env=env, check=True).stdout
    assert out.split() == [srtp.LIBCRYPTO, "[]", "True", "1"]


def test_reordered_packets_inside_the_window_and_too_old_ones():
    """RFC 3711 §3.3.2: a 128-packet replay window (libsrtp's); both backends agree."""
    key, salt = split_key_material(new_key_material())
    sender = SrtpContext(AES_CM_128_HMAC_SHA1_80, key, salt, OUTBOUND)
    receiver = SrtpContext(AES_CM_128_HMAC_SHA1_80, key, salt, INBOUND)
    protected = [sender.protect(bytes(RtpPacket(0, seq, 160 * seq, 0x77, b"\x01" * 160)))
                 for seq in range(200)]
    assert receiver.unprotect(protected[199]) == bytes(
        RtpPacket(0, 199, 160 * 199, 0x77, b"\x01" * 160))
    assert receiver.unprotect(protected[150])  # 49 behind the newest: inside the window
    with pytest.raises(SrtpError) as error:
        receiver.unprotect(protected[150])
    assert "replay" in error.value.reason
    with pytest.raises(SrtpError) as error:
        receiver.unprotect(protected[50])  # 149 behind
    assert "too old" in error.value.reason


def test_unencrypted_srtcp_is_refused(srtp_vectors):
    """§3.4: these suites encrypt SRTCP; a packet sent with E = 0 (libsrtp's NULL-cipher vector,
    correctly authenticated under the same keys) is refused, as libsrtp refuses it: no
    downgrade to clear RTCP."""
    section = srtp_vectors["libsrtp_srtp_validate"]
    _, receiver = _contexts(section)
    clear = bytes.fromhex(section["null_cipher_hmac_sha1_80"]["rtcp_protected_hex"])
    with pytest.raises(SrtpError) as error:
        receiver.unprotect_rtcp(clear)
    assert "validation" in error.value.reason
    protected = bytes.fromhex(section["rtcp"]["protected_hex"])
    assert receiver.unprotect_rtcp(protected) == bytes.fromhex(section["rtcp"]["plain_hex"])


def _pylibsrtp(material, outbound):
    import pylibsrtp

    policy = pylibsrtp.Policy(
        key=material, srtp_profile=1,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound
        else pylibsrtp.Policy.SSRC_ANY_INBOUND)
    policy.allow_repeat_tx = True
    return pylibsrtp.Session(policy=policy)


def test_keystreams_made_ahead_agree_with_libsrtp_packet_by_packet():
    """Our backend makes PAD_PACKETS keystreams per SSRC in one batch (issue 14): every packet
    must still be exactly libsrtp's, across batch ends, reordering, repeats, a jump ahead, new
    sizes (DTMF, larger frames, beyond MAX_PAD) and a second SSRC."""
    material = new_key_material()
    ours_out = srtp_libcrypto.Session(1, material, True)
    ours_in = srtp_libcrypto.Session(1, material, False)
    theirs_out, theirs_in = _pylibsrtp(material, True), _pylibsrtp(material, False)
    batch = srtp_libcrypto.PAD_PACKETS
    sequences = list(range(3 * batch + 5))
    sequences[10], sequences[11] = sequences[11], sequences[10]  # reordered
    sequences[batch - 1], sequences[batch] = sequences[batch], sequences[batch - 1]
    sequences += [sequences[-1], 400, 399, 401, 401 + batch, 402 + batch]  # repeat, jump, late
    big = srtp_libcrypto.MAX_PAD + 100  # beyond a batch's keystreams: ours alone
    sizes = {20: 4, 21: 240, 22: 160, 30: big, 31: 0, 90: 1200}
    seen = set()
    for n, sequence in enumerate(sequences):
        for ssrc in (0x1234, 0x5678) if n % 7 == 0 else (0x1234,):
            payload = bytes((sequence + i) & 0xFF for i in range(sizes.get(n, 160)))
            rtp = bytes(RtpPacket(0, sequence, 160 * sequence, ssrc, payload))
            protected = ours_out.protect(rtp)
            if len(payload) < big:  # pylibsrtp's buffer takes up to 1500 octets
                assert protected == theirs_out.protect(rtp), (n, sequence)
                if (ssrc, sequence) not in seen:
                    assert theirs_in.unprotect(protected) == rtp
            if (ssrc, sequence) in seen:
                with pytest.raises(SrtpError):
                    ours_in.unprotect(protected)
            else:
                assert ours_in.unprotect(protected) == rtp, (n, sequence)
            seen.add((ssrc, sequence))
