"""TLS as ``ssl.SSLContext`` objects that adapters and the server receive ready-made.

Verification is never turned off. A ``TlsFiles`` names what a context is made of: trusted CAs (``ca_file``,
a PEM bundle: it may hold an old and a new CA at once, during a CA's rotation; with ``system_trust`` the
system's CAs as well), a certificate with its key for mutual TLS (PEM or PKCS#12, the key possibly
encrypted), and the lowest TLS version (1.2 by default; 1.3 may be required). Anything missing, unreadable,
not yet valid or expired is refused when the config loads, with a message naming the file, rather than
failing later in a handshake.

``ssl`` reads certificates and keys only from files: a loaded credential reaches it through a temporary
file holding the chain and the key, the key encrypted with a one-time password, removed at once.
"""

from __future__ import annotations

import os
import secrets
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from cryptography import x509

from lienthong.certs.keys import (
    NO_PASSPHRASE,
    Credential,
    Passphrase,
    certificate_pem,
    check_dates,
    is_pkcs12,
    load_certificates,
    load_credential,
    private_pem,
    read_file,
)
from lienthong.certs.reloading import ReloadingContext
from lienthong.errors import ConfigError

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
"""The TLS versions a config may name as the lowest accepted; nothing older than 1.2 is ever offered."""


@dataclass(frozen=True)
class TlsFiles:
    """What one TLS context is made of, paths resolved. For a server, ``cert_file`` is its own certificate
    and ``ca_file`` the CA its clients' certificates must come from."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    passphrase: Passphrase = NO_PASSPHRASE
    system_trust: bool = True
    min_version: str = "1.2"
    require_client_cert: bool = True
    """Server only, with ``ca_file``: refuse a handshake without a client certificate (else it is asked
    for, checked when presented, and the request may still carry a bearer token)."""

    def watched(self) -> tuple[Path, ...]:
        """The files whose change means the context must be made again."""
        files = (self.ca_file, self.cert_file, self.key_file, self.passphrase.file)
        return tuple(f for f in files if f is not None)


def build_client(
    files: TlsFiles, *, environ: Mapping[str, str], now: datetime | None = None
) -> ssl.SSLContext:
    """A verifying client context; ConfigError naming the file at fault."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if files.ca_file is not None:
        cadata = _trusted(files.ca_file)
        if not files.system_trust:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=cadata)
        else:
            context.load_verify_locations(cadata=cadata)
    context.minimum_version = _version(files.min_version)
    if files.cert_file is not None:
        load_into(context, _credential(files, environ, now), files.cert_file)
    return context


def build_server(
    files: TlsFiles, *, environ: Mapping[str, str], now: datetime | None = None
) -> ssl.SSLContext:
    """A server context presenting ``files.cert_file``; with ``ca_file``, asking clients for certificates
    from that CA only (the system's CAs are never trusted for clients)."""
    if files.cert_file is None:
        raise ConfigError.single("", "a TLS server needs its certificate (server.tls.cert)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _version(files.min_version)
    load_into(context, _credential(files, environ, now), files.cert_file)
    if files.ca_file is not None:
        context.load_verify_locations(cadata=_trusted(files.ca_file))
        context.verify_mode = ssl.CERT_REQUIRED if files.require_client_cert else ssl.CERT_OPTIONAL
    return context


def client_context(
    *,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    now: datetime | None = None,
) -> ssl.SSLContext:
    """A verifying client context from PEM files without passphrase (the first API, kept for callers)."""
    files = TlsFiles(
        ca_file=Path(ca_file) if ca_file else None,
        cert_file=Path(cert_file) if cert_file else None,
        key_file=Path(key_file) if key_file else None,
    )
    return build_client(files, environ={}, now=now)


def load_into(context: ssl.SSLContext, credential: Credential, source: Path) -> None:
    """Make ``context`` present ``credential`` (certificate, intermediates, key) read from ``source``."""
    password = secrets.token_hex(16)
    pem = b"".join(certificate_pem(c) for c in (credential.certificate, *credential.chain))
    pem += private_pem(credential.key, password.encode())
    handle, name = tempfile.mkstemp(prefix="lienthong-", suffix=".pem")  # mode 0600
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(pem)
        context.load_cert_chain(name, password=password)
    except ssl.SSLError as exc:
        raise ConfigError.single(str(source), f"TLS refuses the certificate: {exc.reason or exc}") from exc
    finally:
        os.unlink(name)


def reloading_client(name: str, files: TlsFiles, *, environ: Mapping[str, str]) -> ReloadingContext:
    """A client context for ``name`` following its files (``Reloader``); ConfigError as ``build_client``."""
    return ReloadingContext(name, partial(build_client, files, environ=environ), files.watched())


def reloading_server(name: str, files: TlsFiles, *, environ: Mapping[str, str]) -> ReloadingContext:
    """A server context that follows its files; ConfigError as ``build_server``."""
    return ReloadingContext(name, partial(build_server, files, environ=environ), files.watched())


def _credential(files: TlsFiles, environ: Mapping[str, str], now: datetime | None) -> Credential:
    assert files.cert_file is not None
    credential = load_credential(files.cert_file, files.key_file, passphrase=files.passphrase.read(environ))
    check_dates(files.cert_file, credential.certificate, now or datetime.now(UTC))
    return credential


def _trusted(path: Path) -> str:
    certificates = load_certificates(path)
    return "".join(certificate_pem(c).decode() for c in certificates)


def _version(name: str) -> ssl.TLSVersion:
    try:
        return VERSIONS[name]
    except KeyError:
        raise ConfigError.single("", f"unknown TLS version {name!r} (known: 1.2, 1.3)") from None


def certificates_in(path: Path, passphrase: bytes | None = None) -> list[x509.Certificate]:
    """The certificates of a file, its own first (a PKCS#12 file decrypted with ``passphrase``)."""
    data = read_file(path)
    if is_pkcs12(path, data) and passphrase is not None:
        credential = load_credential(path, None, passphrase=passphrase)
        return [credential.certificate, *credential.chain]
    return load_certificates(path)
