"""XML-DSig for the tax authority's e-invoice documents (issue 13 §2; decision 0018).

**Signing** (``sign``): enveloped, RSA-SHA256, inclusive C14N 1.0, SHA-256 digests, over the invoice data
``DLHDon`` referenced by its ``Id``, the signature placed at ``DSCKS/NBan`` with the signer's certificate in
``KeyInfo/X509Data``: the shape of the tax authority's own messages (docs/contracts.md). signxml's
``XMLSigner`` builds the signature.

**Verifying** (``verify``): every ``ds:Signature`` of a document, each checked on its own, with a result per
signature: per reference its digest, the signature value, and the certificate against a ``TrustStore``
(trusted, untrusted, expired, or unknown when the signature carries none). Nothing raises: a document that
cannot be read, or read to the end, gives a result saying why.

signxml's ``XMLVerifier`` is not used to verify, by hand instead on lxml and cryptography, because it
verifies one signature (the first, or one at a fixed path) and stops at the first failure with one
exception, checking the certificate chain before anything else: it cannot report, for each of the three
signatures of an invoice, which digest, which signature value and which certificate failed.

**Signature wrapping** is refused: references are same-document ``#Id`` only, resolved among the
``Id``/``ID``/``id`` attributes of the whole document, and an Id carried twice is refused; a reference may
not point into another signature; and in an invoice (``HDon``) the ``DLHDon`` (and ``MCCQT``) the
application reads must be the very elements the signatures cover.

Canonicalization is lxml's (libxml2's) C14N of the referenced element: namespaces declared on ancestors
(``xmlns:inv``, ``xmlns:ds`` on ``HDon``) are carried into it, as inclusive C14N requires; ``xml:*``
attributes of ancestors are not, so a document that relies on them fails to verify (refused, never
wrongly accepted).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509 import verification
from lxml import etree

from lienthong import xmlsafe
from lienthong.errors import ConfigError

DS = "http://www.w3.org/2000/09/xmldsig#"
C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_COMMENTS = C14N + "#WithComments"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS = EXC_C14N + "WithComments"
ENVELOPED = DS + "enveloped-signature"
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"

_DIGESTS: dict[str, str] = {
    SHA256: "sha256",
    "http://www.w3.org/2001/04/xmldsig-more#sha384": "sha384",
    "http://www.w3.org/2001/04/xmlenc#sha512": "sha512",
}
_SIGNATURES: dict[str, tuple[str, hashes.HashAlgorithm]] = {
    RSA_SHA256: ("rsa", hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384": ("rsa", hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512": ("rsa", hashes.SHA512()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": ("ec", hashes.SHA256()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": ("ec", hashes.SHA384()),
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": ("ec", hashes.SHA512()),
}
_C14NS: dict[str, bool] = {C14N: False, C14N_COMMENTS: False, EXC_C14N: True, EXC_C14N_COMMENTS: True}
"""Canonicalization methods and whether each is exclusive."""
_ID_ATTRIBUTES = ("Id", "ID", "id")
_COVERS: dict[str, tuple[str, ...]] = {"NBan": ("DLHDon",), "NMua": ("DLHDon",), "CQT": ("DLHDon", "MCCQT")}
"""In an invoice (``HDon``), what each signer's signature must cover: the elements the application reads."""

MAX_SIGNATURES = 16
"""Signatures read in one document (an invoice has three): each reference costs a C14N of what it names,
so a document of thousands of signatures over its root is refused rather than canonicalized thousands of
times."""
MAX_REFERENCES = 16
"""References read in one signature (the tax authority's has three)."""

SIGNED_LIMITS = xmlsafe.XmlLimits(max_bytes=10 * 1_048_576)
"""A signed document read by ``verify``: 10 MiB (an invoice with its signatures is 10 to 50 KB)."""

Status = Literal["trusted", "untrusted", "expired", "unknown"]


