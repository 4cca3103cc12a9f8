"""RFC 3161 timestamps of the message log's checkpoints, from a timestamp authority over HTTP.

The node asks the TSA (``message_log.timestamp.url``) to stamp each checkpoint's signed note: a DER
``TimeStampReq`` with the note's SHA-256, a fresh nonce and a request for the TSA's certificate, posted
as ``application/timestamp-query`` (RFC 3161 §3.4). The answer is checked with rfc3161-client against the
configured roots (the TSA's chain, the nonce, the message imprint) before it is kept beside the
checkpoint. A node whose last good timestamp is older than ``max_age_s`` refuses new events (503), as
X-Road's security servers stop when they cannot timestamp their message log.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import rfc3161_client
from cryptography import x509

from lienthong.adapters.http import HttpPeer

QUERY = "application/timestamp-query"


class TimestampError(Exception):
    """The TSA did not answer with a timestamp of this message that the roots vouch for."""


@dataclass(frozen=True)
class Stamp:
    token: str
    """The TSA's whole answer (DER ``TimeStampResp``), base64."""
    at: datetime
    """The time the TSA put in it (``genTime``)."""


def load_roots(path: Path) -> list[x509.Certificate]:
    """The PEM certificates a TSA's chain must end in; ValueError when the file holds none."""
    roots = x509.load_pem_x509_certificates(path.read_bytes())
    if not roots:
        raise ValueError("no PEM certificate")
    return roots


class Timestamper:
    def __init__(self, peer: HttpPeer, path: str, roots: list[x509.Certificate]) -> None:
        self._endpoint = peer.endpoint(path)
        self._peer = peer
        self._roots = roots

    async def stamp(self, message: bytes) -> Stamp:
        """A verified timestamp of ``message``; TimestampError saying why not (TSA down, a refusal, an
        answer the roots do not vouch for, another message's or another request's stamp)."""
        request = (
            rfc3161_client.TimestampRequestBuilder()
            .data(message)
            .nonce(nonce=True)
            .cert_request(cert_request=True)
            .build()
        )
        try:
            answer = await self._endpoint.post(request.as_bytes(), {"content-type": QUERY})
        except Exception as exc:  # the transport's failures: the TSA cannot be reached
            raise TimestampError(f"the TSA did not answer: {type(exc).__name__}: {exc}") from exc
        if answer.status_code != 200:
            raise TimestampError(f"the TSA answered HTTP {answer.status_code}")
        return verify_stamp(answer.content, message, self._roots, nonce=request.nonce)

    async def aclose(self) -> None:
        await self._peer.aclose()


def verify_stamp(
    token: bytes, message: bytes, roots: list[x509.Certificate], *, nonce: int | None = None
) -> Stamp:
    """Check a kept or fresh TSA answer against ``message`` and ``roots``; the stamp, or TimestampError."""
    try:
        response = rfc3161_client.decode_timestamp_response(token)
    except ValueError as exc:
        raise TimestampError(f"not a timestamp response: {exc}") from exc
    if response.status != 0:  # PKIStatus granted
        raise TimestampError(f"the TSA refused: status {response.status} {response.status_string}")
    errors: list[str] = []
    for root in roots:  # one builder per root: the library takes the chain's end as given
        try:
            verifier = rfc3161_client.VerifierBuilder(roots=[root], nonce=nonce).build()
            if verifier.verify_message(response, message):
                return Stamp(base64.b64encode(token).decode(), response.tst_info.gen_time)
        except rfc3161_client.VerificationError as exc:
            errors.append(str(exc))
    raise TimestampError(f"the timestamp does not verify: {'; '.join(errors) or 'no root vouches for it'}")
