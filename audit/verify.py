"""Offline verification of an audit-log export (JSONL).

Threat model: the export may have been edited by anyone between the server
and the auditor, including an insider with database access, and the server's
own signing key may later be misused to sign a rewritten history. What the
verifier trusts is the pinned log key (``--key``) and, with ``--state``, the
checkpoint it verified last time. From those it establishes that

1. every entry line is a canonical entry and the hash chain is unbroken
   (``seq`` 0, 1, 2 ... and each ``prev`` is the previous entry's hash), which
   localises an edit, deletion, insertion or reordering to one entry;
2. every checkpoint line is signed by the log key (signature checked before
   its text is parsed);
3. the RFC 9162 root of the entries equals the root of the largest signed
   checkpoint, which covers every entry (entries beyond it are unsigned and
   rejected), and the smaller checkpoints are prefixes of it (else: a fork);
4. an extra checkpoint (``--checkpoint``) and the witness state are prefixes of
   the log too: a consistency proof from each is built from the entries and
   verified with :func:`merkle.verify_consistency`. A log that was rewritten
   and re-signed is self-consistent, so only this step can catch it.

The export format is documented in docs/formats/audit-log.md.

Speed (1M entries, bench/audit.py): the file is cut into segments of
SEGMENT bytes at line starts, and each segment is read and checked by a
worker process (or in turn by this one) in blocks of BLOCK bytes. An entry
line is proven canonical without decoding it, by one regular-expression
scan per block (:class:`entry_scan.EntryScanner`, which accepts only bytes
the exact validator accepts); a line it is unsure of goes to
``Entry.from_canonical``, the specification. Entry hashes are computed
with ``map``; leaf and node hashes are copies of a hash primed with their
0x00 / 0x01 prefix (:func:`merkle.leaf_hashes`), so no prefixed message is
built. The chain is compared a block at a time as hex strings, and a
segment returns only its chain ends and the complete Merkle subtrees inside
it; the subtrees that straddle two segments are hashed here. A log that
fails is read once more, streaming, by :func:`_diagnose`, to name the first
broken link.

Per entry, one process spends about 4.2-6.2 us of CPU on the shared 2-core
build machine (figures in docs/cli/audit.md): the regular-expression scan
is the largest part, then the three SHA-256 calls (entry, leaf, node;
mostly OpenSSL's per-call cost), then reading and splitting the block.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import tempfile
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import accumulate, pairwise
from pathlib import Path
from typing import NoReturn

from . import merkle
from .checkpoint import Checkpoint, open_checkpoint
from .entry import GENESIS_PREV, Entry, encode_canonical
from .entry_scan import EntryScanner
from .errors import (
    AuditError,
    CheckpointMismatchError,
    DeletedEntryError,
    EntryFormatError,
    ForkError,
    InsertedEntryError,
    InvalidProofError,
    LogFormatError,
    ModifiedEntryError,
    ReorderedEntryError,
    TruncationError,
)
from .note import NoteVerifier

CHECKPOINT_PREFIX = b'{"checkpoint":'
SEGMENT = 16 << 20  # bytes of the file per worker task
BLOCK = 256 << 10  # bytes read at a time: a block stays in the CPU cache while it is checked
PARALLEL_MIN_BYTES = 64 << 20
_sha256 = hashlib.sha256
_digest = type(_sha256()).digest
_GENESIS = GENESIS_PREV.encode("ascii")
_HEX_SIZE = 2 * merkle.HASH_SIZE  # a hash written as hex digits, as prev is
# The shortest entry line there can be: bounds the number of entries in a file.
_MIN_ENTRY_LINE = len(Entry(seq=0, time="0000-00-00T00:00:00Z", actor="x",
                            action="a.b").canonical_bytes()) + 1


def checkpoint_line(note: str) -> bytes:
    """The export line that carries one signed checkpoint note."""
    return encode_canonical({"checkpoint": note}) + b"\n"


@dataclass
class VerifyResult:
    size: int
    root: bytes
    checkpoint: Checkpoint
    checkpoint_note: str
    checkpoints: int
    witnessed: list[Checkpoint] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "root": self.root.hex(),
                "checkpoint": self.checkpoint.to_json(), "checkpoints": self.checkpoints,
                "consistent_with": [c.to_json() for c in self.witnessed]}


class _Reader:
    """Reads whole lines of ``path`` from ``start`` (a line start) to ``end``, BLOCK at a time.

    Iterating yields ``(block, lines)``: the bytes read, which are whole
    lines, each ending in a newline, possibly followed by the start of a line
    that has no newline in the block; and the whole lines, without the
    newlines. A raw newline only ever ends a line: inside a JSON string it
    is escaped. The start of a line is read again, with the next block: a
    seek back costs less than copying the block to join it to the next read
    (about 40% of the reading time, which is 4% of verifying). Afterwards
    ``rest`` holds what followed the last newline (non-empty only for a file
    whose last line is unterminated).
    """

    def __init__(self, path: Path | str, start: int = 0, end: int | None = None) -> None:
        self.path, self.start, self.end = path, start, end
        self.rest = b""

    def __iter__(self) -> Iterator[tuple[bytes, list[bytes]]]:
        with open(self.path, "rb") as handle:
            pos, size = self.start, BLOCK
            while self.end is None or pos < self.end:
                handle.seek(pos)
                data = handle.read(size if self.end is None else min(size, self.end - pos))
                cut = data.rfind(b"\n") + 1
                if not cut:
                    if len(data) < size:  # the end: what is left has no newline
                        self.rest = data
                        return
                    size *= 2  # a line longer than the block: read more at once
                    continue
                lines = data.split(b"\n")
                lines.pop()  # what follows the last newline
                yield data, lines
                pos += cut
                size = BLOCK


@dataclass
class _Block:
    """The entry lines of one block, checked: what :func:`_scan` found."""

    entries: list[bytes]
    numbers: list[int] | None  # line numbers, or None: first, first + 1, ...
    prevs: bytes  # each entry's prev as in the entry (64 hex digits), concatenated
    seqs: list[int]
    error: tuple[int, EntryFormatError] | None  # (index, why) of the first bad entry


def _scan(scanner: EntryScanner, block: bytes, lines: list[bytes], first: int,
          notes: list[tuple[int, bytes]]) -> _Block:
    """Check the entry lines of a block; its checkpoint lines go to ``notes``.

    ``block`` is what :class:`_Reader` yields, ``lines`` its whole lines,
    ``first`` the number of the first one. If ``error`` is set, ``prevs`` and
    ``seqs`` stop at that entry.
    """
    entries, numbers = lines, None
    # A checkpoint line never matches, so when every line does there is none
    # and the block need not be searched for one.
    found = scanner.match_lines(block, len(lines))
    if found is None and CHECKPOINT_PREFIX in block:
        entries, numbers = [], []
        for number, line in enumerate(lines, first):
            if line.startswith(CHECKPOINT_PREFIX):
                notes.append((number, line))
            else:
                entries.append(line)
                numbers.append(number)
        found = scanner.match_lines(block, len(entries))
    if found is not None:
        return _Block(entries, numbers, found[0], list(map(int, found[1])), None)
    prev_list: list[bytes] = []
    seq_list: list[int] = []
    for i, line in enumerate(entries):
        one = scanner.match(line)
        if one is not None:
            prev_list.append(one[0])
            seq_list.append(int(one[1]))
            continue
        try:
            entry = Entry.from_canonical(line)
        except EntryFormatError as err:
            return _Block(entries, numbers, b"".join(prev_list), seq_list, (i, err))
        scanner.learn(entry)
        prev_list.append(entry.prev.encode("ascii"))
        seq_list.append(entry.seq)
    return _Block(entries, numbers, b"".join(prev_list), seq_list, None)


@dataclass(frozen=True)
class _Segment:
    """What one segment of the file contributes: its chain ends and its subtrees."""

    start: int  # byte offset of the segment in the file
    lines: int  # lines in the segment, entries and checkpoints
    notes: list[tuple[int, bytes]]  # (line number in the segment, line) of checkpoints
    ok: bool = True  # every entry canonical and chained to the one before it
    first_seq: int = 0
    first_prev: bytes = b""  # hex, as in the entry
    last_hash: bytes = b""  # hex SHA-256 of the last entry line
    levels: list[bytes] = field(default_factory=list)  # merkle.aligned_levels
    unterminated: bool = False  # the file ends inside this segment without a newline
    spooled: tuple[str, list[int]] | None = None  # levels left in a file: name, sizes

    @property
    def entries(self) -> int:
        return len(self.levels[0]) // merkle.HASH_SIZE if self.levels else 0


def _check_segment(path: str, start: int, end: int | None, scanner: EntryScanner) -> _Segment:
    """Validate, chain and hash the entries of one segment.

    A segment that is not ``ok`` sends the verifier to :func:`_diagnose`,
    which re-reads the log and names the problem, so this function needs no
    more than a flag and can run in a worker process.
    """
    reader = _Reader(path, start, end)
    notes: list[tuple[int, bytes]] = []
    leaves: list[bytes] = []
    lines = 0
    first_seq = next_seq = -1
    first_prev = b""
    last = b""  # digest of the entry before the block
    for block, block_lines in reader:
        scanned = _scan(scanner, block, block_lines, lines + 1, notes)
        lines += len(block_lines)
        entries, prevs, seqs = scanned.entries, scanned.prevs, scanned.seqs
        if scanned.error is not None:
            return _Segment(start, lines, notes, ok=False)
        if not entries:
            continue
        count = len(entries)
        if next_seq < 0:
            first_seq, first_prev, next_seq = seqs[0], prevs[:_HEX_SIZE], seqs[0]
            chained = prevs[_HEX_SIZE:]
        else:
            chained = prevs
        digests = b"".join(map(_digest, map(_sha256, entries)))
        # prev of each line but the segment's first is the hash before it.
        expected = (last + digests[:-merkle.HASH_SIZE]).hex().encode("ascii")
        if seqs != list(range(next_seq, next_seq + count)) or chained != expected:
            return _Segment(start, lines, notes, ok=False)
        next_seq += count
        last = digests[-merkle.HASH_SIZE:]
        leaves += merkle.leaf_hashes(entries)
    return _Segment(start, lines, notes, first_seq=first_seq, first_prev=first_prev,
                    last_hash=last.hex().encode("ascii"),
                    levels=merkle.aligned_levels(leaves, first_seq) if leaves else [],
                    unterminated=bool(reader.rest))


_worker_scanner: EntryScanner | None = None


def _start_worker() -> None:
    global _worker_scanner  # one scanner per worker process, kept across its tasks
    _worker_scanner = EntryScanner()


def _check_segment_in_worker(task: tuple[str, int, int | None, str]) -> _Segment:
    """:func:`_check_segment` in a worker; the subtree hashes go back through a file.

    Through the pool's pipe a result moves 64 KB per wake-up of the reader
    thread in the verifier's process; on a busy machine the worker would
    spend most of its time waiting for it. A file in the verifier's private
    temporary directory is written without waiting.
    """
    path, start, end, spool = task
    scanner = _worker_scanner if _worker_scanner is not None else EntryScanner()
    segment = _check_segment(path, start, end, scanner)
    if not segment.levels:
        return segment
    name = os.path.join(spool, str(start))
    try:
        with open(name, "wb") as out:
            out.write(b"".join(segment.levels))
    except OSError:  # no room: the slower way is still right
        return segment
    return replace(segment, levels=[], spooled=(name, [len(level) for level in segment.levels]))


def _unspool(segment: _Segment) -> _Segment:
    """The segment with the subtree hashes a worker left in a file read back."""
    if segment.spooled is None:
        return segment
    name, sizes = segment.spooled
    with open(name, "rb") as spooled:
        data = spooled.read()
    os.remove(name)
    offsets = list(accumulate(sizes, initial=0))
    return replace(segment, levels=[data[a:b] for a, b in pairwise(offsets)], spooled=None)


def _segments(path: Path) -> list[tuple[str, int, int | None]]:
    """``(path, start, end)`` of segments of about SEGMENT bytes, cut after a newline."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as handle:
        for approx in range(SEGMENT, size, SEGMENT):
            if approx <= cuts[-1]:
                continue
            handle.seek(approx - 1)
            # Cut after the first newline at or after approx - 1.
            pos = approx - 1
            while piece := handle.read(1 << 16):
                newline = piece.find(b"\n")
                if newline >= 0:
                    cuts.append(pos + newline + 1)
                    break
                pos += len(piece)
            else:
                break
    bounds: list[int | None] = [*cuts[1:], None]
    return [(str(path), a, b) for a, b in zip(cuts, bounds, strict=True) if a != b]