@dataclass(frozen=True)
class TrustStore:
    """The CA certificates signers' certificates must chain to."""

    certificates: tuple[x509.Certificate, ...] = ()

    @classmethod
    def from_pem_files(cls, paths: Sequence[str | Path]) -> TrustStore:
        """Every certificate of every PEM file in ``paths``; ConfigError naming a file that is not one."""
        found: list[x509.Certificate] = []
        for path in paths:
            try:
                found.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
            except (OSError, ValueError) as exc:
                raise ConfigError.single(str(path), f"not a readable PEM CA certificate file: {exc}") from exc
        return cls(tuple(found))


@dataclass(frozen=True)
class SigningKey:
    """A private key and its certificate chain (the signer's certificate first), loaded from PEM."""

    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...]

    @classmethod
    def from_pem(cls, key_pem: bytes, cert_pem: bytes, *, password: bytes | None = None) -> SigningKey:
        """Raises ConfigError for a key that is not RSA or does not match the first certificate."""
        try:
            key = serialization.load_pem_private_key(key_pem, password=password)
            chain = tuple(x509.load_pem_x509_certificates(cert_pem))
        except (ValueError, TypeError) as exc:
            raise ConfigError.single("key", f"cannot load the key or certificate: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ConfigError.single("key", "the key is not RSA: invoices are signed RSA-SHA256")
        if chain[0].public_key() != key.public_key():
            raise ConfigError.single("cert", "the certificate is not the key's (its public key differs)")
        return cls(key, chain)

    @classmethod
    def from_files(
        cls, key_file: str | Path, cert_file: str | Path, *, password: bytes | None = None
    ) -> SigningKey:
        """The key and chain in two PEM files; OSError for a file that cannot be read."""
        key_pem, cert_pem = Path(key_file).read_bytes(), Path(cert_file).read_bytes()
        return cls.from_pem(key_pem, cert_pem, password=password)


@dataclass(frozen=True)
class ReferenceResult:
    """One reference: its ``uri``, whether the digest matches, the element it resolved to, and why not."""

    uri: str
    digest_valid: bool
    element: str = ""
    problem: str = ""


@dataclass(frozen=True)
class CertificateResult:
    """The signer's certificate: ``subject`` (RFC 4514), ``not_after``, ``status``, and why if not trusted."""

    subject: str = ""
    not_after: datetime | None = None
    status: Status = "unknown"
    problem: str = ""


@dataclass(frozen=True)
class SignatureResult:
    """One signature: ``signer`` (the element holding it: NBan, NMua, CQT), where it is, its references,
    whether its value verifies with the certificate's key, the certificate, and any other ``problems``
    (an algorithm refused, signature wrapping)."""

    signer: str
    location: str
    references: tuple[ReferenceResult, ...]
    signature_valid: bool
    certificate: CertificateResult
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        """Valid and trusted: every digest, the value, a trusted certificate, no problem."""
        digests = bool(self.references) and all(r.digest_valid for r in self.references)
        return digests and self.signature_valid and self.certificate.status == "trusted" and not self.problems


@dataclass(frozen=True)
class Verification:
    """Every signature of a document, and ``problems`` of the document itself (not XML, no signature)."""

    signatures: tuple[SignatureResult, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def valid(self) -> bool:
        return bool(self.signatures) and not self.problems and all(s.valid for s in self.signatures)


def sign(document: bytes, key: SigningKey, *, references: Sequence[str] = (), signer: str = "NBan") -> bytes:
    """``document`` signed by ``key``: an enveloped signature at ``DSCKS/<signer>`` over the elements whose
    ``Id`` are ``references``, by default the root's ``DLHDon`` (given ``Id="DLHDon"`` if it has none).
    Raises XmlError for a document xmlsafe refuses, ValueError for one that cannot be signed so."""
    from signxml.algorithms import CanonicalizationMethod  # noqa: PLC0415
    from signxml.exceptions import SignXMLException  # noqa: PLC0415
    from signxml.signer import XMLSigner  # noqa: PLC0415 (165 ms to import: only when signing)

    root = xmlsafe.parse(document, source="the document", limits=SIGNED_LIMITS)
    uris = [f"#{i}" for i in references] or [f"#{_data_id(root)}"]
    nsmap: Any = {None: DS}  # unprefixed, as the tax authority writes its signatures
    placeholder = etree.SubElement(_signer_slot(root, signer), f"{{{DS}}}Signature", nsmap=nsmap)
    placeholder.set("Id", "placeholder")  # signxml's mark of where an enveloped signature goes
    xml_signer = XMLSigner(
        signature_algorithm="rsa-sha256",
        digest_algorithm="sha256",
        c14n_algorithm=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    cert_pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in key.chain]
    try:
        signed = xml_signer.sign(root, key=key.key, cert=cert_pems, reference_uri=uris)
    except SignXMLException as exc:
        raise ValueError(f"cannot sign {', '.join(uris)}: {exc}") from exc
    return bytes(etree.tostring(signed, xml_declaration=True, encoding="UTF-8"))


def verify(
    data: bytes,
    trust: TrustStore,
    *,
    now: datetime | None = None,
    source: str = "the document",
    limits: xmlsafe.XmlLimits = SIGNED_LIMITS,
) -> Verification:
    """Every signature of ``data``, each checked on its own against ``trust`` at ``now`` (default: the
    current time). Never raises for what the document holds: problems are in the result."""
    try:
        root = xmlsafe.parse(data, source=source, limits=limits)
    except xmlsafe.XmlError as exc:
        return Verification(problems=(str(exc),))
    signatures = list(root.iter(f"{{{DS}}}Signature"))
    if not signatures:
        return Verification(problems=(f"{source}: carries no XML signature (ds:Signature)",))
    if len(signatures) > MAX_SIGNATURES:
        return Verification(
            problems=(f"{source}: carries {len(signatures)} signatures, more than {MAX_SIGNATURES}",)
        )
    ids = _ids(root)
    at = now or datetime.now(UTC)
    return Verification(tuple(_checked(sig, root, ids, trust, at) for sig in signatures))


def _checked(
    signature: etree._Element,
    root: etree._Element,
    ids: dict[str, list[etree._Element]],
    trust: TrustStore,
    now: datetime,
) -> SignatureResult:
    try:
        return _Check(signature, root, ids).result(trust, now)
    except Exception as exc:  # a document we cannot read to the end gives a result, never a crash
        parent = signature.getparent()
        signer = etree.QName(parent).localname if parent is not None else ""
        return SignatureResult(
            signer, _path(signature), (), False, CertificateResult(), (f"cannot be read: {exc}",)
        )


class _Check:
    """One signature's check: its references, its value, its certificate, and wrapping."""

    def __init__(
        self, signature: etree._Element, root: etree._Element, ids: dict[str, list[etree._Element]]
    ) -> None:
        self.signature, self.root, self.ids = signature, root, ids
        self.problems: list[str] = []
        parent = signature.getparent()
        self.signer = etree.QName(parent).localname if parent is not None else ""

    def result(self, trust: TrustStore, now: datetime) -> SignatureResult:
        signed_info = self._one("SignedInfo")
        covered: list[etree._Element] = []
        if len(signed_info.findall(f"{{{DS}}}Reference")) > MAX_REFERENCES:
            raise ValueError(f"the signature has more than {MAX_REFERENCES} references")
        references = tuple(
            self._reference(ref, covered) for ref in signed_info.iterfind(f"{{{DS}}}Reference")
        )
        if not references:
            self.problems.append("the signature has no Reference")
        certificates = self._certificates()
        valid = self._value(signed_info, certificates[0] if certificates else None)
        self._wrapping(covered)
        certificate = _certificate(certificates, trust, now)
        return SignatureResult(
            self.signer, _path(self.signature), references, valid, certificate, tuple(self.problems)
        )

    def _one(self, name: str, within: etree._Element | None = None) -> etree._Element:
        found = (within if within is not None else self.signature).findall(f"{{{DS}}}{name}")
        if len(found) != 1:
            raise ValueError(f"the signature has {len(found)} {name} elements, not one")
        return found[0]

    def _reference(self, reference: etree._Element, covered: list[etree._Element]) -> ReferenceResult:
        uri = reference.get("URI", "")
        element, problem = self._resolve(uri)
        if element is None:
            return ReferenceResult(uri, False, problem=problem)
        covered.append(element)
        where = _path(element)
        try:
            expected = base64.b64decode(self._one("DigestValue", reference).text or "", validate=True)
            digest = _digest(self._one("DigestMethod", reference).get("Algorithm", ""))
            actual = digest(self._transformed(element, reference))
        except (ValueError, binascii.Error) as exc:
            return ReferenceResult(uri, False, where, str(exc))
        if actual != expected:
            return ReferenceResult(uri, False, where, "the digest does not match: the content was changed")
        return ReferenceResult(uri, True, where)

    def _resolve(self, uri: str) -> tuple[etree._Element | None, str]:
        """The one element ``#id`` names in this document; or why none."""
        if not uri.startswith("#") or uri.startswith("#xpointer(") or len(uri) < 2:
            return None, f"reference {uri!r} refused: only same-document references by Id (#Id) are read"
        found = self.ids.get(uri[1:], [])
        if len(found) != 1:
            what = "no element" if not found else f"{len(found)} elements (signature wrapping)"
            return None, f"Id {uri[1:]!r} is carried by {what}: Ids must be unique"
        inside = next(
            (a for a in found[0].iterancestors(f"{{{DS}}}Signature") if a is not self.signature), None
        )
        if inside is not None:
            return None, f"{uri} points into another signature at {_path(inside)} (signature wrapping)"
        return found[0], ""

    def _transformed(self, element: etree._Element, reference: etree._Element) -> bytes:
        """The referenced element after its transforms: enveloped-signature, then one C14N (inclusive C14N
        1.0 when none is named). A bare-name reference (#Id) never carries comments."""
        exclusive, prefixes, enveloped = False, None, False
        for transform in reference.iterfind(f"{{{DS}}}Transforms/{{{DS}}}Transform"):
            algorithm = transform.get("Algorithm", "")
            if algorithm == ENVELOPED:
                enveloped = True
            elif algorithm in _C14NS:
                exclusive, prefixes = _C14NS[algorithm], _prefixes(transform)
            else:
                raise ValueError(f"transform {algorithm!r} is not supported")
        inside = enveloped and any(a is element for a in self.signature.iterancestors())
        without = self.signature if inside else None
        return _c14n(element, exclusive=exclusive, with_comments=False, prefixes=prefixes, without=without)

    def _certificates(self) -> list[x509.Certificate]:
        texts = [
            e.text or ""
            for e in self.signature.iterfind(f"{{{DS}}}KeyInfo/{{{DS}}}X509Data/{{{DS}}}X509Certificate")
        ]
        certificates = [x509.load_der_x509_certificate(base64.b64decode("".join(t.split()))) for t in texts]
        issuers = {c.issuer for c in certificates}
        leaves = [c for c in certificates if c.subject not in issuers or c.subject == c.issuer]
        return leaves[:1] + [c for c in certificates if c is not leaves[0]] if leaves else certificates

    def _value(self, signed_info: etree._Element, certificate: x509.Certificate | None) -> bool:
        method = self._one("SignatureMethod", signed_info).get("Algorithm", "")
        c14n = self._one("CanonicalizationMethod", signed_info)
        algorithm = c14n.get("Algorithm", "")
        if method not in _SIGNATURES:
            self.problems.append(f"signature method {method!r} is not accepted (RSA or ECDSA with SHA-2)")
            return False
        if algorithm not in _C14NS:
            self.problems.append(f"canonicalization {algorithm!r} is not supported")
            return False
        if certificate is None:
            self.problems.append("the signature carries no X509Certificate: no key to verify it with")
            return False
        comments = algorithm.endswith("WithComments")
        canonical = _c14n(
            signed_info, exclusive=_C14NS[algorithm], with_comments=comments, prefixes=_prefixes(c14n)
        )
        value = base64.b64decode("".join((self._one("SignatureValue").text or "").split()))
        return _verified(certificate.public_key(), _SIGNATURES[method], value, bytes(canonical))

    def _wrapping(self, covered: list[etree._Element]) -> None:
        """In an invoice, the elements the application reads must be the ones this signature covers."""
        hdon = next((a for a in self.signature.iterancestors() if etree.QName(a).localname == "HDon"), None)
        if hdon is None or self.signer not in _COVERS:
            return
        for name in _COVERS[self.signer]:
            read = [c for c in hdon if isinstance(c.tag, str) and etree.QName(c).localname == name]
            if len(read) > 1:
                self.problems.append(f"the invoice has {len(read)} {name} elements (signature wrapping)")
            elif read and not any(c is read[0] for c in covered):
                signed = ", ".join(_path(c) for c in covered) or "nothing"
                self.problems.append(
                    f"signature wrapping: the {self.signer} signature does not cover the invoice's {name}"
                    f" at {_path(read[0])} (it signs {signed})"
                )
            elif not read and name == "DLHDon":
                self.problems.append("the invoice has no DLHDon where its data must be")


def _verified(key: Any, method: tuple[str, hashes.HashAlgorithm], value: bytes, data: bytes) -> bool:
    kind, digest = method
    try:
        if kind == "rsa" and isinstance(key, rsa.RSAPublicKey):
            key.verify(value, data, padding.PKCS1v15(), digest)
            return True
        if kind == "ec" and isinstance(key, ec.EllipticCurvePublicKey):
            half = len(value) // 2  # XML-DSig's ECDSA value is r and s side by side, not DER
            der = utils.encode_dss_signature(int.from_bytes(value[:half]), int.from_bytes(value[half:]))
            key.verify(der, data, ec.ECDSA(digest))
            return True
    except InvalidSignature:
        return False
    return False


def _certificate(certificates: list[x509.Certificate], trust: TrustStore, now: datetime) -> CertificateResult:
    """The signer's certificate (the first: the one whose key verifies), judged at ``now``."""
    if not certificates:
        return CertificateResult(problem="the signature carries no certificate")
    leaf = certificates[0]
    subject, not_after = leaf.subject.rfc4514_string(), leaf.not_valid_after_utc
    if now > not_after:
        return CertificateResult(subject, not_after, "expired", f"expired on {not_after.isoformat()}")
    if now < leaf.not_valid_before_utc:
        return CertificateResult(
            subject, not_after, "untrusted", f"not valid before {leaf.not_valid_before_utc}"
        )
    if not trust.certificates:
        return CertificateResult(subject, not_after, "untrusted", "no trusted CA was given (--trust)")
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(list(trust.certificates)))
        .time(now)
        .extension_policies(
            ee_policy=verification.ExtensionPolicy.permit_all(),
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
        )
    )
    try:
        builder.build_client_verifier().verify(leaf, certificates[1:])
    except verification.VerificationError as exc:
        return CertificateResult(subject, not_after, "untrusted", f"does not chain to a trusted CA: {exc}")
    return CertificateResult(subject, not_after, "trusted")


