"""Gathering an export's audit evidence from the database in a few bulk queries.

A bundle of N statements carries N+1 or more entries and as many inclusion
proofs. Asking the log one entry or one tree node at a time costs a round trip
each (thousands for a large export), so this module first works out which
perfect-subtree hashes all the proofs need (a dry run of the proof algorithm
with a recording hash source), fetches them level by level with ``IN``
queries, and then builds every proof from memory. Each proof is checked
against the signed checkpoint's root before it is used, so a wrong node in
the database cannot produce a bundle that fails only at the investigator's.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...audit import merkle
from ..auditlog.models import AuditEntry, AuditNode, AuditSubject

_CHUNK = 500
_DUMMY = bytes(32)


class _Recorder:
    """A hash source that only notes which nodes were asked for."""

    def __init__(self) -> None:
        self.wanted: set[tuple[int, int]] = set()

    def node(self, level: int, index: int) -> bytes:
        self.wanted.add((level, index))
        return _DUMMY


class _Loaded:
    def __init__(self, nodes: dict[tuple[int, int], bytes]) -> None:
        self.nodes = nodes

    def node(self, level: int, index: int) -> bytes:
        return self.nodes[(level, index)]


def _chunks(values: Sequence[object]) -> Iterable[Sequence[object]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start:start + _CHUNK]


def seqs_about_statements(session: Session, statement_ids: Sequence[str],
                          upto: int | None = None) -> dict[str, list[int]]:
    """For each statement, the seqs of the entries whose subject names it, in order."""
    out: dict[str, list[int]] = {sid: [] for sid in statement_ids}
    for chunk in _chunks(list(statement_ids)):
        query = select(AuditSubject.subject_id, AuditSubject.seq).where(
            AuditSubject.kind == "statement", AuditSubject.subject_id.in_(chunk))
        if upto is not None:
            query = query.where(AuditSubject.seq < upto)
        for sid, seq in session.execute(query):
            out[sid].append(int(seq))
    for seqs in out.values():
        seqs.sort()
    return out


def entries_bytes(session: Session, seqs: Sequence[int]) -> list[tuple[int, bytes]]:
    """(seq, canonical bytes) of each entry, in increasing seq."""
    found: dict[int, bytes] = {}
    for chunk in _chunks(sorted(seqs)):
        for seq, data in session.execute(select(AuditEntry.seq, AuditEntry.canonical)
                                         .where(AuditEntry.seq.in_(chunk))):
            found[int(seq)] = bytes(data)
    missing = sorted(set(seqs) - set(found))
    if missing:
        raise LookupError(f"audit entries missing from the log: {missing[:10]}")
    return sorted(found.items())


def inclusion_proofs(session: Session, entries: Sequence[tuple[int, bytes]], size: int,
                     root: bytes) -> dict[int, list[bytes]]:
    """The inclusion proof of each entry in the tree of ``size``, each verified against ``root``."""
    recorder = _Recorder()
    for seq, _ in entries:
        merkle.inclusion_proof(recorder, seq, size)
    by_level: dict[int, list[int]] = defaultdict(list)
    for level, index in recorder.wanted:
        by_level[level].append(index)
    nodes: dict[tuple[int, int], bytes] = {}
    for level, indexes in by_level.items():
        for chunk in _chunks(sorted(indexes)):
            for index, digest in session.execute(
                    select(AuditNode.index, AuditNode.hash).where(
                        AuditNode.level == level, AuditNode.index.in_(chunk))):
                nodes[(level, int(index))] = bytes(digest)
    source = _Loaded(nodes)
    proofs: dict[int, list[bytes]] = {}
    for seq, data in entries:
        proof = merkle.inclusion_proof(source, seq, size)
        merkle.verify_inclusion(merkle.leaf_hash(data), seq, size, proof, root)
        proofs[seq] = proof
    return proofs
