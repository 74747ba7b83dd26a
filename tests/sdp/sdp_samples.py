"""Hand-written SDP bodies in the shape real peers send (CRLF, canonical, so they round-trip
byte for byte). Key material is made-up: bytes(range(30)) and bytes(range(100, 130))."""

KEY_A = bytes(range(30))
KEY_A_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd"
KEY_B = bytes(range(100, 130))
KEY_B_B64 = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CB"


def crlf(*lines):
    return "".join(line + "\r\n" for line in lines)


# baresip 1.x with mediaenc=srtp: best-effort SDES, RTP/AVP with crypto lines, _32 preferred.
BARESIP_OFFER = crlf(
    "v=0",
    "o=- 1609421431 3215312877 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 10000 RTP/AVP 0 8 101",
    "b=AS:64",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=sendrecv",
    "a=label:1",
    "a=rtcp-rsize",
    "a=ssrc:3012345678 cname:sip:flat1@127.0.0.1",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:" + KEY_A_B64,
    "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + KEY_B_B64,
    "a=ptime:20",
)

# Asterisk chan_pjsip: rtpmap for static types too, its own order, GSM, maxptime.
ASTERISK_OFFER = crlf(
    "v=0",
    "o=- 1911049733 1911049735 IN IP4 127.0.0.1",
    "s=Asterisk",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 17080 RTP/AVP 8 0 3 101",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:3 GSM/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-16",
    "a=ptime:20",
    "a=maxptime:150",
    "a=sendrecv",
)

# baresip with mediaenc=srtp-mand: RTP/SAVP, an AES-256 line we do not support listed first.
SAVP_OFFER = crlf(
    "v=0",
    "o=- 42 42 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 10002 RTP/SAVP 0 8 101",
    "a=rtpmap:0 PCMU/8000",
    "a=rtpmap:8 PCMA/8000",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
    "a=rtcp:10003",
    "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:"
    "yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5ufo6err7O3u7/Dx8vP09Q==",
    "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:" + KEY_B_B64 + "|2^31",
    "a=sendrecv",
)

# A video phone: video first, then audio with opus as a dynamic type.
VIDEO_AUDIO_OFFER = crlf(
    "v=0",
    "o=flat2 8000 8000 IN IP4 127.0.0.1",
    "s=Talk",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
    "m=video 9078 RTP/AVP 97",
    "a=rtpmap:97 H264/90000",
    "a=fmtp:97 profile-level-id=42801F",
    "m=audio 7078 RTP/AVP 96 0 8 101",
    "a=rtpmap:96 opus/48000/2",
    "a=fmtp:96 useinbandfec=1",
    "a=rtpmap:101 telephone-event/8000",
    "a=rtcp-mux",
)

G729_ONLY_OFFER = crlf(
    "v=0",
    "o=- 5 5 IN IP4 127.0.0.1",
    "s=-",
    "c=IN IP4 127.0.0.1",
    "t=0 0",
    "m=audio 30000 RTP/AVP 18 101",
    "a=rtpmap:18 G729/8000",
    "a=fmtp:18 annexb=no",
    "a=rtpmap:101 telephone-event/8000",
    "a=fmtp:101 0-15",
)

# The first audio stream was disabled (port 0) in an earlier exchange; the second is live.
PORT_ZERO_OFFER = crlf(
    "v=0",
    "o=- 7 9 IN IP4 127.0.0.1",
    "s=-",
    "t=0 0",
    "m=audio 0 RTP/AVP 0",
    "c=IN IP4 127.0.0.1",
    "m=audio 30002 RTP/AVP 8",
    "c=IN IP4 127.0.0.3",
    "a=sendrecv",
)

# RFC 8866 §5 example (documentation addresses; it is only text here).
RFC8866_EXAMPLE = crlf(
    "v=0",
    "o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1",
    "s=Call to John Smith",
    "i=SDP Offer #1",
    "u=http://www.jdoe.example.com/home.html",
    "e=Jane Doe <jane@jdoe.example.com>",
    "p=+1 617 555-6011",
    "c=IN IP4 198.51.100.1",
    "t=0 0",
    "m=audio 49170 RTP/AVP 0",
    "m=audio 49180 RTP/AVP 0",
    "m=video 51372 RTP/AVP 99",
    "c=IN IP6 2001:db8::2",
    "a=rtpmap:99 h263-1998/90000",
)

ALL_SAMPLES = [
    BARESIP_OFFER,
    ASTERISK_OFFER,
    SAVP_OFFER,
    VIDEO_AUDIO_OFFER,
    G729_ONLY_OFFER,
    PORT_ZERO_OFFER,
    RFC8866_EXAMPLE,
]