def _c14n(
    element: etree._Element,
    *,
    exclusive: bool,
    with_comments: bool,
    prefixes: list[str] | None,
    without: etree._Element | None = None,
) -> bytes:
    """C14N 1.0 of ``element`` and its subtree, the namespaces in scope from its ancestors included, less
    the descendant ``without`` (the enveloped-signature transform), its tail text kept.

    lxml's C14N of an element inside a document is not used: with a default namespace declared above the
    element (``<Signature xmlns="…#">``) and the same namespace bound to a prefix on the root (the tax
    authority's ``xmlns:ds`` on ``HDon``), it writes ``xmlns=""`` on the element's children (seen against
    xmlsec1). The element is serialized on its own instead (lxml then declares every namespace in scope on
    it) and read back as a document of its own, whose C14N is libxml2's whole-document one. The signature
    is taken out of that copy, never out of the document: lxml rewrites the prefixes of an element it
    moves, which would change what the signature's own SignedInfo canonicalizes to."""
    text = etree.tostring(element, with_tail=False)
    alone = xmlsafe.parse(text, source="a signed element", limits=SIGNED_LIMITS)
    if without is not None:
        _remove_keeping_tail(_same_place(alone, element, without))
    return bytes(
        etree.tostring(
            alone,
            method="c14n",
            exclusive=exclusive,
            with_comments=with_comments,
            inclusive_ns_prefixes=prefixes,
        )
    )


