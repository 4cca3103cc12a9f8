"""XML-DSig of a typical invoice: signs and verifies per second, against signxml's plain signer and verifier.

The invoice is shaped as the tax authority's (``HDon`` declaring ``xmlns:inv`` and ``xmlns:ds``, ``DLHDon``
by ``Id``, 20 lines of goods, about 6 KB), the key RSA 2048 from a throwaway CA. In one run:

- sign: ``certs.xmldsig.sign`` (the signature at ``DSCKS/NBan``), against signxml's ``XMLSigner`` with
  the same algorithms over the same ``DLHDon`` (its signature appended to the root);
- verify: ``certs.xmldsig.verify`` (each signature, its certificate chained to the CA, wrapping checks),
  against signxml's ``XMLVerifier`` with the same CA file on signxml's own signed document.

The ratio is our rate over signxml's: what our placement, per-signature report and checks cost.
``--smoke`` runs 20 of each (it works); the default is 300.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trustme
from cryptography import x509
from lxml import etree
from signxml.algorithms import CanonicalizationMethod
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, XMLVerifier

from lienthong.certs.xmldsig import SigningKey, TrustStore, sign, verify

LINE = (
    "<HHDVu><TChat>1</TChat><STT>{n}</STT><MHHDVu>LP-{n:03d}</MHHDVu>"
    "<THHDVu>Lệ phí cấp bản sao trích lục hộ tịch, bản số {n}</THHDVu><DVTinh>Bản</DVTinh>"
    "<SLuong>1</SLuong><DGia>8000</DGia><ThTien>8000</ThTien><TSuat>KCT</TSuat></HHDVu>"
)


def invoice(lines: int = 20) -> bytes:
    goods = "".join(LINE.format(n=n) for n in range(1, lines + 1))
    return (
        '<HDon xmlns:inv="http://laphoadon.gdt.gov.vn/2014/09/invoicexml/v1" '
        'xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><DLHDon Id="HD-C26TAA-0000042"><TTChung>'
        "<PBan>2.1.0</PBan><THDon>Biên lai thu phí, lệ phí</THDon><KHMSHDon>1</KHMSHDon><KHHDon>C26TAA</KHHDon>"
        "<SHDon>42</SHDon><NLap>2026-11-23</NLap><DVTTe>VND</DVTTe><TGia>1</TGia><HTTToan>CK</HTTToan></TTChung>"
        "<NDHDon><NBan><Ten>Sở Tư pháp tỉnh thử nghiệm</Ten><MST>0100000000</MST><DChi>Số 1, đường Thử</DChi>"
        f"</NBan><NMua><Ten>Người nộp phí thử nghiệm</Ten></NMua><DSHHDVu>{goods}</DSHHDVu><TToan>"
        f"<TgTCThue>{8000 * lines}</TgTCThue><TgTThue>0</TgTThue><TgTTTBSo>{8000 * lines}</TgTTTBSo>"
        "<TgTTTBChu>Một trăm sáu mươi nghìn đồng</TgTTTBChu></TToan></NDHDon></DLHDon>"
        '<MCCQT Id="MCCQT-0001">00A1B2C3D4E5F60718293A4B5C6D7E8F90</MCCQT><DSCKS><NBan/><NMua/><CQT/></DSCKS></HDon>'
    ).encode()


def rate(fn: Callable[[], object], n: int) -> float:
    """Calls per second, the best of three rounds of ``n``."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, time.perf_counter() - started)
    return n / best


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", type=int, default=300, help="signs and verifies per round (3 rounds)")
    parser.add_argument("--smoke", action="store_true", help="20 per round: checks the benchmark works")
    args = parser.parse_args()
    n = 20 if args.smoke else args.n

    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = ca.issue_cert("seller@example.invalid", key_type=trustme.KeyType.RSA)
    key = SigningKey.from_pem(leaf.private_key_pem.bytes(), leaf.cert_chain_pems[0].bytes())
    trust = TrustStore((x509.load_pem_x509_certificate(ca.cert_pem.bytes()),))
    document = invoice()
    ours = sign(document, key)
    assert verify(ours, trust).valid

    plain = XMLSigner(
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    cert_pem = leaf.cert_chain_pems[0].bytes().decode()
    root = etree.fromstring(document)

    def plain_sign() -> etree._Element:
        return plain.sign(root, key=key.key, cert=[cert_pem], reference_uri="#HD-C26TAA-0000042")

    theirs = etree.tostring(plain_sign())
    with tempfile.TemporaryDirectory() as where:
        ca_file = Path(where) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        config = SignatureConfiguration(location="./")

        def plain_verify() -> object:
            return XMLVerifier().verify(theirs, ca_pem_file=str(ca_file), expect_config=config)

        plain_verify()
        sign_ours, sign_theirs = rate(lambda: sign(document, key), n), rate(plain_sign, n)
        verify_ours, verify_theirs = rate(lambda: verify(ours, trust), n), rate(plain_verify, n)

    print(f"xml-dsig benchmark: an invoice of {len(document):,} bytes, RSA 2048, {n} per round (best of 3)")
    print(
        f"  sign     ours {sign_ours:8,.0f}/s   signxml XMLSigner   {sign_theirs:8,.0f}/s   ours/signxml {sign_ours / sign_theirs:.2f}"
    )
    print(
        f"  verify   ours {verify_ours:8,.0f}/s   signxml XMLVerifier {verify_theirs:8,.0f}/s"
        f"   ours/signxml {verify_ours / verify_theirs:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
