"""PDF signatures of result documents (issue 13 §2; decision 0022): is this result signed, by whom the
configured trust roots vouch for, and unchanged since?

``verify`` reads a PDF with pyHanko and validates each embedded signature (at most ``MAX_SIGNATURES``)
against a ``TrustStore`` at ``now``, and answers one ``PdfVerdict`` for the document:

- ``signed_valid``: every signature intact, its signer's certificate chaining to a trust root and valid at
  ``now`` (at the time of its timestamp when it carries one), and nothing changed after it but what
  PDF allows (further signatures, form filling);
- ``signed_untrusted``: intact, but the certificate does not chain to a trust root, or has expired;
- ``modified_after_signing``: the signed bytes changed (digest), the signature value does not verify, or
  content was changed by an incremental update after the signature;
- ``unsigned``: a readable PDF without a signature;
- ``unreadable``: too large, not a PDF, or a PDF pyHanko cannot read (the detail says why).

Nothing raises: a hostile document (huge, deeply nested, malformed, a decompression bomb) gives
``unreadable``. Bytes are capped before parsing (``max_bytes``); pyHanko's decoders are bounded
(``DECODE_LIMITS``); nesting ends in a RecursionError, caught. Nothing is fetched: no OCSP, CRL or
issuer certificate from the network (revocation is not checked, decision 0022). Validation is CPU work,
and pyHanko runs it on an event loop of its own: callers run ``verify`` on a thread (``adapters.results``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils.decode_limits import DecodeLimits, DocumentDecodeBudget, StreamDecodeLimits
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureCoverageLevel, SignatureStatus
from pyhanko_certvalidator import ValidationContext

from lienthong.certs.xmldsig import TrustStore

Verdict = Literal["signed_valid", "signed_untrusted", "modified_after_signing", "unsigned", "unreadable"]
VERDICTS: tuple[Verdict, ...] = (
    "signed_valid",
    "signed_untrusted",
    "modified_after_signing",
    "unsigned",
    "unreadable",
)
WORST_FIRST: tuple[Verdict, ...] = (
    "modified_after_signing",
    "unsigned",
    "signed_untrusted",
    "unreadable",
    "signed_valid",
)
"""Which verdict speaks for several (signatures of a document, documents of a dossier): the first found."""

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
"""The largest document read, in bytes (20 MiB): a result PDF of a few pages weighs well under 1 MiB."""
MAX_SIGNATURES = 16
"""Signatures validated in one document: each one hashes the whole file and walks its revisions."""
MIB = 1024 * 1024
DECODE_LIMITS = DecodeLimits(
    per_stream=StreamDecodeLimits(max_output_size=64 * MIB),
    document_budget=DocumentDecodeBudget(base_allowance=128 * MIB, max_ratio=20),
)
"""pyHanko's stream decoders, bounded tighter than its defaults for untrusted input (256 MiB a stream):
no stream decodes past 64 MiB, the whole document past 128 MiB (or 20 times its size)."""


@dataclass(frozen=True)
class PdfVerdict:
    """A document's verdict, and why: the signers (subjects) when signed, the problem otherwise."""

    verdict: Verdict
    detail: str

    @classmethod
    def unreadable(cls, why: str) -> PdfVerdict:
        return cls("unreadable", why)


def worst(verdicts: Sequence[Verdict]) -> Verdict:
    """The verdict that speaks for all of ``verdicts`` (``WORST_FIRST``); ``unsigned`` for none."""
    return next((v for v in WORST_FIRST if v in verdicts), "unsigned")


def verify(
    data: bytes, trust: TrustStore, *, now: datetime, max_bytes: int = DEFAULT_MAX_BYTES
) -> PdfVerdict:
    """The verdict on the PDF ``data`` against ``trust`` at ``now`` (aware). Never raises."""
    if len(data) > max_bytes:
        return PdfVerdict.unreadable(f"{len(data):,} bytes, over the limit of {max_bytes:,}: not read")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False, decode_limits=DECODE_LIMITS)
        signatures = reader.embedded_signatures
    # pyHanko raises its own errors, ValueErrors and KeyErrors of malformed structures, and RecursionError
    # for deep nesting: whatever a hostile file provokes, it is an unreadable document, never a crash.
    except Exception as exc:
        return PdfVerdict.unreadable(f"not a readable PDF: {_why(exc)}")
    if not signatures:
        return PdfVerdict("unsigned", "a PDF without a signature")
    if len(signatures) > MAX_SIGNATURES:
        return PdfVerdict.unreadable(f"{len(signatures)} signatures, over the limit of {MAX_SIGNATURES}")
    context = ValidationContext(trust_roots=_roots(trust), allow_fetching=False, moment=now)
    judged: list[PdfVerdict] = []
    for signature in signatures:
        try:
            status = validate_pdf_signature(signature, context)
        except Exception as exc:  # same reasons as above, raised while validating
            return PdfVerdict.unreadable(f"signature {signature.field_name!r} cannot be read: {_why(exc)}")
        judged.append(_judge(signature.field_name, status, now))
    verdict = worst([j.verdict for j in judged])
    return PdfVerdict(verdict, "; ".join(j.detail for j in judged if j.verdict == verdict))


def _judge(field: str, status: PdfSignatureStatus, now: datetime) -> PdfVerdict:
    signer = _subject(status)
    if not status.intact:
        return PdfVerdict("modified_after_signing", f"{field}: the signed bytes changed (digest differs)")
    if not status.valid:
        return PdfVerdict("modified_after_signing", f"{field}: the signature value does not verify")
    if status.coverage not in (SignatureCoverageLevel.ENTIRE_FILE, SignatureCoverageLevel.ENTIRE_REVISION):
        return PdfVerdict("modified_after_signing", f"{field}: the signature does not cover its revision")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE and not status.docmdp_ok:
        level = status.modification_level.name.lower() if status.modification_level else "unknown"
        return PdfVerdict(
            "modified_after_signing", f"{field}: changed after signing by {signer} (modifications: {level})"
        )
    if not status.trusted:
        return PdfVerdict("signed_untrusted", f"{field}: {signer}, {_distrust(status, now)}")
    return PdfVerdict("signed_valid", f"{field}: signed by {signer}")


def _distrust(status: SignatureStatus, now: datetime) -> str:
    not_after: datetime = status.signing_cert.not_valid_after
    if not_after < now:
        return f"certificate expired on {not_after.isoformat()}"
    if status.signing_cert.not_valid_before > now:
        return f"certificate not valid before {status.signing_cert.not_valid_before.isoformat()}"
    problem = status.trust_problem_indic
    reason = str(problem.standard_name).lower().replace("_", " ") if problem is not None else "not trusted"
    return f"does not chain to a configured trust root ({reason})"


def _subject(status: SignatureStatus) -> str:
    return str(status.signing_cert.subject.human_friendly)


def _roots(trust: TrustStore) -> list[asn1_x509.Certificate]:
    return [asn1_x509.Certificate.load(c.public_bytes(Encoding.DER)) for c in trust.certificates]


def _why(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ")[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