def _same_place(copy: etree._Element, original: etree._Element, descendant: etree._Element) -> etree._Element:
    """In ``copy`` (a copy of ``original``'s subtree), the element at ``descendant``'s place."""
    steps: list[int] = []
    node = descendant
    while node is not original:
        parent = node.getparent()
        if parent is None:
            raise ValueError("the signature is not inside the element it is removed from")
        steps.append(parent.index(node))
        node = parent
    for step in reversed(steps):
        copy = copy[step]
    return copy


def _remove_keeping_tail(element: etree._Element) -> None:
    parent, previous = element.getparent(), element.getprevious()
    if parent is None:
        return
    if element.tail:
        if previous is not None:
            previous.tail = (previous.tail or "") + element.tail
        else:
            parent.text = (parent.text or "") + element.tail
    parent.remove(element)


def _digest(algorithm: str) -> Any:
    if algorithm not in _DIGESTS:
        raise ValueError(f"digest method {algorithm!r} is not accepted (SHA-256, SHA-384 or SHA-512)")
    name = _DIGESTS[algorithm]
    return lambda data: hashlib.new(name, data).digest()


def _prefixes(element: etree._Element) -> list[str] | None:
    """Exclusive C14N's InclusiveNamespaces PrefixList on ``element``, if any."""
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == "InclusiveNamespaces":
            return [p for p in (child.get("PrefixList") or "").split() if p != "#default"] or None
    return None


