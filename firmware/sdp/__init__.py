"""SDP for Doorline: the description format (``session``, RFC 8866, RFC 4568 crypto) and
offer/answer for one audio stream (``offer_answer``, RFC 3264, RFC 6337). Sans-I/O and portable;
see each module's docstring for its API."""

from firmware.sdp.offer_answer import (
    LocalMedia,
    NegotiatedMedia,
    OfferAnswerError,
    SrtpParameters,
    create_answer,
    create_offer,
    process_answer,
    signalling_srtp,
)
from firmware.sdp.session import (
    Attribute,
    Connection,
    Crypto,
    MediaDescription,
    Origin,
    SdpParseError,
    SessionDescription,
)

__all__ = [
    "Attribute",
    "Connection",
    "Crypto",
    "LocalMedia",
    "MediaDescription",
    "NegotiatedMedia",
    "OfferAnswerError",
    "Origin",
    "SdpParseError",
    "SessionDescription",
    "SrtpParameters",
    "create_answer",
    "create_offer",
    "process_answer",
    "signalling_srtp",
]
