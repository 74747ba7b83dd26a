"""Throwaway TLS material for loopback peers: a CA and a server certificate for 127.0.0.1.

Public API:
- `make_certificates(directory, common_name="127.0.0.1") -> Certificates` writes `ca.pem`,
  `ca.key`, `server.pem` and `server.key` (PEM, unencrypted) and returns their paths.
  The server certificate carries subjectAltName IP:127.0.0.1 and DNS:localhost, because
  verifiers (Python `ssl`, OpenSSL in Kamailio/baresip) match the address a client dialled
  against the SAN, never the CN.
- `Certificates`: `ca_path`, `ca_key_path`, `cert_path`, `key_path` (pathlib.Path).
"""

import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=2)


class Certificates:
    def __init__(self, ca_path, ca_key_path, cert_path, key_path):
        self.ca_path = ca_path
        self.ca_key_path = ca_key_path
        self.cert_path = cert_path
        self.key_path = key_path

    def __repr__(self):
        return f"Certificates(ca={self.ca_path}, cert={self.cert_path}, key={self.key_path})"


def _new_key():
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key, path):
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(cert, path):
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _name(common_name):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Doorline tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_certificates(directory, common_name="127.0.0.1"):
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Backdate a little so a peer whose clock reads slightly behind still accepts it.
    not_before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=1)
    not_after = not_before + VALIDITY

    ca_key = _new_key()
    ca_name = _name("Doorline test CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = _new_key()
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )

    certificates = Certificates(
        ca_path=directory / "ca.pem",
        ca_key_path=directory / "ca.key",
        cert_path=directory / "server.pem",
        key_path=directory / "server.key",
    )
    _write_cert(ca_cert, certificates.ca_path)
    _write_key(ca_key, certificates.ca_key_path)
    _write_cert(server_cert, certificates.cert_path)
    _write_key(server_key, certificates.key_path)
    return certificates