def _ids(root: etree._Element) -> dict[str, list[etree._Element]]:
    """Every Id, ID and id value in the document, with the elements carrying it."""
    found: dict[str, list[etree._Element]] = {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for name in _ID_ATTRIBUTES:
            value = element.get(name)
            if value is not None:
                found.setdefault(value, []).append(element)
    return found


def _path(element: etree._Element) -> str:
    """``/HDon/DSCKS/NBan/Signature``: local names from the root, an index where siblings share a name."""
    parts = []
    node: etree._Element | None = element
    while node is not None:
        name = etree.QName(node).localname
        parent = node.getparent()
        same = [s for s in parent if s.tag == node.tag] if parent is not None else [node]
        parts.append(name if len(same) == 1 else f"{name}[{same.index(node) + 1}]")
        node = parent
    return "/" + "/".join(reversed(parts))


def _data_id(root: etree._Element) -> str:
    data = root.find("{*}DLHDon")
    if data is None:
        raise ValueError("the document has no DLHDon under its root: name the element to sign (references)")
    if data.get("Id") is None:
        data.set("Id", "DLHDon")
    return str(data.get("Id"))


def _signer_slot(root: etree._Element, signer: str) -> etree._Element:
    """``DSCKS/<signer>`` under the root (in the root's namespace, if any), made when missing."""
    namespace = etree.QName(root).namespace
    qualified = (lambda name: f"{{{namespace}}}{name}") if namespace else (lambda name: name)
    dscks = root.find(qualified("DSCKS"))
    if dscks is None:
        dscks = etree.SubElement(root, qualified("DSCKS"))
    slot = dscks.find(qualified(signer))
    return slot if slot is not None else etree.SubElement(dscks, qualified(signer))
