"""Signed tree heads (checkpoints) as C2SP ``tlog-checkpoint`` text in a C2SP ``signed-note``, Ed25519.

A checkpoint says "the log ``origin`` has ``size`` records and this root": three lines, the root in
base64. The note adds a blank line and signature lines ``— <key name> <base64(key id || signature)>``;
the key id is the first four bytes of SHA-256(name || 0x0A || 0x01 || public key), and the signature
covers the text with its final newline. This is the format of Go's ``golang.org/x/mod/sumdb/note`` and
transparency-dev's tooling (seen there, with its PeterNeumann known-answer test, which a test here
reproduces byte for byte), so a third party can check a lienthong checkpoint with tools it already has.

Keys travel as the same texts: ``PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>`` for the node, and
``<name>+<key id>+<base64(0x01 || public key)>`` (the verifier key) for whoever checks.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519 = b"\x01"
DASH = "\u2014 "
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100


class NoteError(ValueError):
    """A note or key that cannot be read, or a signature that does not verify: the reason in words."""


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + ED25519 + public).digest()[:4]


def _raw(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _check_name(name: str) -> str:
    if not name or "+" in name or any(c.isspace() for c in name):
        raise NoteError(f"a key name must be non-empty, without spaces or '+': {name!r}")
    return name


@dataclass(frozen=True)
class SigningKey:
    name: str
    private: Ed25519PrivateKey

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls(_check_name(name), Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> SigningKey:
        """``PRIVATE+KEY+<name>+<key id>+<base64(0x01 || seed)>``."""
        parts = text.strip().split("+", 4)  # the key's base64 may hold a '+'; a name may not
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("not a signing key: expected PRIVATE+KEY+<name>+<key id>+<key>")
        name, hash_hex, encoded = parts[2:]
        try:
            raw = base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise NoteError("the signing key is not base64") from exc
        if len(raw) != 33 or raw[:1] != ED25519:
            raise NoteError("not an Ed25519 signing key")
        key = cls(_check_name(name), Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if key_id(name, _raw(key.private.public_key())).hex() != hash_hex:
            raise NoteError("the signing key's id does not match its key")
        return key

    def text(self) -> str:
        seed = self.private.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
        public = _raw(self.private.public_key())
        encoded = base64.b64encode(ED25519 + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{key_id(self.name, public).hex()}+{encoded}"

    def verifier(self) -> str:
        """The verifier key a third party needs: ``<name>+<key id>+<base64(0x01 || public key)>``."""
        public = _raw(self.private.public_key())
        return f"{self.name}+{key_id(self.name, public).hex()}+{base64.b64encode(ED25519 + public).decode()}"


def sign_note(text: str, key: SigningKey) -> str:
    """``text`` (non-empty, ending in one newline, no blank line) signed by ``key``."""
    if not text.endswith("\n") or "\n\n" in text:
        raise NoteError("a note's text ends with a newline and holds no blank line")
    signature = key.private.sign(text.encode())
    public = _raw(key.private.public_key())
    blob = base64.b64encode(key_id(key.name, public) + signature).decode()
    return f"{text}\n{DASH}{key.name} {blob}\n"


def open_note(note: str, verifier: str) -> str:
    """The text of ``note`` if a signature by the ``verifier`` key verifies it; else NoteError saying why."""
    name, hash_hex, public = _parse_verifier(verifier)
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise NoteError(f"the note is larger than {MAX_NOTE_BYTES:,} bytes")
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("not a signed note: no blank line before the signatures")
    text, lines = note[: split + 1], note[split + 2 :].splitlines()
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    for line in lines:
        if not line.startswith(DASH):
            raise NoteError(f"not a signature line: {line[:40]!r}")
        signer, _, blob = line[len(DASH) :].partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError as exc:
            raise NoteError(f"the signature of {signer} is not base64") from exc
        if signer != name or raw[:4].hex() != hash_hex:
            continue  # another key's: not ours to judge
        try:
            Ed25519PublicKey.from_public_bytes(public).verify(raw[4:], text.encode())
        except InvalidSignature as exc:
            raise NoteError(f"the signature of {name} does not verify: the note was changed") from exc
        return text
    raise NoteError(f"no signature by {name}+{hash_hex}")


def _parse_verifier(text: str) -> tuple[str, str, bytes]:
    parts = text.strip().split("+", 2)
    if len(parts) != 3:
        raise NoteError("not a verifier key: expected <name>+<key id>+<key>")
    name, hash_hex, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
    except ValueError as exc:
        raise NoteError("the verifier key is not base64") from exc
    if len(raw) != 33 or raw[:1] != ED25519:
        raise NoteError("not an Ed25519 verifier key")
    if key_id(_check_name(name), raw[1:]).hex() != hash_hex:
        raise NoteError("the verifier key's id does not match its key")
    return name, hash_hex, raw[1:]


@dataclass(frozen=True)
class Checkpoint:
    """``origin`` (the log's name), its ``size`` in records and the Merkle ``root`` of them."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise NoteError("a checkpoint is three lines: origin, size, root")
        origin, size, root = lines[:3]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise NoteError(f"the checkpoint's size is not a number: {size!r}")
        try:
            digest = base64.b64decode(root, validate=True)
        except ValueError as exc:
            raise NoteError("the checkpoint's root is not base64") from exc
        if len(digest) != 32:
            raise NoteError("the checkpoint's root is not a SHA-256 hash")
        return cls(origin, int(size), digest)


def sign_checkpoint(checkpoint: Checkpoint, key: SigningKey) -> str:
    return sign_note(checkpoint.text(), key)


def open_checkpoint(note: str, verifier: str) -> Checkpoint:
    return Checkpoint.parse(open_note(note, verifier))
