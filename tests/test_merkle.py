"""The message log's Merkle tree against RFC 6962/9162's published vectors, and its proofs against the
RFC's own verification algorithms, for every size and position up to a few dozen leaves."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from lienthong.msglog.merkle import (
    EMPTY_ROOT,
    Tree,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    leaf_hashes,
    root,
    verify_consistency,
    verify_inclusion,
)

# The eight leaves of RFC 6962's reference tests and the root of each prefix, as Certificate Transparency's
# clients test them (seen in its Go and Python code).
INPUTS = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
LEAVES = [leaf_hash(d) for d in INPUTS]


def test_the_roots_of_the_published_vectors() -> None:
    assert root([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    for n in range(1, 9):
        assert root(LEAVES[:n]).hex() == ROOTS[n - 1], n
    tree = Tree()
    for n, leaf in enumerate(LEAVES, 1):
        tree.append(leaf)
        assert (tree.size, tree.root().hex()) == (n, ROOTS[n - 1])


def test_a_published_inclusion_path() -> None:
    assert [p.hex() for p in inclusion_proof(0, LEAVES)] == [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ]


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(f"record {i}".encode()) for i in range(n)]


def test_every_inclusion_proof_verifies_and_no_other_leaf_or_place_does() -> None:
    for n in range(1, 34):
        hashes = leaves(n)
        top = root(hashes)
        for i in range(n):
            proof = inclusion_proof(i, hashes)
            assert verify_inclusion(i, n, hashes[i], proof, top), (i, n)
            assert not verify_inclusion(i, n, leaf_hash(b"forged"), proof, top)
            if n > 1:
                assert not verify_inclusion((i + 1) % n, n, hashes[i], proof, top)
                assert not verify_inclusion(i, n, hashes[i], proof[:-1], top)  # a truncated proof


def test_every_consistency_proof_verifies_and_a_forked_tree_does_not() -> None:
    for n in range(1, 34):
        hashes = leaves(n)
        new = root(hashes)
        for m in range(1, n + 1):
            old = root(hashes[:m])
            proof = consistency_proof(m, hashes)
            assert verify_consistency(m, n, old, new, proof), (m, n)
            if m < n:
                forked = [*hashes[: m - 1], leaf_hash(b"rewritten"), *hashes[m:]]
                assert not verify_consistency(m, n, root(forked[:m]), new, proof)
                assert not verify_consistency(m, n, old, root(forked), proof)
                assert not verify_consistency(m, n, old, new, proof[1:])


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 300), st.data())
def test_proofs_hold_for_larger_trees(n: int, data: st.DataObject) -> None:
    hashes = leaves(n)
    tree = Tree(hashes)
    assert tree.root() == root(hashes)
    i = data.draw(st.integers(0, n - 1))
    assert verify_inclusion(i, n, hashes[i], inclusion_proof(i, hashes), tree.root())
    m = data.draw(st.integers(1, n))
    assert verify_consistency(m, n, root(hashes[:m]), tree.root(), consistency_proof(m, hashes))


def mth(leaves: list[bytes]) -> bytes:
    """MTH as RFC 9162 §2.1.1 defines it, recursively: the reference for the tree's one-loop appends."""
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()


def test_leaves_added_in_one_loop_give_the_rfc_trees_root() -> None:
    for n in range(1, 40):
        records = [f"record {i}".encode() for i in range(n)]
        leaves = leaf_hashes(records)
        assert leaves == [leaf_hash(r) for r in records]
        in_parts = Tree()
        in_parts.add_leaves(leaves[: n // 3])
        for leaf in leaves[n // 3 : n // 2]:
            in_parts.append(leaf)
        in_parts.add_leaves(leaves[n // 2 :])
        assert in_parts.size == n
        assert in_parts.root() == mth(leaves)
