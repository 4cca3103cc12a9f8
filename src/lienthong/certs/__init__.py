"""Keys and certificates: loading (PEM, PKCS#12, passphrases from outside the config), TLS contexts for
destinations and the API's server, reloading without a restart, and what the config's certificates say."""

from lienthong.certs.inventory import CertificateFile, CertificateInfo, chain_problem, describe
from lienthong.certs.keys import Credential, Passphrase, load_certificates, load_credential
from lienthong.certs.reloading import Reloader, ReloadingContext
from lienthong.certs.tls import TlsFiles, build_client, build_server, client_context

__all__ = [
    "CertificateFile",
    "CertificateInfo",
    "Credential",
    "Passphrase",
    "Reloader",
    "ReloadingContext",
    "TlsFiles",
    "build_client",
    "build_server",
    "chain_problem",
    "client_context",
    "describe",
    "load_certificates",
    "load_credential",
]