def default_workers(path: Path) -> int:
    """One worker per CPU for a big log; none for a small one (start-up ~0.5 s).

    Worker processes are started with "spawn", which re-imports the
    caller's main module: only a program whose main module is guarded by
    ``if __name__ == "__main__"`` (like the ``intake`` command) may use them.
    """
    if path.stat().st_size < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _check_segments(path: Path, workers: int) -> Generator[_Segment]:
    """:func:`_check_segment` of every segment, in order, in ``workers`` processes.

    The workers read the file themselves: only offsets go to them and only
    chain ends and subtree hashes (64 bytes an entry, through a file) come
    back.
    """
    tasks = _segments(path)
    if workers <= 1 or len(tasks) <= 1:
        scanner = EntryScanner()
        for task in tasks:
            yield _check_segment(*task, scanner)
        return
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="intake-verify-") as spool, context.Pool(
            min(workers, len(tasks)), initializer=_start_worker) as pool:
        for segment in pool.imap(_check_segment_in_worker,
                                 [(*task, spool) for task in tasks]):
            yield _unspool(segment)
        # Leaving the block early (a failed segment) terminates the workers
        # (before the directory and what is left in it are removed).


def read_log(path: Path, *, workers: int = 1
             ) -> tuple[list[bytes], list[tuple[int, str]]]:
    """Like :func:`read_tree`, but return the leaf hashes as a list."""
    tree, notes = read_tree(path, workers=workers)
    leaves = tree.levels[0]
    step = merkle.HASH_SIZE
    return [leaves[i : i + step] for i in range(0, len(leaves), step)], notes


