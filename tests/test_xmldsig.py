"""XML-DSig of the tax authority's invoices: sign, verify each signature on its own, refuse with a reason.

Certificates come from throwaway CAs made here (trustme, RSA keys): the province's CA, another CA, and an
expired signer. The invoice is shaped as the tax authority's messages are (docs/contracts.md): ``HDon``
declaring ``xmlns:inv`` and ``xmlns:ds``, ``DLHDon`` and ``MCCQT`` by ``Id``, signatures under ``DSCKS``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from lxml import etree

from lienthong.certs.xmldsig import (
    DS,
    MAX_REFERENCES,
    MAX_SIGNATURES,
    SignatureResult,
    SigningKey,
    TrustStore,
    Verification,
    sign,
    verify,
)
from lienthong.cli import main

INVOICE = """<?xml version="1.0" encoding="UTF-8"?>
<HDon xmlns:inv="http://laphoadon.gdt.gov.vn/2014/09/invoicexml/v1" xmlns:ds="http://www.w3.org/2000/09/xmldsig#">
  <DLHDon Id="HD-C26TAA-0000042">
    <TTChung><PBan>2.1.0</PBan><THDon>Biên lai thu phí, lệ phí</THDon><KHMSHDon>1</KHMSHDon>
      <KHHDon>C26TAA</KHHDon><SHDon>42</SHDon><NLap>2026-11-23</NLap><DVTTe>VND</DVTTe></TTChung>
    <NDHDon>
      <NBan><Ten>Sở Tư pháp (sandbox)</Ten><MST>0100000000</MST></NBan>
      <NMua><Ten>Người nộp phí thử nghiệm</Ten></NMua>
      <DSHHDVu><HHDVu><STT>1</STT><THHDVu>Lệ phí cấp phiếu lý lịch tư pháp</THHDVu><ThTien>200000</ThTien></HHDVu></DSHHDVu>
      <TToan><TgTTTBSo>200000</TgTTTBSo><TgTTTBChu>Hai trăm nghìn đồng</TgTTTBChu></TToan>
    </NDHDon>
  </DLHDon>
  <MCCQT Id="MCCQT-0001">00A1B2C3D4E5F60718293A4B5C6D7E8F90</MCCQT>
  <DSCKS><NBan/><NMua/><CQT/></DSCKS>
