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

Speed (1M entries, bench/audit.py): the file is read in 8 MB blocks and
checked CHUNK entries at a time. A chunk is decoded with one ``json.loads``
and re-encoded with one canonical ``json.dumps`` (the canonical check,
about two thirds of the time); the fields are checked with ``map``, joins
and one regex per chunk, never an object per entry; each chunk's Merkle
subtrees are hashed where it is checked, in a worker process if any, and
the tree is kept as one byte string per level. Any chunk the fast path
cannot vouch for is re-checked entry by entry with ``Entry.from_canonical``,
the specification, so the fast path can only refuse, never accept more.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import operator
import os
import re
from collections import deque
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from multiprocessing.pool import AsyncResult
from pathlib import Path
from typing import NoReturn

from . import merkle
from .checkpoint import Checkpoint, open_checkpoint
from .entry import (
    ENTRY_KEYS,
    GENESIS_PREV,
    MAX_SAFE_INTEGER,
    Entry,
    canonical_text,
    encode_canonical,
)
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
# Whole-chunk forms of the entry's time and action patterns, one per line.
_TIMES = re.compile(r"(?:\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z\n)*")
_ACTIONS = re.compile(r"(?:[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+\n)*")
# Entries per chunk: a power of two, so that every complete Merkle subtree
# up to this size lies inside one chunk and a worker can hash it.
CHUNK = 4096
BLOCK = 8 << 20  # bytes read at a time
PARALLEL_MIN_BYTES = 64 << 20
_sha256 = hashlib.sha256
_FIELDS = operator.itemgetter("action", "actor", "details", "seq", "subject", "time")
_PREV = operator.itemgetter("prev")
_SEQ = operator.itemgetter("seq")
# Maps every digit to "0" and every byte that can precede a number token in
# canonical JSON (":", ",", "[", and "-" inside one) to ":", all else to "x":
# a number of 16 or more digits then shows up as ":" followed by 16 "0"s.
_NUMBER_SHAPE = bytes(
    ord("0") if chr(b).isdigit() and b < 128 else ord(":") if b in b":,[-" else ord("x")
    for b in range(256))
_LONG_NUMBER = b":" + b"0" * 16


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


class _FastPathRefusedError(Exception):
    """The quick chunk check could not vouch for a chunk; check it entry by entry."""


def _refuse(_: str) -> NoReturn:
    raise _FastPathRefusedError


def _safe_int(text: str) -> int:
    value = int(text)
    if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        raise _FastPathRefusedError
    return value


def _read_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.endswith(b"\n"):
                raise LogFormatError(f"line {number} does not end with a newline")
            yield number, line[:-1]


def _fast_chunk_ok(chunk: Sequence[bytes]) -> list[dict[str, object]]:
    """Decode a chunk at C speed and prove it canonical, or raise _FastPathRefusedError.

    The joined chunk must be ASCII (so no non-ASCII key slips through), decode
    without floats, NaN or integers past 2^53, and re-encode to exactly the
    same bytes (which also refuses duplicate keys: the decoded object would
    be shorter), hold one object per line, and its fields must pass the
    checks of ``Entry.validate``. Anything unusual falls back to the exact
    per-entry validator, which is the specification.
    """
    joined = b"[" + b",".join(chunk) + b"]"
    if not joined.isascii():
        raise _FastPathRefusedError
    text = joined.decode("ascii")
    # Integers of up to 15 digits are inside +-(2^53-1) and need no hook;
    # only a chunk that might hold a longer one pays for checking each.
    parse_int = _safe_int if _LONG_NUMBER in joined.translate(_NUMBER_SHAPE) else None
    try:
        objs = json.loads(text, parse_float=_refuse, parse_constant=_refuse,
                          parse_int=parse_int)
        again = canonical_text(objs)
    except ValueError as err:
        raise _FastPathRefusedError from err
    if again != text or type(objs) is not list or len(objs) != len(chunk):
        raise _FastPathRefusedError
    # The field checks of Entry.validate, done per chunk with C-speed
    # primitives (map, join, one anchored regex for every time stamp or
    # action of the chunk at once); joining fails on a non-string.
    try:
        # dict.keys refuses a non-dict; operator.eq compares key views to the set.
        if not all(map(operator.eq, map(dict.keys, objs), repeat(ENTRY_KEYS))):
            raise _FastPathRefusedError
        actions, actors, details, seqs, subjects, times = zip(*map(_FIELDS, objs),
                                                              strict=True)
        joined_times = "\n".join(times) + "\n"
        joined_actions = "\n".join(actions) + "\n"
        "".join(actors)
        "".join(chain.from_iterable(map(dict.values, subjects)))
    except (TypeError, AttributeError) as err:
        raise _FastPathRefusedError from err
    # A value with an embedded newline would add a line: count them too.
    # type() is exact: a bool is not an int here.
    if not (joined_times.count("\n") == joined_actions.count("\n") == len(objs)
            and _TIMES.fullmatch(joined_times) and _ACTIONS.fullmatch(joined_actions)
            and min(map(len, actors)) > 0 and max(map(len, actors)) <= 200
            and set(map(type, seqs)) == {int} and min(seqs) >= 0
            and set(map(type, details)) == {dict} and set(map(type, subjects)) == {dict}):
        raise _FastPathRefusedError
    return objs


