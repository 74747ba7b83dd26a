"""Why something failed, as a sentence a person reads (the page, the event log); portable.

Public API
    registration_reason(error, registrar, transport="udp") -> str or None
        the registration's `error` (firmware/sip/registration.py) as a sentence:
        "no answer from 192.0.2.1:5060 (timeout)", "wrong user name or password (401)",
        "403 Forbidden"; None without an error. `registrar` as configured (`host[:port]`;
        without a port the transport's default is shown: 5061 for TLS, else 5060)
"""

from firmware.sip.registration import FLOW_ERROR, TIMEOUT_ERROR


def registration_reason(error: "str | None", registrar: str,
                        transport: str = "udp") -> "str | None":
    if not error:
        return None
    where = registrar or "the registrar"
    if registrar and ":" not in registrar.rpartition("]")[2]:
        where = registrar + (":5061" if transport == "tls" else ":5060")
    if error == TIMEOUT_ERROR:
        return "no answer from " + where + " (timeout)"
    if error == FLOW_ERROR:
        return "the connection to " + where + " was lost"
    status, colon, text = error.partition(": ")
    if colon and status.isdigit():  # "401: wrong username or password" and the like
        if "wrong username or password" in text:
            return "wrong user name or password (" + status + ")"
        return text + " (" + status + ")"
    return error