</HDon>
""".encode()
DATA_ID, MCCQT_ID = "HD-C26TAA-0000042", "MCCQT-0001"


def _rsa_ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.RSA, organization_name="Tỉnh thử nghiệm CA")


def _key(
    ca: trustme.CA, who: str, *, not_before: datetime | None = None, not_after: datetime | None = None
) -> SigningKey:
    leaf = ca.issue_cert(
        f"{who}@example.invalid", key_type=trustme.KeyType.RSA, not_before=not_before, not_after=not_after
    )
    return SigningKey.from_pem(leaf.private_key_pem.bytes(), leaf.cert_chain_pems[0].bytes())


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return _rsa_ca()


@pytest.fixture(scope="module")
def trust(ca: trustme.CA) -> TrustStore:
    return TrustStore((x509.load_pem_x509_certificate(ca.cert_pem.bytes()),))


@pytest.fixture(scope="module")
def seller(ca: trustme.CA) -> SigningKey:
    return _key(ca, "seller")


@pytest.fixture(scope="module")
def three_signed(ca: trustme.CA, seller: SigningKey) -> bytes:
    """The invoice signed by its seller, its buyer, and the tax authority over DLHDon and MCCQT."""
    document = sign(INVOICE, seller)
    document = sign(document, _key(ca, "buyer"), signer="NMua", references=[DATA_ID])
    return sign(document, _key(ca, "authority"), signer="CQT", references=[DATA_ID, MCCQT_ID])


def _by_signer(result: Verification) -> dict[str, SignatureResult]:
    return {s.signer: s for s in result.signatures}


def test_a_signed_invoice_verifies_with_its_reference_digest_value_and_trusted_certificate(
    seller: SigningKey, trust: TrustStore
) -> None:
    result = verify(sign(INVOICE, seller), trust)

    assert result.valid, result
    (signature,) = result.signatures
    assert (signature.signer, signature.location) == ("NBan", "/HDon/DSCKS/NBan/Signature")
    assert [(r.uri, r.digest_valid, r.element) for r in signature.references] == [
        (f"#{DATA_ID}", True, "/HDon/DLHDon")
    ]
    assert signature.signature_valid
    assert signature.certificate.status == "trusted"


def test_the_signature_is_enveloped_rsa_sha256_inclusive_c14n_over_dlhdon(seller: SigningKey) -> None:
    root = etree.fromstring(sign(INVOICE, seller))
    ns = {"ds": DS}
    assert root.xpath(
        "string(DSCKS/NBan/ds:Signature/ds:SignedInfo/ds:SignatureMethod/@Algorithm)", namespaces=ns
    ) == ("http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
    assert root.xpath("string(//ds:CanonicalizationMethod/@Algorithm)", namespaces=ns) == (
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    )
    transforms = list(root.xpath("//ds:Reference/ds:Transforms/ds:Transform/@Algorithm", namespaces=ns))  # type: ignore[arg-type]
    assert f"{DS}enveloped-signature" in transforms
    assert root.xpath("string(//ds:Reference/@URI)", namespaces=ns) == f"#{DATA_ID}"


def test_three_signatures_are_each_reported_and_a_tampered_mccqt_fails_only_the_authoritys(
    three_signed: bytes, trust: TrustStore
) -> None:
    assert verify(three_signed, trust).valid
    tampered = three_signed.replace(
        b"00A1B2C3D4E5F60718293A4B5C6D7E8F90", b"00A1B2C3D4E5F60718293A4B5C6D7E8F91"
    )

    signatures = _by_signer(verify(tampered, trust))

    assert signatures["NBan"].valid
    assert signatures["NMua"].valid
    authority = signatures["CQT"]
    assert not authority.valid
    assert {r.uri: r.digest_valid for r in authority.references} == {
        f"#{DATA_ID}": True,
        f"#{MCCQT_ID}": False,
    }
    assert authority.signature_valid  # SignedInfo itself is intact


def test_tampered_content_is_refused_as_a_changed_digest(seller: SigningKey, trust: TrustStore) -> None:
    tampered = sign(INVOICE, seller).replace(b"<ThTien>200000</ThTien>", b"<ThTien>20000</ThTien>")

    (signature,) = verify(tampered, trust).signatures

    assert not signature.valid
    assert signature.references[0].digest_valid is False
    assert "the content was changed" in signature.references[0].problem


def test_a_signature_made_with_another_key_than_the_certificates_is_refused(
    ca: trustme.CA, seller: SigningKey, trust: TrustStore
) -> None:
    impostor = _key(ca, "impostor")
    wrong = SigningKey(impostor.key, seller.chain)  # the seller's certificate, someone else's key

    (signature,) = verify(sign(INVOICE, wrong), trust).signatures

    assert signature.references[0].digest_valid
    assert signature.signature_valid is False
    assert signature.certificate.status == "trusted"
    assert not signature.valid


def test_an_expired_certificate_is_reported_expired(ca: trustme.CA, trust: TrustStore) -> None:
    past = datetime.now(UTC) - timedelta(days=400)
    expired = _key(ca, "former-seller", not_before=past, not_after=past + timedelta(days=30))

    (signature,) = verify(sign(INVOICE, expired), trust).signatures

    assert signature.signature_valid
    assert signature.references[0].digest_valid
    assert signature.certificate.status == "expired"
    assert "expired on" in signature.certificate.problem
    assert not signature.valid


def test_a_certificate_from_another_ca_is_untrusted(trust: TrustStore) -> None:
    stranger = _key(_rsa_ca(), "stranger")

    (signature,) = verify(sign(INVOICE, stranger), trust).signatures

    assert signature.certificate.status == "untrusted"
    assert "does not chain to a trusted CA" in signature.certificate.problem
    assert not signature.valid


def test_without_a_trust_store_every_certificate_is_untrusted(seller: SigningKey) -> None:
    (signature,) = verify(sign(INVOICE, seller), TrustStore()).signatures
    assert signature.signature_valid
    assert (signature.certificate.status, signature.certificate.problem) == (
        "untrusted",
        "no trusted CA was given (--trust)",
    )


def test_wrapping_a_forged_dlhdon_where_the_invoice_is_read_is_refused(
    seller: SigningKey, trust: TrustStore
) -> None:
    # Given a validly signed invoice, when the signed DLHDon is moved aside (still there, still digesting)
    # and a forged one put where the application reads the invoice, then the signature does not cover it.
    root = etree.fromstring(sign(INVOICE, seller))
    original = root.find("DLHDon")
    assert original is not None
    forged = etree.fromstring(etree.tostring(original))
    forged.set("Id", "HD-FORGED")
    forged.find("NDHDon/TToan/TgTTTBSo").text = "1"  # type: ignore[union-attr]
    hidden = etree.SubElement(root, "TTKhac")
    hidden.append(original)
    root.insert(0, forged)

    (signature,) = verify(etree.tostring(root), trust).signatures

    assert signature.references[0].digest_valid
    assert signature.signature_valid
    assert not signature.valid
    assert any("signature wrapping" in p and "/HDon/DLHDon" in p for p in signature.problems), (
        signature.problems
    )


def test_a_duplicated_id_is_refused_as_wrapping(seller: SigningKey, trust: TrustStore) -> None:
    root = etree.fromstring(sign(INVOICE, seller))
    etree.SubElement(root, "TTKhac").append(etree.fromstring(etree.tostring(root.find("DLHDon"))))  # type: ignore[arg-type]

    (signature,) = verify(etree.tostring(root), trust).signatures

    assert signature.references[0].digest_valid is False
    assert "Ids must be unique" in signature.references[0].problem
    assert not signature.valid


def test_a_reference_outside_the_document_is_refused(seller: SigningKey, trust: TrustStore) -> None:
    signed = sign(INVOICE, seller).replace(f'URI="#{DATA_ID}"'.encode(), b'URI="http://127.0.0.1:9/x.xml"')

    (signature,) = verify(signed, trust).signatures

    assert "only same-document references by Id" in signature.references[0].problem
    assert not signature.valid


def test_a_reference_into_another_signature_is_refused(
    seller: SigningKey, ca: trustme.CA, trust: TrustStore
) -> None:
    # The seller's signature gets an Id; the buyer's then signs it (an element inside another signature).
    root = etree.fromstring(sign(INVOICE, seller))
    root.find(f"DSCKS/NBan/{{{DS}}}Signature/{{{DS}}}SignatureValue").set("Id", "seller-value")  # type: ignore[union-attr]
    signed = sign(etree.tostring(root), _key(ca, "buyer"), signer="NMua", references=["seller-value"])

    buyer = _by_signer(verify(signed, trust))["NMua"]

    assert "points into another signature" in buyer.references[0].problem


@pytest.mark.parametrize(
    "document",
    [
        b"",
        b"not xml at all",
        b"<HDon><DLHDon Id='a'/></HDon>",
        f'<HDon><ds:Signature xmlns:ds="{DS}"/></HDon>'.encode(),
        f'<HDon><Signature xmlns="{DS}"><SignedInfo><SignatureMethod Algorithm="x"/></SignedInfo>'
        f"<SignatureValue>!!</SignatureValue></Signature></HDon>".encode(),
        f'<HDon><DLHDon Id="a"/><Signature xmlns="{DS}"><SignedInfo>'
        f'<CanonicalizationMethod Algorithm="http://www.w3.org/TR/2001/REC-xml-c14n-20010315"/>'
        f'<SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>'
        f'<Reference URI="#a"><DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/>'
        f"<DigestValue>AAAA</DigestValue></Reference></SignedInfo><SignatureValue>AAAA</SignatureValue>"
        f"<KeyInfo><X509Data><X509Certificate>not base64!</X509Certificate></X509Data></KeyInfo>"
        f"</Signature></HDon>".encode(),
    ],
    ids=["empty", "not-xml", "unsigned", "empty-signature", "no-c14n-bad-base64", "sha1-and-a-broken-cert"],
)
def test_a_document_that_cannot_be_fully_verified_gives_a_result_saying_why(
    document: bytes, trust: TrustStore
) -> None:
    result = verify(document, trust)

    assert not result.valid
    reasons = [*result.problems, *(p for s in result.signatures for p in s.problems)]
    reasons += [r.problem for s in result.signatures for r in s.references]
    assert any(reasons), result


def test_xml_verify_prints_each_signature_as_json(
    three_signed: bytes, ca: trustme.CA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invoice, ca_file = tmp_path / "invoice.xml", tmp_path / "ca.pem"
    invoice.write_bytes(three_signed)
    ca.cert_pem.write_to_path(str(ca_file))

    assert main(["xml", "verify", str(invoice), "--json", "--trust", str(ca_file)]) == 0

    printed = json.loads(capsys.readouterr().out)
    assert [s["signer"] for s in printed] == ["NBan", "NMua", "CQT"]
    assert printed[2]["references"] == {f"#{DATA_ID}": True, f"#{MCCQT_ID}": True}
    assert printed[0]["signature_valid"] is True
    assert printed[0]["certificate"]["status"] == "trusted"
    assert printed[0]["certificate"]["not_after"].endswith("+07:00")


def test_xml_verify_exits_1_for_a_signature_that_is_not_valid_and_2_for_no_file(
    three_signed: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    invoice = tmp_path / "invoice.xml"
    invoice.write_bytes(three_signed)

    assert main(["xml", "verify", str(invoice)]) == 1  # no --trust: untrusted
    assert "certificate: untrusted" in capsys.readouterr().out
    assert main(["xml", "verify", str(tmp_path / "missing.xml")]) == 2


def test_xml_sign_signs_an_invoice_that_xml_verify_accepts(ca: trustme.CA, tmp_path: Path) -> None:
    leaf = ca.issue_cert("seller@example.invalid", key_type=trustme.KeyType.RSA)
    paths = {name: tmp_path / name for name in ("invoice.xml", "key.pem", "cert.pem", "ca.pem", "signed.xml")}
    paths["invoice.xml"].write_bytes(INVOICE)
    leaf.private_key_pem.write_to_path(str(paths["key.pem"]))
    leaf.cert_chain_pems[0].write_to_path(str(paths["cert.pem"]))
    ca.cert_pem.write_to_path(str(paths["ca.pem"]))

    signing = ["xml", "sign", str(paths["invoice.xml"]), "--key", str(paths["key.pem"])]
    assert main([*signing, "--cert", str(paths["cert.pem"]), "--out", str(paths["signed.xml"])]) == 0
    assert main(["xml", "verify", str(paths["signed.xml"]), "--trust", str(paths["ca.pem"])]) == 0


def test_an_invoice_in_a_default_namespace_without_an_id_is_signed_and_verified(
    seller: SigningKey, trust: TrustStore
) -> None:
    # Some providers' invoices put HDon in a namespace and leave DLHDon's Id to the signer.
    document = (
        b'<HDon xmlns="http://hoadondientu.gdt.gov.vn/2021/MLT"><DLHDon><SHDon>7</SHDon></DLHDon></HDon>'
    )

    result = verify(sign(document, seller), trust)

    assert result.valid, result
    assert result.signatures[0].references[0].uri == "#DLHDon"
    assert result.signatures[0].location == "/HDon/DSCKS/NBan/Signature"


def test_a_document_of_many_signatures_or_references_is_refused_before_any_canonicalization(
    seller: SigningKey, trust: TrustStore
) -> None:
    # Each reference costs a C14N of what it names: thousands over a large root would be a denial of service.
    signed = sign(INVOICE, seller)
    root = etree.fromstring(signed)
    signature = root.find(f"DSCKS/NBan/{{{DS}}}Signature")
    assert signature is not None
    reference = signature.find(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    assert reference is not None
    for _ in range(MAX_REFERENCES):
        reference.addnext(etree.fromstring(etree.tostring(reference)))
    (many_references,) = verify(etree.tostring(root), trust).signatures
    assert f"more than {MAX_REFERENCES} references" in many_references.problems[0]

    copies = b"".join([signed.split(b"<DSCKS>")[1].split(b"</DSCKS>")[0]] * (MAX_SIGNATURES + 1))
    crowded = signed.replace(b"</DSCKS>", copies + b"</DSCKS>")
    result = verify(crowded, trust)
    assert result.signatures == ()
    assert f"more than {MAX_SIGNATURES}" in result.problems[0]
