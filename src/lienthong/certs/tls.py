"""TLS for outbound connections, as ``ssl.SSLContext`` objects adapters receive ready-made.

Verification is never turned off. ``ca_file`` adds a private CA (a province's own PKI); ``cert_file`` and
``key_file`` give a client certificate for mutual TLS. A certificate that is missing, unreadable, not
yet valid or expired is refused when the config loads, with a message naming the file and the dates,
rather than failing later in a handshake.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from lienthong.errors import ConfigError


def client_context(
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    now: datetime | None = None,
) -> ssl.SSLContext:
    """A verifying client context; raises ConfigError naming the file at fault."""
    context = ssl.create_default_context()
    if ca_file is not None:
        _readable(ca_file)
        try:
            context.load_verify_locations(cafile=ca_file)
        except ssl.SSLError as exc:
            raise ConfigError.single(ca_file, f"not a PEM CA certificate: {exc.reason or exc}") from exc
    if cert_file is not None:
        _check_dates(cert_file, now or datetime.now(UTC))
        if key_file is not None:
            _readable(key_file)
        try:
            context.load_cert_chain(cert_file, key_file)
        except ssl.SSLError as exc:
            raise ConfigError.single(
                cert_file, f"the certificate and key do not load together: {exc.reason or exc}"
            ) from exc
    return context


def _readable(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError.single(path, f"cannot read: {exc.strerror}") from exc


def _check_dates(path: str, now: datetime) -> None:
    try:
        certificate = x509.load_pem_x509_certificate(_readable(path))
    except ValueError as exc:
        raise ConfigError.single(path, "not a PEM certificate") from exc
    if now < certificate.not_valid_before_utc:
        raise ConfigError.single(
            path, f"the certificate is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M}Z"
        )
    if now > certificate.not_valid_after_utc:
        raise ConfigError.single(
            path, f"the certificate expired on {certificate.not_valid_after_utc:%Y-%m-%d %H:%M}Z"
        )


def not_after(path: str) -> datetime:
    """When the PEM certificate at ``path`` expires (UTC), the earliest of a bundle (a CA file may hold
    several); ConfigError naming the file."""
    try:
        return min(c.not_valid_after_utc for c in x509.load_pem_x509_certificates(_readable(path)))
    except ValueError as exc:
        raise ConfigError.single(path, "not a PEM certificate") from exc
