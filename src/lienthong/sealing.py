"""Personal data at rest: events' payloads sealed with AES-256-GCM, a key id in each sealed payload.

A sealed payload is the text ``enc:v1:<key id>:<base64(nonce || ciphertext || tag)>``, its additional
data the event's id: a payload copied onto another event's row does not open. A payload without the
prefix is plaintext (written before sealing was configured) and is read as it is, unless
``refuse_plaintext``; ``lienthong keys rotate`` seals every payload with the current key, old ones
included. Keys come from the config
(``encryption.keys``: key id → 32 bytes, base64, from the environment or a file), never from the store.
The memory store keeps nothing at rest and seals nothing.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lienthong.errors import StoreError

PREFIX = "enc:v1:"
PURGED = '{"dossier":{},"purged":true}'
"""What retention leaves of a payload (``store.contract.PURGED``): plaintext by design."""
NONCE_BYTES = 12


@dataclass(frozen=True)
class Sealer:
    """Seals with ``keys[current]``; opens with whichever key a payload names. Picklable (the store's
    own process gets it)."""

    keys: dict[str, bytes]
    current: str
    refuse_plaintext: bool = False
    """Refuse a payload without the prefix (``encryption.refuse_plaintext``: once ``keys rotate`` has
    sealed everything, plaintext can only have been written past the store)."""
    _aead: dict[str, AESGCM] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise ValueError(f"the current key {self.current!r} is not among the keys")
        for kid, key in self.keys.items():
            if len(key) != 32:
                raise ValueError(f"key {kid!r} is {len(key)} bytes; AES-256 needs 32")
            if ":" in kid:
                raise ValueError(f"key id {kid!r} holds ':'")
            self._aead[kid] = AESGCM(key)

    def __reduce__(self) -> tuple[type[Sealer], tuple[dict[str, bytes], str, bool]]:
        return (Sealer, (self.keys, self.current, self.refuse_plaintext))

    def seal(self, event_id: str, text: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.current].encrypt(nonce, text.encode(), event_id.encode())
        return f"{PREFIX}{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, event_id: str, stored: str, *, what: str | None = None) -> str:
        """The payload's text; StoreError naming it (``what``, default ``event <event_id>``) when its key
        is unknown or it was altered. ``event_id`` is the additional data it was sealed with."""
        label = what or f"event {event_id}"
        if not stored.startswith(PREFIX):
            if self.refuse_plaintext and stored != PURGED:
                raise StoreError(
                    f"{label}'s payload is not sealed, and encryption.refuse_plaintext is on: it was written"
                    " past the store"
                )
            return stored
        kid, _, body = stored[len(PREFIX) :].partition(":")
        aead = self._aead.get(kid)
        if aead is None:
            raise StoreError(
                f"{label}'s payload is sealed with key {kid!r}, which encryption.keys does not hold"
            )
        try:
            raw = base64.b64decode(body, validate=True)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], event_id.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise StoreError(f"{label}'s sealed payload does not open: altered, or not its row") from exc

    def sealed_with(self, stored: str) -> str | None:
        """The key id a stored payload is sealed with (None: plaintext)."""
        return stored[len(PREFIX) :].partition(":")[0] if stored.startswith(PREFIX) else None


def open_plain(event_id: str, stored: str, *, what: str | None = None) -> str:
    """Reading without a sealer: plaintext as it is; a sealed payload is an error naming it."""
    if stored.startswith(PREFIX):
        raise StoreError(
            f"{what or f'event {event_id}'}'s payload is sealed, and no encryption keys are configured"
        )
    return stored
