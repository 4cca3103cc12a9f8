"""A throwaway PKI for the demo and tests (``lienthong certs dev-init``): a CA, a server certificate for
localhost and 127.0.0.1, a client certificate as PEM and as PKCS#12 with a random passphrase.

Never for production: the CA's key lies beside its certificate, unencrypted. Keys are ECDSA P-256.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID

FILES = (
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
    "client.pem",
    "client.key",
    "client.p12",
    "client.p12.pass",
)
"""What ``dev_init`` writes, in this order; it refuses to write over any of them."""

CLIENT_SUBJECT = "CN=lienthong-dev-client,O=lienthong dev"
"""The dev client certificate's subject (RFC 4514), for ``auth.certificates``."""

SERVER_SUBJECT = "CN=localhost,O=lienthong dev"
_VALID = timedelta(days=90)


@dataclass(frozen=True)
class DevPki:
    """Where ``dev_init`` wrote each file."""

    directory: Path

    def __getitem__(self, name: str) -> Path:
        return self.directory / name


class AlreadyThere(Exception):
    """A file dev-init would write exists: nothing was written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path} exists: dev-init writes only into a directory without its files")


def dev_init(directory: Path, now: datetime) -> DevPki:
    """Write a throwaway CA, server and client certificates into ``directory`` (made if missing).
    Raises AlreadyThere, before writing anything, when one of ``FILES`` is already there."""
    for name in FILES:
        if (directory / name).exists():
            raise AlreadyThere(directory / name)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name.from_rfc4514_string("CN=lienthong dev CA,O=lienthong dev")
    ca = _sign(
        _builder(ca_name, ca_name, ca_key, now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True),
        ca_key,
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = _leaf(
        ca, ca_key, server_key, SERVER_SUBJECT, purpose=ExtendedKeyUsageOID.SERVER_AUTH, now=now, names=True
    )
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _leaf(ca, ca_key, client_key, CLIENT_SUBJECT, purpose=ExtendedKeyUsageOID.CLIENT_AUTH, now=now)
    passphrase = secrets.token_urlsafe(18)
    _write(directory / "ca.pem", _pem(ca))
    _write(directory / "ca.key", _key(ca_key), private=True)
    _write(directory / "server.pem", _pem(server) + _pem(ca))
    _write(directory / "server.key", _key(server_key), private=True)
    _write(directory / "client.pem", _pem(client))
    _write(directory / "client.key", _key(client_key), private=True)
    blob = pkcs12.serialize_key_and_certificates(
        b"lienthong dev client",
        client_key,
        client,
        [ca],
        serialization.BestAvailableEncryption(passphrase.encode()),
    )
    _write(directory / "client.p12", blob, private=True)
    _write(directory / "client.p12.pass", passphrase.encode() + b"\n", private=True)
    return DevPki(directory)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def _leaf(
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    subject: str,
    *,
    purpose: x509.ObjectIdentifier,
    now: datetime,
    names: bool = False,
) -> x509.Certificate:
    builder = (
        _builder(x509.Name.from_rfc4514_string(subject), ca.subject, key, now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if names:
        alternative = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(alternative), critical=False)
    return _sign(builder, ca_key)


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _sign(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    return builder.sign(key, hashes.SHA256())


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    # O_EXCL: a file that appeared since the check is not written over either.
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(handle, "wb") as out:
        out.write(data)