def read_tree(path: Path, *, workers: int = 1
              ) -> tuple[merkle.BlobHashSource, list[tuple[int, str]]]:
    """Steps 1 and 2 of the module docstring: check the chain, return the
    Merkle tree of the entries and the (line number, note) of every
    checkpoint line.

    With ``workers`` > 1, segments are checked in that many processes (see
    :func:`default_workers`); the chain is stitched across segments here
    either way.
    """
    parts: list[tuple[int, list[bytes]]] = []
    notes: list[tuple[int, str]] = []
    expected_prev = _GENESIS
    size = lines = 0
    broken: _Segment | None = None
    results = _check_segments(path, workers)
    try:
        for segment in results:
            for number, line in segment.notes:
                notes.append((lines + number, _parse_checkpoint_line(line, lines + number)))
            linked = segment.first_seq == size and segment.first_prev == expected_prev
            if not segment.ok or (segment.entries and not linked):
                broken = segment
                break
            if segment.entries:
                parts.append((size, segment.levels))
                size += segment.entries
                expected_prev = segment.last_hash
            lines += segment.lines
            if segment.unterminated:
                raise LogFormatError(f"line {lines + 1} does not end with a newline")
    finally:
        results.close()  # stops the workers at once if a segment failed
    if broken is not None:
        # Everything before the segment is verified: start the diagnosis there.
        _diagnose(path, broken.start, lines, size, expected_prev)
    return merkle.join_levels(parts, size), notes


