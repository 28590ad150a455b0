"""The verifier's block and segment reading, its fast path's limits and the
byte-string Merkle levels that segments hash and the verifier joins."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest
from audit_samples import ORIGIN, fill, write
from evidence_intake.audit import merkle, verify
from evidence_intake.audit.entry import Entry
from evidence_intake.audit.entry_scan import EntryScanner
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


@pytest.mark.parametrize("size", [0, 1, 2, 3, 5, 8, 13, 31, 32, 33, 64, 100])
@pytest.mark.parametrize("cuts", [(), (1,), (3,), (1, 2), (4, 8), (5, 6, 7, 20), (16, 33)])
def test_joined_segment_levels_match_build_levels(size: int, cuts: tuple[int, ...]) -> None:
    """Each segment hashes the complete subtrees inside it; the seams are hashed on joining."""
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    bounds = [0, *(c for c in cuts if 0 < c < size), size]
    parts = [(lo, merkle.aligned_levels(leaves[lo:hi], lo))
             for lo, hi in itertools.pairwise(bounds) if hi > lo]
    joined = merkle.join_levels(parts, size)
    assert joined.levels == merkle.complete_levels([b"".join(leaves)]).levels
    for start, levels in parts:  # a segment never holds a node that leaves it
        for level, blob in enumerate(levels):
            first = -(-start >> level)
            for i in range(len(blob) // 32):
                assert (first + i) << level >= start
                assert blob[32 * i : 32 * i + 32] == joined.node(level, first + i)


def test_joining_refuses_missing_or_overlapping_leaves() -> None:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(6)]
    with pytest.raises(ValueError, match="missing"):
        merkle.join_levels([(0, merkle.aligned_levels(leaves[:2], 0)),
                            (3, merkle.aligned_levels(leaves[3:], 3))], 6)
    with pytest.raises(ValueError, match="overlap"):
        merkle.join_levels([(0, merkle.aligned_levels(leaves[:4], 0)),
                            (3, merkle.aligned_levels(leaves[3:], 3))], 6)
    with pytest.raises(ValueError, match="missing"):
        merkle.join_levels([(0, merkle.aligned_levels(leaves[:4], 0))], 6)


def _scan(lines: list[bytes]) -> verify._Block:
    return verify._scan(EntryScanner(), b"".join(line + b"\n" for line in lines), lines, 1, [])


@pytest.mark.parametrize(("value", "accepted"), [
    (2**53 - 1, True), (-(2**53 - 1), True), (10**15 - 1, True), (10**15, True),
    (2**53, False), (-(2**53), False), (10**16, False), (10**30, False),
    ([1, 2**53], False), ({"a": [0, -(2**60)]}, False),
    ("see :1234567890123456789", True),  # looks like a long number, is a string
])
def test_integer_range_on_the_fast_and_the_exact_path(value: object, accepted: bool) -> None:
    line = canonical({**BASE, "details": {"x": value}})
    exact_ok = True
    try:
        Entry.from_canonical(line)
    except EntryFormatError:
        exact_ok = False
    assert exact_ok is accepted
    block = _scan([line, line.replace(b'"seq":0', b'"seq":1')])
    if accepted:
        assert block.error is None
        assert block.seqs == [0, 1]
        assert block.prevs == b"0" * 64 * 2
    else:
        assert block.error is not None and block.error[0] == 0


@pytest.mark.parametrize("lines", [
    [b'{"action":"a.b","actor":"x","details":{"k":"', b'"},"prev":"' + b"0" * 64 + b'",'
     b'"seq":0,"subject":{},"time":"2026-11-29T12:00:00Z"}'],  # one object over two lines
    [canonical(BASE) + b"," + canonical(BASE)],  # two objects on one line
    [canonical(BASE), b""],
    [canonical(BASE).replace(b'"actor":"x"', b'"actor":"x","actor":"x"')],  # duplicate key
])
def test_every_line_holds_exactly_one_entry(lines: list[bytes]) -> None:
    block = _scan(lines)
    assert block.error is not None
    with pytest.raises(EntryFormatError):
        Entry.from_canonical(lines[block.error[0]])


def test_checkpoint_lines_are_set_apart_with_their_numbers() -> None:
    entry = canonical(BASE)
    note = b'{"checkpoint":"x"}'
    notes: list[tuple[int, bytes]] = []
    lines = [note, entry, note, entry.replace(b'"seq":0', b'"seq":1'), note]
    block = verify._scan(EntryScanner(), b"".join(line + b"\n" for line in lines), lines, 7,
                         notes)
    assert notes == [(7, note), (9, note), (11, note)]
    assert block.numbers == [8, 10]
    assert block.seqs == [0, 1]


def _log(signer: NoteSigner, size: int, every: int) -> MemoryLog:
    log = MemoryLog(ORIGIN)
    for i in range(size):
        if i and i % every == 0:
            log.sign(signer)
        fill(log, 1, start=i)
    log.sign(signer)
    return log


@pytest.mark.parametrize("block", [1, 97, 400, 1 << 20])
@pytest.mark.parametrize("segment", [1, 300, 1000, 1 << 24])
def test_small_blocks_and_segments_give_the_same_tree(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier, block: int, segment: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "BLOCK", block)
    monkeypatch.setattr(verify, "SEGMENT", segment)
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
@pytest.mark.parametrize("segment", [300, 1 << 24])
def test_errors_keep_their_line_numbers_across_blocks(
        tmp_path: Path, signer: NoteSigner, verifier: NoteVerifier, block: int, segment: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "BLOCK", block)
    monkeypatch.setattr(verify, "SEGMENT", segment)
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


def test_worker_results_come_back_through_a_file_or_in_band(
        tmp_path: Path, signer: NoteSigner) -> None:
    log = _log(signer, 20, 7)
    path = write(tmp_path / "log.jsonl", log.lines)
    spool = tmp_path / "spool"
    spool.mkdir()
    direct = verify._check_segment(str(path), 0, None, EntryScanner())
    spooled = verify._check_segment_in_worker((str(path), 0, None, str(spool)))
    assert spooled.spooled is not None and spooled.levels == []
    assert verify._unspool(spooled) == direct
    assert not list(spool.iterdir())  # read back and removed
    # A spool that cannot be written: the hashes come back with the result.
    in_band = verify._check_segment_in_worker((str(path), 0, None, str(tmp_path / "gone")))
    assert in_band == direct


@pytest.mark.parametrize("block", [1, 5, 16, 1 << 20])
@pytest.mark.parametrize("tail", [b"", b"no newline"])
def test_the_reader_yields_each_whole_line_once(
        tmp_path: Path, block: int, tail: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # Lines longer and shorter than a block; a block may end inside a line,
    # which is read again with the next one.
    monkeypatch.setattr(verify, "BLOCK", block)
    lines = [b"a" * n for n in (0, 3, 40, 1, 17, 0, 2)]
    path = tmp_path / "lines"
    path.write_bytes(b"".join(line + b"\n" for line in lines) + tail)
    reader = verify._Reader(path)
    seen = []
    for data, block_lines in reader:
        assert data.startswith(b"".join(line + b"\n" for line in block_lines))
        seen += block_lines
    assert seen == lines
    assert reader.rest == tail
    middle = verify._Reader(path, 1, 1 + 4 + 41)  # lines 1 and 2 (from 0)
    assert [line for _, block_lines in middle for line in block_lines] == lines[1:3]
    assert middle.rest == b""