def _exact_chunk(chunk: Sequence[bytes], numbers: Sequence[int]) -> list[dict[str, object]]:
    out = []
    for line, number in zip(chunk, numbers, strict=True):
        try:
            out.append(Entry.from_canonical(line).to_json())
        except EntryFormatError as err:
            raise EntryFormatError(str(err), line=number) from err
    return out


def _diagnose(path: Path) -> NoReturn:
    """Re-read the log entry by entry and raise the most specific chain error."""
    lines: list[tuple[int, bytes]] = [
        (n, line) for n, line in _read_lines(path) if not line.startswith(CHECKPOINT_PREFIX)]
    entries = _exact_chunk([line for _, line in lines], [n for n, _ in lines])
    seqs = [int(str(e["seq"])) for e in entries]
    all_present = sorted(seqs) == list(range(len(seqs)))
    expected_prev = GENESIS_PREV
    for i, (entry, (number, line)) in enumerate(zip(entries, lines, strict=True)):
        seq, prev = seqs[i], str(entry["prev"])
        if seq != i:
            if all_present:
                raise ReorderedEntryError(
                    f"line {number}: entry {seq} stands where entry {i} belongs: reordered",
                    seq=i, expected=f"seq {i}", found=f"seq {seq}", line=number)
            if seq > i and i not in seqs[i:]:
                raise DeletedEntryError(
                    f"line {number}: entries {i}..{seq - 1} are missing: deleted "
                    f"(entry {seq} records prev {prev}, the entry before the gap hashes "
                    f"to {expected_prev})",
                    seq=i, expected=prev, found=expected_prev, line=number)
            raise InsertedEntryError(
                f"line {number}: entry number {seq} at position {i} does not belong: inserted",
                seq=seq, expected=f"seq {i}", found=f"seq {seq}", line=number)
        if prev != expected_prev:
            raise ModifiedEntryError(
                f"line {number}: entry {i - 1} was modified (or entry {i}'s prev): "
                f"entry {i} records prev {prev}, entry {i - 1} hashes to {expected_prev}",
                seq=i - 1, expected=prev, found=expected_prev, line=number)
        expected_prev = _sha256(line).hexdigest()
    raise LogFormatError("the chain check failed but no broken link was found on re-reading")


@dataclass(frozen=True)
class _Chunk:
    """What one chunk of entry lines contributes: its chain ends and its subtrees."""

    first_seq: int
    first_prev: str
    last_hash: str
    levels: list[bytes]  # merkle.complete_levels over the chunk's leaf hashes


def _check_chunk(chunk: list[bytes]) -> _Chunk | None:
    """Validate and hash a chunk of entry lines; None if anything is wrong.

    A None sends the verifier to :func:`_diagnose`, which re-reads the whole
    log entry by entry and names the problem, so this function needs no line
    numbers and can run in a worker process.
    """
    try:
        objs = _fast_chunk_ok(chunk)
    except _FastPathRefusedError:
        try:
            objs = [Entry.from_canonical(line).to_json() for line in chunk]
        except EntryFormatError:
            return None
    first = objs[0]["seq"]
    if type(first) is not int or list(map(_SEQ, objs)) != list(
            range(first, first + len(objs))):
        return None
    hashes = [_sha256(line).hexdigest() for line in chunk]
    if list(map(_PREV, objs[1:])) != hashes[:-1]:
        return None
    leaves = b"".join([_sha256(b"\x00" + line).digest() for line in chunk])
    return _Chunk(first, str(objs[0]["prev"]), hashes[-1],
                  merkle.complete_levels([leaves]).levels)


