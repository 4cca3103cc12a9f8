"""Sandbox RFC 3161 timestamp authority: ``POST /tsr`` with a DER ``TimeStampReq`` (content type
``application/timestamp-query``) answers a DER ``TimeStampResp`` (``application/timestamp-reply``), as
RFC 3161 §3.4 has it over HTTP.

The token is made by pyHanko's ``DummyTimeStamper`` (its testing TSA) with a throwaway CA and a TSA
certificate for ``timeStamping`` only, made at start: ``root_pem`` is what a node trusts
(``message_log.timestamp.ca_file``). A request that is not a TimeStampReq answers 400 with a
``rejection`` response (PKIStatus 2, badDataFormat), as a real TSA does.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

from lienthong.sandbox.base import Answer, FaultPlan, Peer, Received, Request

REPLY = b"application/timestamp-reply"
REJECTION = bytes.fromhex("30053003020102")
"""``TimeStampResp { status PKIStatusInfo { status rejection(2) } }`` in DER."""


@dataclass(frozen=True)
class TsaCertificates:
    root: x509.Certificate
    tsa: x509.Certificate
    tsa_key: rsa.RSAPrivateKey

    @property
    def root_pem(self) -> bytes:
        return self.root.public_bytes(serialization.Encoding.PEM)


def make_tsa_certificates(days: int = 30) -> TsaCertificates:
    """A throwaway CA and a TSA certificate it signs (extended key usage timeStamping, critical)."""
    now = datetime.datetime.now(datetime.UTC)
    # RSA: pyHanko's testing TSA signs with RSA only.
    root_key, tsa_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lienthong sandbox TSA root")])

    def builder(subject: x509.Name, key: rsa.RSAPrivateKey, serial: int) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root_name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=days))
        )

    root = (
        builder(root_name, root_key, 1)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    tsa_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lienthong sandbox TSA")])
    tsa = (
        builder(tsa_name, tsa_key, 2)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    return TsaCertificates(root, tsa, tsa_key)


class TsaSandbox(Peer):
    def __init__(
        self,
        *,
        certificates: TsaCertificates | None = None,
        faults: FaultPlan | None = None,
        path: str = "/tsr",
    ) -> None:
        super().__init__(faults)
        self.certificates = certificates or make_tsa_certificates()
        der = serialization.Encoding.DER
        self._stamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(self.certificates.tsa.public_bytes(der)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(
                self.certificates.tsa_key.private_bytes(
                    der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
            ),
        )
        self.routes[("POST", path)] = self._stamp

    async def _stamp(self, request: Request) -> Answer:
        try:
            asked = tsp.TimeStampReq.load(request.body)
            asked.native  # noqa: B018 (parses it whole: a truncated request fails here, not later)
        except (ValueError, TypeError):
            return Answer(400, REJECTION, REPLY)
        answer = self._stamper.request_tsa_response(asked)
        self.record(Received("timestamp", None, "", {"bytes": len(request.body)}))
        return Answer(200, answer.dump(), REPLY)
