"""``lienthong xml``: signed XML documents (issue 13 §2).

``xml verify FILE [--json] [--trust CA.pem ...]`` shows every signature of a file, each on its own: per
reference whether its digest matches, whether the signature value verifies, and the signer's certificate
(trusted, untrusted, expired, or unknown). Exit 0 when every signature is valid and trusted, 1 when one is
not (or the file holds none, or is not XML lienthong reads), 2 when the file or a CA file cannot be read.

``xml sign FILE --key K --cert C [--id ID] [--out OUT]`` signs an invoice as its seller (``DSCKS/NBan``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lienthong.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from lienthong.errors import ConfigError

if TYPE_CHECKING:
    from lienthong.certs.xmldsig import SignatureResult, Verification


def add_commands(sub: Any) -> None:
    """Register ``xml verify`` and ``xml sign``."""
    xml = sub.add_parser("xml", help="signed XML documents: verify and sign XML-DSig")
    xml_sub = xml.add_subparsers(title="xml commands", metavar="COMMAND")
    check = xml_sub.add_parser(
        "verify", help="every signature of a file, each on its own: digests, value, certificate"
    )
    check.add_argument("file", type=Path, help="a signed XML document (an invoice: HDon)")
    check.add_argument("--json", action="store_true", help="a list of signatures as JSON")
    check.add_argument(
        "--trust", type=Path, action="append", default=[], metavar="CA.pem", help="a trusted CA (repeatable)"
    )
    check.set_defaults(handler=_verify)
    make = xml_sub.add_parser("sign", help="sign an invoice as its seller (DSCKS/NBan), RSA-SHA256")
    make.add_argument("file", type=Path, help="the XML document to sign")
    make.add_argument("--key", type=Path, required=True, help="the signer's private key, PEM (RSA)")
    make.add_argument("--cert", type=Path, required=True, help="the signer's certificate (and chain), PEM")
    make.add_argument("--id", help="the Id of the element to sign (default: the root's DLHDon)")
    make.add_argument("--out", type=Path, help="where to write the signed document (default: stdout)")
    make.add_argument(
        "--passphrase-env", metavar="NAME", help="the environment variable holding the key's passphrase"
    )
    make.set_defaults(handler=_sign)


def _verify(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every command pays for what the cli module imports (`lienthong run`
    # among them, before its stop signals are handled).
    from lienthong.certs.xmldsig import TrustStore, verify  # noqa: PLC0415

    try:
        data = args.file.read_bytes()
        trust = TrustStore.from_pem_files(args.trust)
    except OSError as exc:
        print(f"{args.file}: cannot be read: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    result = verify(data, trust, source=str(args.file))
    if args.json:
        print(json.dumps([_as_json(s) for s in result.signatures], ensure_ascii=False, indent=2))
        for problem in result.problems:
            print(problem, file=sys.stderr)
    else:
        print(_describe(str(args.file), result))
    return EXIT_OK if result.valid else EXIT_FAILED


def _as_json(signature: SignatureResult) -> dict[str, Any]:
    from lienthong.timefmt import DISPLAY_ZONE  # noqa: PLC0415

    certificate = signature.certificate
    not_after = certificate.not_after.astimezone(DISPLAY_ZONE).isoformat() if certificate.not_after else None
    return {
        "signer": signature.signer,
        "location": signature.location,
        "references": {r.uri: r.digest_valid for r in signature.references},
        "signature_valid": signature.signature_valid,
        "certificate": {"subject": certificate.subject, "not_after": not_after, "status": certificate.status},
        "valid": signature.valid,
        "problems": [
            *(f"{r.uri}: {r.problem}" for r in signature.references if r.problem),
            *signature.problems,
        ]
        + ([f"certificate: {certificate.problem}"] if certificate.problem else []),
    }


def _describe(name: str, result: Verification) -> str:
    lines = [f"{name}: {len(result.signatures)} signature(s), {'valid' if result.valid else 'NOT valid'}"]
    lines += [f"  {problem}" for problem in result.problems]
    for signature in result.signatures:
        lines.append(
            f"  {signature.signer} ({signature.location}): {'valid' if signature.valid else 'NOT valid'}"
        )
        for ref in signature.references:
            verdict = "digest ok" if ref.digest_valid else f"digest NOT valid: {ref.problem}"
            lines.append(f"    reference {ref.uri} {ref.element}: {verdict}")
        lines.append(f"    signature value: {'ok' if signature.signature_valid else 'NOT valid'}")
        cert = signature.certificate
        detail = f" ({cert.problem})" if cert.problem else ""
        lines.append(f"    certificate: {cert.status}{detail}: {cert.subject or 'none'}")
        lines += [f"    {problem}" for problem in signature.problems]
    return "\n".join(lines)


def _sign(args: argparse.Namespace) -> int:
    from lienthong.certs.xmldsig import SigningKey, sign  # noqa: PLC0415
    from lienthong.xmlsafe import XmlError  # noqa: PLC0415

    passphrase = None
    if args.passphrase_env:
        if args.passphrase_env not in os.environ:
            print(f"--passphrase-env: {args.passphrase_env} is not set", file=sys.stderr)
            return EXIT_USAGE
        passphrase = os.environ[args.passphrase_env].encode()
    try:
        key = SigningKey.from_files(args.key, args.cert, password=passphrase)
        signed = sign(args.file.read_bytes(), key, references=[args.id] if args.id else ())
    except OSError as exc:
        print(f"{exc.filename or args.file}: cannot be read: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except (ConfigError, XmlError, ValueError) as exc:
        print(f"cannot sign {args.file}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.out is None:
        sys.stdout.buffer.write(signed)
    else:
        args.out.write_bytes(signed)
    return EXIT_OK
