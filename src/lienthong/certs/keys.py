"""Keys and certificates read from files: PEM or PKCS#12, encrypted keys, passphrases from outside the config.

Every problem is a ``ConfigError`` naming the file and what is wrong with it: unreadable, not a certificate,
not a key, a wrong or missing passphrase, a key that does not match its certificate, a certificate not yet
valid or expired. Nothing here reads the environment by itself: ``Passphrase.read`` is given it.

A file is taken as PKCS#12 when its name ends in ``.p12`` or ``.pfx``, or when it is DER (no PEM block).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import pkcs12

from lienthong.errors import ConfigError

PKCS12_SUFFIXES = (".p12", ".pfx")


@dataclass(frozen=True)
class Passphrase:
    """Where a key's passphrase comes from: an environment variable (``env``) or a file (``file``), never
    the config's text. A file's trailing newline is not part of the passphrase."""

    env: str | None = None
    file: Path | None = None

    def read(self, environ: Mapping[str, str]) -> bytes | None:
        """The passphrase, or None when none is configured; ConfigError naming the variable or file."""
        if self.env is not None:
            value = environ.get(self.env)
            if not value:
                raise ConfigError.single(f"${self.env}", "the key's passphrase variable is not set or empty")
            return value.encode()
        if self.file is not None:
            text = read_file(self.file).rstrip(b"\r\n")
            if not text:
                raise ConfigError.single(str(self.file), "the passphrase file is empty")
            return text
        return None


NO_PASSPHRASE = Passphrase()


@dataclass(frozen=True)
class Credential:
    """A certificate with its private key: ``chain`` holds the certificates after it (intermediates)."""

    certificate: x509.Certificate
    key: PrivateKeyTypes
    chain: tuple[x509.Certificate, ...] = ()


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError.single(str(path), f"cannot read: {exc.strerror}") from exc


def is_pkcs12(path: Path, data: bytes) -> bool:
    # DER begins with a SEQUENCE (0x30): anything else without a PEM block is a PEM file gone wrong.
    return path.suffix.lower() in PKCS12_SUFFIXES or (b"-----BEGIN" not in data and data[:1] == b"\x30")


def load_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file (a bundle), or in a PKCS#12 file without a passphrase."""
    data = read_file(path)
    if is_pkcs12(path, data):
        try:
            _, first, more = pkcs12.load_key_and_certificates(data, None)
        except ValueError as exc:
            raise ConfigError.single(str(path), "not a PEM certificate, nor a PKCS#12 file") from exc
        found = [c for c in (first, *more) if c is not None]
    else:
        try:
            found = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise ConfigError.single(str(path), "not a PEM certificate") from exc
    if not found:
        raise ConfigError.single(str(path), "holds no certificate")
    return found


def load_credential(
    cert_file: Path, key_file: Path | None = None, *, passphrase: bytes | None = None
) -> Credential:
    """The certificate and key of ``cert_file`` (PEM or PKCS#12), the key from ``key_file`` when given
    (else from ``cert_file`` itself), decrypted with ``passphrase``; checked to belong together."""
    data = read_file(cert_file)
    if is_pkcs12(cert_file, data):
        credential = _from_pkcs12(cert_file, data, passphrase)
        if key_file is not None:
            credential = Credential(credential.certificate, load_key(key_file, passphrase), credential.chain)
    else:
        certificates = load_certificates(cert_file)
        key = load_key(key_file or cert_file, passphrase)
        credential = Credential(certificates[0], key, tuple(certificates[1:]))
    if credential.certificate.public_key() != credential.key.public_key():
        where = f"{key_file}'s key" if key_file is not None else "its key"
        raise ConfigError.single(
            str(cert_file), f"the certificate and key do not load together: {where} does not match it"
        )
    return credential


def load_key(path: Path, passphrase: bytes | None) -> PrivateKeyTypes:
    """A PEM private key (PKCS#8 or traditional), decrypted with ``passphrase`` when it is encrypted."""
    data = read_file(path)
    encrypted = b"ENCRYPTED" in data
    if b"PRIVATE KEY-----" not in data:
        raise ConfigError.single(str(path), "not a key: no PEM private key block in it")
    if encrypted and passphrase is None:
        raise ConfigError.single(
            str(path), "the key is encrypted: give its passphrase (passphrase_env or passphrase_file)"
        )
    try:
        return serialization.load_pem_private_key(data, passphrase if encrypted else None)
    except ValueError as exc:
        why = "wrong passphrase for the key" if encrypted else "not a key (the PEM block does not decode)"
        raise ConfigError.single(str(path), why) from exc
    except TypeError as exc:  # cryptography's "not encrypted" and similar
        raise ConfigError.single(str(path), f"not a key: {exc}") from exc


def _from_pkcs12(path: Path, data: bytes, passphrase: bytes | None) -> Credential:
    try:
        key, certificate, more = pkcs12.load_key_and_certificates(data, passphrase)
    except ValueError as exc:
        why = "not a PKCS#12 file, or it needs a passphrase" if passphrase is None else "wrong passphrase"
        raise ConfigError.single(str(path), f"{why} (read as PKCS#12)") from exc
    if certificate is None:
        raise ConfigError.single(str(path), "the PKCS#12 file holds no certificate")
    if key is None:
        raise ConfigError.single(str(path), "the PKCS#12 file holds no private key")
    return Credential(certificate, key, tuple(more))


def check_dates(path: Path, certificate: x509.Certificate, now: datetime) -> None:
    """ConfigError naming ``path`` when ``certificate`` is not yet valid or has expired at ``now``."""
    if now < certificate.not_valid_before_utc:
        raise ConfigError.single(
            str(path),
            f"the certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M}Z",
        )
    if now > certificate.not_valid_after_utc:
        raise ConfigError.single(
            str(path), f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
        )


def private_pem(key: PrivateKeyTypes, password: bytes) -> bytes:
    """``key`` as PKCS#8 PEM encrypted with ``password`` (how a key reaches ``ssl``, which reads files)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)
