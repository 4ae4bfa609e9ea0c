"""Test certificates: a CA and a server certificate for "localhost" (EC P-256, one day)."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_cert(subject: str, key, issuer_name=None, issuer_key=None, ca=False, san=None):
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if san:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
    return b.sign(issuer_key or key, hashes.SHA256())


def pem(obj) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_ca_and_server(directory: Path, host: str = "localhost") -> dict[str, Path]:
    """ca.pem, server.pem, server.key under `directory`; returns their paths by name."""
    ca_key, srv_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = make_cert("test CA", ca_key, ca=True)
    srv = make_cert(host, srv_key, ca.subject, ca_key, san=host)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, obj in (("ca.pem", ca), ("server.pem", srv), ("server.key", srv_key)):
        (directory / name).write_bytes(pem(obj))
        out[name] = directory / name
    return out
