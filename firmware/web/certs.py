"""The web page's TLS certificate: self-signed, made once on first boot in the state directory.

`[web] https = true` serves the page over TLS with `state_dir/web-cert.pem` and
`state_dir/web-key.pem`. When they are missing they are generated here with the `cryptography`
package (an ECDSA P-256 key, valid 10 years, subjectAltName for localhost, 127.0.0.1 and the
names given). An operator may also put their own certificate and key in those two files; then
`cryptography` is not needed at all.

Public API:
- `ensure_certificate(state_dir, hosts=()) -> (cert_path, key_path)`; raises `CertificateError`
  with an explanation when the files are missing and cannot be made.
- `server_ssl_context(state_dir, hosts=()) -> ssl.SSLContext` (TLS 1.2 or later); logs the
  certificate's SHA-256 fingerprint, which the user compares with what the browser shows
  before trusting the self-signed certificate (docs/INSTALL.md).
- `fingerprint(cert_path) -> str`: SHA-256 of the (first) certificate, "AB:CD:...".

The generated certificate names localhost, 127.0.0.1, the host name and `<hostname>.local`
(what avahi announces) and the names given; `0.0.0.0` and `::` (listen on all) are left out.
"""

import hashlib
import ipaddress
import logging
import os
import socket
import ssl

CERT_FILE = "web-cert.pem"
KEY_FILE = "web-key.pem"
VALID_DAYS = 3650


class CertificateError(RuntimeError):
    pass


def ensure_certificate(state_dir: str,
                       hosts: "list[str] | tuple[str, ...]" = ()) -> tuple[str, str]:
    cert_path = os.path.join(state_dir, CERT_FILE)
    key_path = os.path.join(state_dir, KEY_FILE)
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise CertificateError(
            f"[web] https = true needs a certificate: install the 'cryptography' package "
            f"(pip install cryptography) to make a self-signed one, or put your own PEM "
            f"certificate and key in {cert_path} and {key_path}") from None

    host = socket.gethostname()
    names = {"localhost", "127.0.0.1", host, f"{host}.local" if host else "", *hosts}
    alt_names: list[x509.GeneralName] = []
    for name in sorted(n for n in names if n):
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            alt_names.append(x509.DNSName(name))
            continue
        if not address.is_unspecified:
            alt_names.append(x509.IPAddress(address))
    import datetime  # only to make a certificate (issue 14: not at every https start)

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Doorline door station")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    os.makedirs(state_dir, exist_ok=True)
    _write(key_path, key_pem, 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fingerprint(cert_path: str) -> str:
    with open(cert_path, encoding="ascii", errors="replace") as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).digest().hex(":").upper()


def server_ssl_context(state_dir: str,
                       hosts: "list[str] | tuple[str, ...]" = ()) -> ssl.SSLContext:
    cert_path, key_path = ensure_certificate(state_dir, hosts)
    try:
        logging.getLogger("doorline.web").info(
            "web certificate SHA-256 fingerprint %s (%s): compare it with the one your "
            "browser shows before you trust it", fingerprint(cert_path), cert_path)
    except (OSError, ValueError) as exc:
        logging.getLogger("doorline.web").warning("cannot read %s: %s", cert_path, exc)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context
