"""The verifier's block reading, integer pre-scan and byte-string Merkle levels."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import ORIGIN, fill, write
from evidence_intake.audit import merkle, verify
from evidence_intake.audit.entry import Entry
from evidence_intake.audit.errors import (
    EntryFormatError,
    InvalidSignatureError,
    LogFormatError,
    ModifiedEntryError,
)
from evidence_intake.audit.log import MemoryLog
from evidence_intake.audit.note import NoteSigner, NoteVerifier

BASE = {"action": "a.b", "actor": "x", "details": {}, "prev": "0" * 64, "seq": 0,
        "subject": {}, "time": "2026-11-29T12:00:00Z"}


def canonical(obj: dict[str, object]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@pytest.mark.parametrize("size", [*range(0, 40), 63, 64, 65, 100, 255, 256, 257])
def test_complete_levels_match_build_levels(size: int) -> None:
    leaves = [merkle.leaf_hash(hashlib.sha256(i.to_bytes(4, "big")).digest())
              for i in range(size)]
    lists = merkle.build_levels(leaves)
    blobs = merkle.complete_levels([b"".join(leaves)])
    assert blobs.size == size
    assert merkle.root(blobs, size) == merkle.root(lists, size)
    for level, nodes in enumerate(lists.levels):
        for index, node in enumerate(nodes):
            assert blobs.node(level, index) == node
    for earlier in range(1, size):
        assert merkle.consistency_proof(blobs, earlier, size) == merkle.consistency_proof(
            lists, earlier, size)


def test_blob_levels_refuse_missing_nodes() -> None:
    tree = merkle.complete_levels([bytes(32 * 5)])
    for level, index in [(0, 5), (1, 2), (2, 1), (3, 0), (0, -1)]:
        with pytest.raises(KeyError):
            tree.node(level, index)
    with pytest.raises(ValueError, match="32-byte"):
        merkle.complete_levels([bytes(33)])


@pytest.mark.parametrize(("value", "accepted"), [
    (2**53 - 1, True), (-(2**53 - 1), True), (10**15 - 1, True), (10**15, True),
    (2**53, False), (-(2**53), False), (10**16, False), (10**30, False),
    ([1, 2**53], False), ({"a": [0, -(2**60)]}, False),
    ("see :1234567890123456789", True),  # looks like a long number, is a string
])
def test_integer_range_with_and_without_the_hook(value: object, accepted: bool) -> None:
    line = canonical({**BASE, "details": {"x": value}})
    exact_ok = True
    try:
        Entry.from_canonical(line)
    except EntryFormatError:
        exact_ok = False
    assert exact_ok is accepted
    if accepted:
        assert verify._fast_chunk_ok([line, line]) == [json.loads(line)] * 2
    else:
        with pytest.raises(verify._FastPathRefusedError):
            verify._fast_chunk_ok([line, line])


@pytest.mark.parametrize("lines", [
    [b'{"action":"a.b","actor":"x","details":{"k":"', b'"},"prev":"' + b"0" * 64 + b'",'
     b'"seq":0,"subject":{},"time":"2026-11-29T12:00:00Z"}'],  # one object over two lines
    [canonical(BASE) + b"," + canonical(BASE)],  # two objects on one line
    [canonical(BASE), b""],
])
def test_fast_path_needs_one_object_per_line(lines: list[bytes]) -> None:
    with pytest.raises(verify._FastPathRefusedError):
        verify._fast_chunk_ok(lines)


def test_duplicate_key_is_refused_by_the_fast_path() -> None:
    line = canonical(BASE).replace(b'"actor":"x"', b'"actor":"x","actor":"x"')
    with pytest.raises(EntryFormatError):
        Entry.from_canonical(line)
    with pytest.raises(verify._FastPathRefusedError):
        verify._fast_chunk_ok([line])


def _log(signer: NoteSigner, size: int, every: int) -> MemoryLog:
    log = MemoryLog(ORIGIN)
    for i in range(size):
        if i and i % every == 0:
            log.sign(signer)
        fill(log, 1, start=i)
    log.sign(signer)
    return log


@pytest.mark.parametrize("block", [1, 97, 400, 1 << 20])
@pytest.mark.parametrize("chunk", [4, 7, 4096])
def test_small_blocks_and_chunks_give_the_same_tree(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier, block: int, chunk: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "BLOCK", block)
    monkeypatch.setattr(verify, "CHUNK", chunk)
    log = _log(signer, 37, 10)
    path = write(tmp_path / "log.jsonl", log.lines)
    result = verify.verify_log(path, verifier)
    assert result.size == 37
    assert result.checkpoints == 4
    leaves = [merkle.leaf_hash(line[:-1]) for line in log.lines
              if not line.startswith(verify.CHECKPOINT_PREFIX)]
    assert result.root == merkle.root(merkle.build_levels(leaves), 37)
    tree, notes = verify.read_tree(path)
    assert [number for number, _ in notes] == [11, 22, 33, 41]
    assert tree.levels[0] == b"".join(leaves)


@pytest.mark.parametrize("block", [1, 50, 1 << 20])
def test_errors_keep_their_line_numbers_across_blocks(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier, block: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "BLOCK", block)
    log = _log(signer, 12, 5)
    lines = list(log.lines)
    note = json.loads(lines[5])["checkpoint"]  # line 6: the checkpoint at size 5
    flipped = "A" if note[-6] != "A" else "B"  # a signature byte, not the key id
    bad = canonical({"checkpoint": note[:-6] + flipped + note[-5:]}) + b"\n"
    with pytest.raises(InvalidSignatureError) as forged:
        verify.verify_log(write(tmp_path / "sig.jsonl", [*lines[:5], bad, *lines[6:]]),
                          verifier)
    assert str(forged.value).startswith("line 6: ")
    edited = json.loads(lines[8])
    edited["actor"] = "acct_x"
    with pytest.raises(ModifiedEntryError) as caught:
        verify.verify_log(write(tmp_path / "mod.jsonl",
                                [*lines[:8], canonical(edited) + b"\n", *lines[9:]]), verifier)
    assert caught.value.line == 10
    with pytest.raises(LogFormatError) as unterminated:
        verify.verify_log(write(tmp_path / "nl.jsonl", [*lines[:-1], lines[-1][:-1]]),
                          verifier)
    assert str(unterminated.value).startswith(f"line {len(lines)} ")