def _diagnose(path: Path, start: int = 0, lines: int = 0, index: int = 0,
              last_hash: bytes = _GENESIS) -> NoReturn:
    """Re-read the log, streaming, and raise the most specific error.

    The verdict is what checking entry by entry gives: the first line (in
    file order) that is not a canonical entry; else the first position
    where the sequence number or the prev breaks, named reordered (the
    numbers are a permutation), deleted (the missing number appears nowhere
    later) or inserted, or modified (a prev that does not match). Memory is
    one block and one byte per entry the file could hold at most.

    The caller may skip what it has verified already: ``start`` is then the
    offset of the first line not verified, after ``lines`` lines holding
    ``index`` entries (numbered 0, 1, ...) whose last one hashes to ``last_hash``.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - 1))
        unterminated = size > 0 and handle.read(1) != b"\n"
    if unterminated:
        reader = _Reader(path)
        lines = sum(len(block_lines) for _, block_lines in reader)
        raise LogFormatError(f"line {lines + 1} does not end with a newline")
    scanner = EntryScanner()
    seen = bytearray(size // _MIN_ENTRY_LINE + 1)  # seen[s]: some entry has seq s
    seen[:index] = bytes([1]) * index
    repeated = False
    largest = index - 1
    last = bytes.fromhex(last_hash.decode("ascii"))  # digest of the entry before the block
    broken: tuple[int, int, str, str, int] | None = None  # position, seq, prev, hash, line
    notes: list[tuple[int, bytes]] = []
    for block, block_lines in _Reader(path, start):
        scanned = _scan(scanner, block, block_lines, lines + 1, notes)
        entries, numbers, prevs, seqs = (scanned.entries, scanned.numbers, scanned.prevs,
                                         scanned.seqs)
        first_line = lines + 1
        lines += len(block_lines)
        notes.clear()
        if scanned.error is not None:
            bad, err = scanned.error
            number = numbers[bad] if numbers is not None else first_line + bad
            raise EntryFormatError(str(err), line=number) from err
        if not entries:
            continue
        count = len(entries)
        low = seqs[0]
        if seqs == list(range(low, low + count)) and low + count <= len(seen):
            repeated = repeated or seen.find(1, low, low + count) >= 0
            seen[low : low + count] = bytes([1]) * count
        else:
            for seq in seqs:
                if seq < len(seen):
                    repeated = repeated or seen[seq] == 1
                    seen[seq] = 1
        largest = max(largest, max(seqs))
        digests = b"".join(map(_digest, map(_sha256, entries)))
        # The prev each line should record: the hash of the entry before it.
        hashes = last.hex() + digests[:-32].hex()
        if broken is None and (seqs != list(range(index, index + count))
                               or prevs != hashes.encode("ascii")):
            for k, at_seq in enumerate(seqs):
                should_be = hashes[_HEX_SIZE * k : _HEX_SIZE * (k + 1)]
                at_prev = prevs[_HEX_SIZE * k : _HEX_SIZE * (k + 1)]
                if at_seq != index + k or at_prev != should_be.encode("ascii"):
                    number = numbers[k] if numbers is not None else first_line + k
                    broken = (index + k, at_seq, at_prev.decode("ascii"), should_be, number)
                    break
        index += count
        last = digests[-32:]
    if broken is None:
        raise LogFormatError("the chain check failed but no broken link was found on re-reading")
    i, seq, prev, expected_prev, number = broken
    if seq != i:
        if not repeated and largest < index:  # the numbers are a permutation of 0..n-1
            raise ReorderedEntryError(
                f"line {number}: entry {seq} stands where entry {i} belongs: reordered",
                seq=i, expected=f"seq {i}", found=f"seq {seq}", line=number)
        # Positions before i hold 0..i-1, so "i nowhere later" is "i nowhere".
        if seq > i and not seen[i]:
            raise DeletedEntryError(
                f"line {number}: entries {i}..{seq - 1} are missing: deleted "
                f"(entry {seq} records prev {prev}, the entry before the gap hashes "
                f"to {expected_prev})",
                seq=i, expected=prev, found=expected_prev, line=number)
        raise InsertedEntryError(
            f"line {number}: entry number {seq} at position {i} does not belong: inserted",
            seq=seq, expected=f"seq {i}", found=f"seq {seq}", line=number)
    raise ModifiedEntryError(
        f"line {number}: entry {i - 1} was modified (or entry {i}'s prev): "
        f"entry {i} records prev {prev}, entry {i - 1} hashes to {expected_prev}",
        seq=i - 1, expected=prev, found=expected_prev, line=number)


def _parse_checkpoint_line(line: bytes, number: int) -> str:
    try:
        obj = json.loads(line)
    except ValueError as err:
        raise LogFormatError(f"line {number}: checkpoint line is not JSON") from err
    if not isinstance(obj, dict) or obj.keys() != {"checkpoint"} or not isinstance(
            obj["checkpoint"], str):
        raise LogFormatError(f'line {number}: a checkpoint line is {{"checkpoint": "<note>"}}')
    note: str = obj["checkpoint"]
    return note


def check_prefix(tree: merkle.ListHashSource | merkle.BlobHashSource, latest: Checkpoint,
                 earlier: Checkpoint, what: str) -> None:
    """Step 4: ``earlier`` (signed) must be a prefix of the verified log at ``latest``."""
    n = tree.size
    if earlier.size > n:
        raise TruncationError(
            f"{what} covers {earlier.size} entries but the log has only {n}: truncated",
            checkpoint=earlier, other=latest, log_size=n)
    if earlier.size == 0:
        if not hmac.compare_digest(earlier.root_hash, merkle.EMPTY_ROOT):
            raise ForkError(f"{what} has size 0 but not the empty root", checkpoint=earlier,
                            other=latest, expected_root=merkle.EMPTY_ROOT,
                            found_root=earlier.root_hash)
        return
    proof = merkle.consistency_proof(tree, earlier.size, latest.size)
    try:
        merkle.verify_consistency(earlier.size, latest.size, proof, earlier.root_hash,
                                  latest.root_hash)
    except InvalidProofError as err:
        raise ForkError(
            f"{what} (size {earlier.size}) is not a prefix of the log's checkpoint "
            f"(size {latest.size}): the history forked or was rewritten",
            checkpoint=earlier, other=latest, expected_root=earlier.root_hash,
            found_root=merkle.root(tree, earlier.size), proof=proof) from err


def verify_log(path: Path, verifier: NoteVerifier, *,
               trusted: Sequence[tuple[str, Checkpoint]] = (),
               workers: int = 1) -> VerifyResult:
    """Verify the export at ``path`` against the pinned log key.

    ``trusted`` are (description, checkpoint) pairs the caller has already
    verified (``--checkpoint`` files, the witness state); each must be a
    prefix of the log. ``workers`` > 1 checks the entries in that many
    processes (see :func:`default_workers` for when that is safe).
    Raises an :class:`AuditError` subclass on any failure.
    """
    tree, notes = read_tree(path, workers=workers)
    n = tree.size
    if not notes:
        raise LogFormatError("the log carries no signed checkpoint, so nothing vouches for it")
    opened: list[tuple[Checkpoint, str]] = []
    for number, note in notes:
        try:
            opened.append((open_checkpoint(note, verifier), note))
        except AuditError as err:
            err.args = (f"line {number}: {err}",)
            raise
    checkpoints = [c for c, _ in opened]
    latest, latest_note = max(opened, key=lambda pair: pair[0].size)
    if latest.size > n:
        raise TruncationError(
            f"the log's checkpoint covers {latest.size} entries but only {n} are present: "
            "entries were deleted from the end", checkpoint=latest, log_size=n)
    computed = merkle.root(tree, latest.size)
    if not hmac.compare_digest(computed, latest.root_hash):
        raise CheckpointMismatchError(
            f"the entries do not hash to the root signed at size {latest.size}: "
            "the log was altered after signing",
            checkpoint=latest, expected_root=latest.root_hash, found_root=computed, log_size=n)
    if latest.size < n:
        raise InsertedEntryError(
            f"entries {latest.size}..{n - 1} are not covered by any signed checkpoint",
            seq=latest.size, expected=f"size {latest.size}", found=f"size {n}")
    for checkpoint in checkpoints:
        if checkpoint is not latest:
            check_prefix(tree, latest, checkpoint, "a checkpoint in the log")
    for what, checkpoint in trusted:
        check_prefix(tree, latest, checkpoint, what)
    return VerifyResult(size=n, root=computed, checkpoint=latest, checkpoint_note=latest_note,
                        checkpoints=len(checkpoints),
                        witnessed=[c for _, c in trusted])
