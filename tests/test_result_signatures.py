"""PDF signatures of result documents (issue 13 §2, decision 0022): ``certs.pdf.verify`` on real PDFs made
here and signed with pyHanko under throwaway CAs, and on hostile files that must be ``unreadable`` without a
crash or a hang. The helpers (``Pki``, ``blank_pdf``…) serve the other test_result_signatures_* files."""

# pyHanko's PDF writer and certificate registry are untyped: building test documents calls them.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import io
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.writer import PdfFileWriter
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from lienthong.certs.pdf import VERDICTS, PdfVerdict, verify, worst
from lienthong.certs.xmldsig import TrustStore

NOW = datetime.now(UTC)
TEXT = b"(Ket qua giai quyet ho so)"


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=not ca,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class Pki:
    """A throwaway CA, made at test time."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def make(cls, name: str = "Test Government CA") -> Pki:
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - timedelta(days=400))
            .not_valid_after(NOW + timedelta(days=400))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_usage(ca=True), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def trust(self) -> TrustStore:
        return TrustStore((self.certificate,))

    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def signer(self, name: str = "Official Nguyen Van A", *, expired: bool = False) -> signers.SimpleSigner:
        """An official's signer; ``expired``: a certificate that ended two days ago."""
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = (
            (NOW - timedelta(days=30), NOW - timedelta(days=2))
            if expired
            else (NOW, NOW + timedelta(days=365))
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start - timedelta(days=1))
            .not_valid_after(end)
            .add_extension(_usage(ca=False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        der_key = key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return signers.SimpleSigner(
            signing_cert=_asn1(certificate),
            signing_key=asn1_keys.PrivateKeyInfo.load(der_key),
            cert_registry=SimpleCertificateStore.from_certs([_asn1(self.certificate)]),
        )


def _asn1(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def blank_pdf(text: bytes = TEXT) -> bytes:
    """A one-page PDF showing ``text``."""
    writer = PdfFileWriter()
    contents = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td " + text + b" Tj ET")
    page = generic.DictionaryObject(
        {
            generic.NameObject("/Type"): generic.NameObject("/Page"),
            generic.NameObject("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(n) for n in (0, 0, 595, 842)]
            ),
            generic.NameObject("/Contents"): writer.add_object(contents),
            generic.NameObject("/Resources"): generic.DictionaryObject(),
        }
    )
    writer.insert_page(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def sign(pdf: bytes, signer: signers.SimpleSigner, field: str = "Signature1") -> bytes:
    meta = signers.PdfSignatureMetadata(field_name=field)
    out: io.BytesIO = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=signer)
    return out.getvalue()


def changed_after_signing(signed: bytes) -> bytes:
    """An incremental update after the signature that replaces the page's content: the signed revision
    is intact, the document shown is not the one signed."""
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    page = writer.root["/Pages"]["/Kids"][0].get_object()
    forged = generic.StreamObject(stream_data=b"BT /F1 12 Tf 72 720 Td (Forged result) Tj ET")
    page[generic.NameObject("/Contents")] = writer.add_object(forged)
    writer.update_container(page)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def tampered(signed: bytes) -> bytes:
    """The same length, one signed byte changed: the signature's digest no longer matches."""
    at = signed.index(TEXT)
    return signed[:at] + TEXT.replace(b"Ket", b"KET") + signed[at + len(TEXT) :]


def _pdf_around(objects: list[bytes]) -> bytes:
    """A PDF of ``objects`` (numbered from 1, the first the catalog) with a correct xref table."""
    body = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, content in enumerate(objects, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + content + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(body)


PAGES = b"<< /Type /Pages /Kids [] /Count 0 >>"


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki.make()


@pytest.fixture(scope="module")
def signed(pki: Pki) -> bytes:
    return sign(blank_pdf(), pki.signer())


def test_a_pdf_signed_by_an_official_under_a_trust_root_is_signed_valid(pki: Pki, signed: bytes) -> None:
    verdict = verify(signed, pki.trust(), now=NOW)
    assert verdict.verdict == "signed_valid", verdict
    assert "Official Nguyen Van A" in verdict.detail


def test_content_changed_by_an_update_after_the_signature_is_modified_after_signing(
    pki: Pki, signed: bytes
) -> None:
    verdict = verify(changed_after_signing(signed), pki.trust(), now=NOW)
    assert verdict.verdict == "modified_after_signing", verdict
    assert "changed after signing" in verdict.detail


def test_a_signed_byte_changed_is_modified_after_signing(pki: Pki, signed: bytes) -> None:
    verdict = verify(tampered(signed), pki.trust(), now=NOW)
    assert verdict == PdfVerdict(
        "modified_after_signing", "Signature1: the signed bytes changed (digest differs)"
    )


def test_a_pdf_without_a_signature_is_unsigned(pki: Pki) -> None:
    assert verify(blank_pdf(), pki.trust(), now=NOW).verdict == "unsigned"


def test_a_signature_from_a_ca_not_configured_is_signed_untrusted(pki: Pki) -> None:
    stranger = Pki.make("Some Other CA")
    verdict = verify(sign(blank_pdf(), stranger.signer()), pki.trust(), now=NOW)
    assert verdict.verdict == "signed_untrusted"
    assert "does not chain to a configured trust root" in verdict.detail


def test_a_certificate_expired_before_the_check_is_signed_untrusted_and_says_so(pki: Pki) -> None:
    verdict = verify(sign(blank_pdf(), pki.signer(expired=True)), pki.trust(), now=NOW)
    assert verdict.verdict == "signed_untrusted"
    assert "certificate expired on" in verdict.detail


def test_a_valid_signature_judged_after_its_certificate_ended_is_no_longer_valid(
    pki: Pki, signed: bytes
) -> None:
    # The same document, checked two years on: time is an input, not the machine's clock.
    later = verify(signed, pki.trust(), now=NOW + timedelta(days=730))
    assert later.verdict == "signed_untrusted"
    assert "expired" in later.detail


def test_two_signatures_the_second_untrusted_make_the_document_untrusted(pki: Pki, signed: bytes) -> None:
    stranger = Pki.make("Some Other CA")
    both = sign(signed, stranger.signer("Clerk"), field="Signature2")
    verdict = verify(both, pki.trust(), now=NOW)
    assert verdict.verdict == "signed_untrusted"
    assert "Signature2" in verdict.detail


def test_the_worst_verdict_speaks_for_several() -> None:
    assert worst(["signed_valid", "signed_untrusted"]) == "signed_untrusted"
    assert worst(["unreadable", "modified_after_signing", "signed_valid"]) == "modified_after_signing"
    assert worst(["signed_valid", "signed_valid"]) == "signed_valid"
    assert worst([]) == "unsigned"
    assert set(VERDICTS) == {
        "signed_valid",
        "signed_untrusted",
        "modified_after_signing",
        "unsigned",
        "unreadable",
    }


# -- hostile documents: unreadable, quickly, never an exception ----------------------------------------------
def test_a_document_over_the_cap_is_refused_before_parsing(pki: Pki) -> None:
    started = time.monotonic()
    verdict = verify(b"%PDF-1.7\n" + b"0" * 5_000_000, pki.trust(), now=NOW, max_bytes=1_000_000)
    assert verdict.verdict == "unreadable"
    assert "over the limit of 1,000,000" in verdict.detail
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty", b""),
        ("not a pdf", b"<html>an error page</html>"),
        ("header only", b"%PDF-1.7\n"),
        ("truncated", b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R"),
        (
            "deep arrays",
            _pdf_around(
                [b"<< /Type /Catalog /Pages 2 0 R /X " + b"[" * 100_000 + b"]" * 100_000 + b" >>", PAGES]
            ),
        ),
        (
            "deep dictionaries",
            _pdf_around(
                [b"<< /Type /Catalog /Pages 2 0 R /X " + b"<< /A " * 50_000 + b">>" * 50_000 + b" >>", PAGES]
            ),
        ),
        (
            "form fields in a loop",
            _pdf_around(
                [
                    b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [3 0 R] >> >>",
                    PAGES,
                    b"<< /Kids [3 0 R] /T (a) >>",
                ]
            ),
        ),
    ],
)
def test_a_hostile_or_broken_document_is_unreadable(name: str, data: bytes, pki: Pki) -> None:
    started = time.monotonic()
    verdict = verify(data, pki.trust(), now=NOW)
    assert verdict.verdict in ("unreadable", "unsigned"), (name, verdict)
    if name != "deep dictionaries":  # pyHanko reads that one as a PDF without a signature: also no crash
        assert verdict.verdict == "unreadable", (name, verdict)
        assert verdict.detail.startswith("not a readable PDF"), verdict.detail
    assert time.monotonic() - started < 10


def test_a_decompression_bomb_is_unreadable_not_inflated(pki: Pki) -> None:
    # A cross-reference stream of 300 MB of zeros compressed to ~300 kB: pyHanko decodes it to open the
    # file, and its decoders' caps (certs.pdf.DECODE_LIMITS) stop it within a few kB.
    bomb = zlib.compress(b"\0" * 300_000_000, 9)
    body = bytearray(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
    body += b"2 0 obj\n" + PAGES + b"\nendobj\n"
    xref = len(body)
    body += b"3 0 obj\n<< /Type /XRef /Size 4 /W [1 4 2] /Root 1 0 R /Length %d /Filter /FlateDecode >>\n" % (
        len(bomb)
    )
    body += b"stream\n" + bomb + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % xref
    started = time.monotonic()
    verdict = verify(bytes(body), pki.trust(), now=NOW)
    assert verdict.verdict == "unreadable", verdict
    assert "PdfDecodeLimitError" in verdict.detail
    assert time.monotonic() - started < 5
