"""Keys and certificates: loading (PEM, PKCS#12, passphrases from outside the config), TLS contexts for
destinations and the API's server, reloading without a restart, what the config's certificates say, and
XML signatures (``xmldsig.sign`` an invoice, ``xmldsig.verify`` each signature of a document)."""

from lienthong.certs.inventory import CertificateFile, CertificateInfo, chain_problem, describe
from lienthong.certs.keys import Credential, Passphrase, load_certificates, load_credential
from lienthong.certs.reloading import Reloader, ReloadingContext
from lienthong.certs.tls import TlsFiles, build_client, build_server, client_context
from lienthong.certs.xmldsig import SignatureResult, SigningKey, TrustStore, Verification

__all__ = [
    "CertificateFile",
    "CertificateInfo",
    "Credential",
    "Passphrase",
    "Reloader",
    "ReloadingContext",
    "SignatureResult",
    "SigningKey",
    "TlsFiles",
    "TrustStore",
    "Verification",
    "build_client",
    "build_server",
    "chain_problem",
    "client_context",
    "describe",
    "load_certificates",
    "load_credential",
]
