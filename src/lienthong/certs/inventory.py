"""What certificates a node uses, what each says, and whether each chain verifies: for ``lienthong certs
show`` and ``certs check``, the expiry gauge and readiness.

Purposes: ``client`` (presented to a destination or source: mutual TLS), ``ca`` (trusted for one),
``server`` (the API's own) and ``client_ca`` (trusted for the API's callers).
"""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification

from lienthong.certs.keys import NO_PASSPHRASE, Passphrase, load_certificates
from lienthong.certs.tls import certificates_in

PRESENTED = ("client", "server")
"""Purposes whose file is our own certificate (its first certificate counts); the others are trust
stores (every certificate in them counts)."""


@dataclass(frozen=True)
class CertificateFile:
    """A certificate file the config names: for whom (``name``), what for (``purpose``), and for a presented
    certificate the trust store its chain is checked against (``trust``, and the system's CAs)."""

    name: str
    purpose: str
    file: Path
    passphrase: Passphrase = NO_PASSPHRASE
    trust: Path | None = None
    system_trust: bool = True


@dataclass(frozen=True)
class CertificateInfo:
    """One certificate as ``certs show`` prints it."""

    name: str
    purpose: str
    file: str
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime

    def days_left(self, now: datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400

    def as_json(self, now: datetime) -> dict[str, object]:
        return {
            "name": self.name,
            "purpose": self.purpose,
            "file": self.file,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "days_left": round(self.days_left(now), 1),
        }


def describe(entry: CertificateFile, environ: Mapping[str, str]) -> list[CertificateInfo]:
    """The certificates of ``entry``: its own for a presented one, each one of a trust store.
    ConfigError naming the file when it does not load."""
    found = certificates_in(entry.file, entry.passphrase.read(environ))
    if entry.purpose in PRESENTED:
        found = found[:1]
    return [
        CertificateInfo(
            entry.name,
            entry.purpose,
            str(entry.file),
            c.subject.rfc4514_string(),
            c.issuer.rfc4514_string(),
            c.not_valid_before_utc,
            c.not_valid_after_utc,
        )
        for c in found
    ]


def chain_problem(entry: CertificateFile, environ: Mapping[str, str], now: datetime) -> str | None:
    """Why a presented certificate's chain does not verify against its trust store at ``now`` (None when
    it does, or for a trust store itself: its certificates are anchors)."""
    if entry.purpose not in PRESENTED:
        return None
    leaf, *intermediates = certificates_in(entry.file, entry.passphrase.read(environ))
    anchors = [*load_certificates(entry.trust)] if entry.trust is not None else []
    anchors.extend(c for c in intermediates if c.issuer == c.subject)  # a full chain's own root
    if entry.system_trust:
        anchors.extend(system_anchors())
    if leaf in anchors:
        return None  # pinned: trusted as it is
    if not anchors:
        return "no trust store to verify it against"
    policy = verification.PolicyBuilder().store(verification.Store(anchors)).time(now)
    try:
        if entry.purpose == "client":
            # A client certificate need not name a host: the web PKI's end-entity rules (a subjectAltName
            # required) do not apply; the CAs' rules do.
            policy.extension_policies(
                ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=verification.ExtensionPolicy.permit_all(),
            ).build_client_verifier().verify(leaf, intermediates)
        else:
            policy.build_server_verifier(_server_name(leaf)).verify(leaf, intermediates)
    except (verification.VerificationError, ValueError) as exc:
        return f"the chain does not verify against {entry.trust or 'the system CAs'}: {exc}"
    return None


def _server_name(leaf: x509.Certificate) -> verification.Subject:
    """The first name the server certificate is for (its chain is what is checked, not the name)."""
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise ValueError("the server certificate names no host (no subjectAltName)") from None
    for dns in names.get_values_for_type(x509.DNSName):
        return x509.DNSName(dns)
    for ip in names.get_values_for_type(x509.IPAddress):
        return x509.IPAddress(ip)
    raise ValueError("the server certificate names no host or address in its subjectAltName")


def system_anchors() -> list[x509.Certificate]:
    """The system's trusted CAs, as OpenSSL finds them (none when its bundle cannot be read)."""
    where = ssl.get_default_verify_paths().cafile
    if where is None:
        return []
    try:
        with warnings.catch_warnings():  # a system CA or two break RFC 5280 (a negative serial): not ours
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            return x509.load_pem_x509_certificates(Path(where).read_bytes())
    except (OSError, ValueError):
        return []