def _chunks(path: Path, notes: list[tuple[int, str]]) -> Iterator[list[bytes]]:
    """The entry lines, CHUNK at a time; checkpoint lines are collected into ``notes``.

    The file is read in blocks of BLOCK bytes and split at newlines (a raw
    newline only ever ends a line: inside a JSON string it is escaped).
    """
    pending: list[bytes] = []
    number = 0  # lines before this block
    rest = b""
    with path.open("rb") as handle:
        while block := handle.read(BLOCK):
            block = rest + block if rest else block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            lines = block[:cut].split(b"\n")
            lines.pop()  # the empty string after the last newline
            first, number = number + 1, number + len(lines)
            if CHECKPOINT_PREFIX in block:
                entries = []
                for i, line in enumerate(lines, first):
                    if line.startswith(CHECKPOINT_PREFIX):
                        notes.append((i, _parse_checkpoint_line(line, i)))
                    else:
                        entries.append(line)
                lines = entries
            pending.extend(lines)
            while len(pending) >= CHUNK:
                yield pending[:CHUNK]
                del pending[:CHUNK]
    if rest:
        raise LogFormatError(f"line {number + 1} does not end with a newline")
    if pending:
        yield pending


def default_workers(path: Path) -> int:
    """One worker per CPU for a big log; none for a small one (start-up ~0.5 s).

    Worker processes are started with "spawn", which re-imports the
    caller's main module: only a program whose main module is guarded by
    ``if __name__ == "__main__"`` (like the ``intake`` command) may use them.
    """
    if path.stat().st_size < PARALLEL_MIN_BYTES:
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def _serial(chunks: Iterator[list[bytes]]) -> Generator[_Chunk | None]:
    yield from map(_check_chunk, chunks)


def _parallel(chunks: Iterator[list[bytes]], workers: int) -> Generator[_Chunk | None]:
    """``map(_check_chunk, chunks)`` in ``workers`` processes, in order.

    At most 4 chunks per worker are in flight, so memory stays bounded
    however big the log (``Pool.imap`` would read the whole file ahead).
    """
    pool = multiprocessing.get_context("spawn").Pool(workers)
    try:
        window: deque[AsyncResult[_Chunk | None]] = deque()
        for chunk in chunks:
            window.append(pool.apply_async(_check_chunk, (chunk,)))
            if len(window) >= 4 * workers:
                yield window.popleft().get()
        while window:
            yield window.popleft().get()
    finally:
        pool.terminate()
        pool.join()


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

    With ``workers`` > 1, chunks are checked in that many processes (see
    :func:`default_workers`); the chain is stitched across chunk boundaries
    here either way.
    """
    parts: list[list[bytes]] = [[]]
    notes: list[tuple[int, str]] = []
    expected_prev = GENESIS_PREV
    size = 0
    # Chunk levels 0..shared hold only subtrees that no chunk boundary cuts.
    shared = (CHUNK & -CHUNK).bit_length()
    chunks = _chunks(path, notes)
    results = _parallel(chunks, workers) if workers > 1 else _serial(chunks)
    try:
        for result in results:
            if result is None or result.first_seq != size or (
                    result.first_prev != expected_prev):
                _diagnose(path)
            expected_prev = result.last_hash
            size += len(result.levels[0]) // merkle.HASH_SIZE
            # Every chunk but the last holds CHUNK entries, so its complete
            # subtrees of up to 2^(shared-1) leaves are the tree's, in order.
            levels = result.levels[:shared]
            parts.extend([] for _ in range(len(levels) - len(parts)))
            for part, level in zip(parts, levels, strict=False):
                part.append(level)
    finally:
        results.close()  # stops the workers at once if a chunk failed
    return merkle.complete_levels([b"".join(part) for part in parts]), notes


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
