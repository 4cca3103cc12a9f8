"""An append-only Merkle tree as RFC 9162 §2.1 defines it (Certificate Transparency 2.0), with its proofs.

- ``leaf_hash(d) = SHA-256(0x00 || d)``; ``node_hash(l, r) = SHA-256(0x01 || l || r)``; the root of no
  leaves is ``SHA-256()``; a tree of n leaves splits at k, the largest power of two below n.
- ``inclusion_proof`` / ``verify_inclusion``: this leaf is in the tree of this root, shown with about
  log2(n) hashes and nothing of the other leaves (§2.1.3).
- ``consistency_proof`` / ``verify_consistency``: the tree of this later root extends the tree of that
  earlier one, every old leaf kept in place (§2.1.4).
- ``Tree``: appends in O(log n) (the roots of its perfect subtrees, the "frontier"), its root at any time.

The verifiers are the RFC's algorithms, written to need nothing but hashlib: a third party checks a proof
with the public key of a checkpoint (``checkpoints``) and these few lines. Test vectors: the eight-leaf
tree of RFC 6962's reference tests, seen in Certificate Transparency's Go and Python clients.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256
_LEAF = hashlib.sha256(b"\x00")


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def leaf_hashes(records: Iterable[bytes]) -> list[bytes]:
    """``leaf_hash`` of each record, in one loop (the record is not copied behind its 0x00)."""
    start = _LEAF.copy
    hashes: list[bytes] = []
    push = hashes.append
    for record in records:
        hashed = start()
        hashed.update(record)
        push(hashed.digest())
    return hashes


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two below ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """MTH of the leaf hashes ``leaves``."""
    if not leaves:
        return EMPTY_ROOT
    return Tree(leaves).root()


def _subtree_root(leaves: Sequence[bytes], start: int, end: int) -> bytes:
    n = end - start
    if n == 1:
        return leaves[start]
    k = _split(n)
    return node_hash(_subtree_root(leaves, start, start + k), _subtree_root(leaves, start + k, end))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PATH(index, D[n]) (RFC 9162 §2.1.3.1) over the leaf hashes ``leaves``."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"no leaf {index} in a tree of {len(leaves)}")
    proof: list[bytes] = []
    start, end = 0, len(leaves)
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            proof.append(_subtree_root(leaves, start + k, end))
            end = start + k
        else:
            proof.append(_subtree_root(leaves, start, start + k))
            start += k
    proof.reverse()  # from the leaf up
    return proof


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected: bytes) -> bool:
    """RFC 9162 §2.1.3.2: whether ``leaf`` (a leaf hash) is leaf ``index`` of the tree of ``size`` leaves
    whose root is ``expected``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == expected


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) (RFC 9162 §2.1.4.1): the tree of ``leaves`` extends its first ``old_size``."""
    if not 0 < old_size <= len(leaves):
        raise ValueError(f"no consistency proof from {old_size} to {len(leaves)} leaves")
    return _subproof(old_size, leaves, 0, len(leaves), True)


def _subproof(m: int, leaves: Sequence[bytes], start: int, end: int, whole: bool) -> list[bytes]:
    n = end - start
    if m == n:
        return [] if whole else [_subtree_root(leaves, start, end)]
    k = _split(n)
    if m <= k:
        return [*_subproof(m, leaves, start, start + k, whole), _subtree_root(leaves, start + k, end)]
    return [*_subproof(m - k, leaves, start + k, end, False), _subtree_root(leaves, start, start + k)]


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.4.2: whether the tree of ``new_size`` leaves and root ``new_root`` extends the tree of
    ``old_size`` leaves and root ``old_root``."""
    if old_size == new_size:
        return old_root == new_root and not proof
    if not 0 < old_size < new_size or not proof:
        return False
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is the first node of the proof
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


class Tree:
    """Leaf hashes appended one at a time; the root at any size without recomputing the whole tree."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.size = 0
        self._frontier: list[bytes] = []  # roots of the perfect subtrees, largest first
        self.add_leaves(leaves)

    @classmethod
    def resume(cls, size: int, frontier: Sequence[bytes]) -> Tree:
        """The tree of ``size`` leaves whose perfect subtrees' roots are ``frontier`` (largest first), as
        ``frontier`` gave them; ValueError when there are not as many as ``size`` has bits set."""
        if size < 0 or len(frontier) != size.bit_count() or any(len(h) != 32 for h in frontier):
            raise ValueError(f"a tree of {size} leaves has {size.bit_count()} subtree roots of 32 bytes")
        tree = cls()
        tree.size, tree._frontier = size, list(frontier)
        return tree

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees, largest first: enough to go on appending (``resume``)."""
        return tuple(self._frontier)

    def add_leaves(self, leaves: Iterable[bytes]) -> None:
        """``append`` of each leaf hash, in one loop: verifying a log is this loop over every record, and
        a call per leaf was a third of its time (``benchmarks/bench_msglog.py``)."""
        frontier, size, sha256 = self._frontier, self.size, _sha256
        pop, push = frontier.pop, frontier.append
        for leaf in leaves:
            node, carry = leaf, size
            while carry & 1:  # merge with each perfect subtree of the same height
                node = sha256(b"\x01" + pop() + node).digest()
                carry >>= 1
            push(node)
            size += 1
        self.size = size

    def append(self, leaf: bytes) -> None:
        self.add_leaves((leaf,))

    def root(self) -> bytes:
        if not self._frontier:
            return EMPTY_ROOT
        node = self._frontier[-1]
        for left in reversed(self._frontier[:-1]):
            node = node_hash(left, node)
        return node
