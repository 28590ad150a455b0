"""RFC 9162 tree: our proof generation against a naive recursive reference."""

from __future__ import annotations

import hashlib

import pytest
from evidence_intake.audit import merkle
from evidence_intake.audit.errors import InvalidProofError, RootMismatchError


def naive_root(leaves: list[bytes]) -> bytes:
    """MTH straight from RFC 9162 section 2.1.1, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return merkle.node_hash(naive_root(leaves[:k]), naive_root(leaves[k:]))


LEAVES = [merkle.leaf_hash(i.to_bytes(2, "big")) for i in range(40)]


def test_known_root_of_the_rfc_test_tree() -> None:
    # transparency-dev/merkle's 8-leaf test tree (leaves "", 0x00, 0x10, ...):
    # its root appears in the shared inclusion vectors too.
    data = [b"", b"\x00", b"\x10", b"\x20\x21", b"\x30\x31", b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"]
    root = merkle.root(merkle.build_levels([merkle.leaf_hash(d) for d in data]), 8)
    assert root.hex() == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
    # The verifier's batch hashing (leaves from a copied prefix hash, parents
    # fed their two children) gives the same leaves and the same root.
    leaves = merkle.leaf_hashes(data)
    assert leaves == [merkle.leaf_hash(d) for d in data]
    levels = merkle.aligned_levels(leaves, 0)
    assert levels[-1].hex() == root.hex()
    assert merkle.leaf_hashes(iter(data[:3])) == leaves[:3]
    assert merkle.leaf_hashes([]) == []


def test_compact_range_roots_match_the_naive_tree() -> None:
    tree = merkle.CompactRange()
    levels = merkle.build_levels(LEAVES)
    assert tree.root() == merkle.EMPTY_ROOT
    for n, leaf in enumerate(LEAVES, 1):
        tree.append(leaf)
        assert tree.root() == naive_root(LEAVES[:n]) == merkle.root(levels, n)
        again = merkle.CompactRange.from_bytes(n, tree.to_bytes())
        assert again.root() == tree.root()


def test_compact_range_reports_every_completed_subtree() -> None:
    tree = merkle.CompactRange()
    nodes: dict[tuple[int, int], bytes] = {}
    for leaf in LEAVES[:8]:
        nodes.update({(lvl, idx): h for lvl, idx, h in tree.append(leaf)})
    assert nodes[(3, 0)] == naive_root(LEAVES[:8])
    assert nodes[(2, 1)] == naive_root(LEAVES[4:8])
    assert len(nodes) == 8 + 4 + 2 + 1


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 32, 40])
def test_every_inclusion_proof_verifies_and_a_wrong_one_does_not(size: int) -> None:
    levels = merkle.build_levels(LEAVES[:size])
    root = merkle.root(levels, size)
    for index in range(size):
        proof = merkle.inclusion_proof(levels, index, size)
        merkle.verify_inclusion(LEAVES[index], index, size, proof, root)
        with pytest.raises(InvalidProofError):
            merkle.verify_inclusion(LEAVES[(index + 1) % 40], index, size, proof, root)


@pytest.mark.parametrize("size2", [2, 3, 7, 8, 9, 31, 40])
def test_every_consistency_proof_verifies(size2: int) -> None:
    levels = merkle.build_levels(LEAVES[:size2])
    for size1 in range(1, size2 + 1):
        proof = merkle.consistency_proof(levels, size1, size2)
        merkle.verify_consistency(size1, size2, proof, merkle.root(levels, size1),
                                  merkle.root(levels, size2))


def test_inconsistent_trees_fail_with_both_roots_as_evidence() -> None:
    other = [*LEAVES[:3], merkle.leaf_hash(b"forged"), *LEAVES[4:10]]
    honest, forked = merkle.build_levels(LEAVES[:10]), merkle.build_levels(other)
    proof = merkle.consistency_proof(honest, 5, 10)
    with pytest.raises(RootMismatchError) as caught:
        merkle.verify_consistency(5, 10, proof, merkle.root(forked, 5), merkle.root(honest, 10))
    assert caught.value.expected == merkle.root(forked, 5)


def test_proof_nodes_of_the_wrong_length_are_refused() -> None:
    levels = merkle.build_levels(LEAVES[:4])
    proof = merkle.inclusion_proof(levels, 1, 4)
    with pytest.raises(InvalidProofError):
        merkle.verify_inclusion(LEAVES[1], 1, 4, [proof[0][:31], proof[1]],
                                merkle.root(levels, 4))
