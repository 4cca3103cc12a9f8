"""Check an inclusion proof from ``lienthong log prove`` with the log's verifier key alone.

    python -m lienthong.msglog.proofcheck PROOF.json VERIFIER_KEY

The proof says: record ``record`` (its bytes, as text) is leaf ``index`` of the log whose checkpoint
``checkpoint`` (a C2SP signed note) gives ``size`` records and a root. The check, which needs nothing of
lienthong but these steps (RFC 9162 §2.1.3.2 and the C2SP signed-note format):

1. open the note with the verifier key (Ed25519 over the note's text); read origin, size and root;
2. leaf = SHA-256(0x00 || record bytes);
3. walk ``proof`` from the leaf up (``merkle.verify_inclusion``) and compare with the root.

Exit 0 when the record is in the log, 1 otherwise, with the reason.
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

from lienthong.msglog.checkpoints import NoteError, open_checkpoint
from lienthong.msglog.merkle import leaf_hash, verify_inclusion


def check(proof: dict[str, Any], verifier: str) -> str:
    """'' when ``proof`` holds under ``verifier``; otherwise why not."""
    try:
        checkpoint = open_checkpoint(proof["checkpoint"], verifier)
        path = [base64.b64decode(p, validate=True) for p in proof["proof"]]
        index, size, record = int(proof["index"]), int(proof["size"]), str(proof["record"]).encode()
    except NoteError as exc:
        return f"the checkpoint is not the log's: {exc}"
    except (KeyError, TypeError, ValueError) as exc:
        return f"not a proof: {exc}"
    if size != checkpoint.size:
        return f"the proof is for size {size}, its checkpoint says {checkpoint.size}"
    if not verify_inclusion(index, size, leaf_hash(record), path, checkpoint.root):
        return f"record {index} is not in the log of {size} records that the checkpoint signs"
    return ""


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    proof_file, verifier = argv
    proofs = json.loads(Path(proof_file).read_text(encoding="utf-8"))
    failed = 0
    for proof in proofs if isinstance(proofs, list) else [proofs]:
        why = check(proof, verifier.strip())
        print(f"record {proof.get('index')}: " + (why or "in the log"))
        failed += bool(why)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
