"""C2SP tlog-proof bundles: one entry, its inclusion proof and a signed checkpoint.

::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <N>
    <base64 hash>          (zero or more, leaf sibling first)
    <empty line>
    <signed checkpoint note, verbatim>

The ``extra`` line is unauthenticated; we put the entry's canonical bytes
there so that the bundle is self-contained, and :func:`verify_proof`
recomputes the leaf hash from them rather than trusting anything.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from .checkpoint import Checkpoint, open_checkpoint
from .errors import NoteFormatError, ProofFormatError
from .merkle import leaf_hash, verify_inclusion
from .note import NoteVerifier, b64decode_canonical

HEADER = "c2sp.org/tlog-proof@v1"
_INDEX = re.compile(r"index (0|[1-9][0-9]{0,18})\Z")


@dataclass(frozen=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint_note: str
    extra: bytes | None = None

    def encode(self) -> str:
        lines = [HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode("ascii"))
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode("ascii") for h in self.hashes)
        return "\n".join(lines) + "\n\n" + self.checkpoint_note


def parse_proof(text: str) -> TlogProof:
    """Parse the bundle's structure; nothing in it is trusted yet."""
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise ProofFormatError("a tlog-proof has a blank line before its checkpoint")
    lines = head.split("\n")
    if lines[0] != HEADER:
        raise ProofFormatError(f"a tlog-proof starts with {HEADER}")
    pos = 1
    extra = None
    try:
        if pos < len(lines) and lines[pos].startswith("extra "):
            extra = b64decode_canonical(lines[pos][6:], "the extra data")
            pos += 1
        if pos >= len(lines) or not (m := _INDEX.match(lines[pos])):
            raise ProofFormatError("missing or malformed 'index N' line")
        index = int(m.group(1))
        hashes = tuple(b64decode_canonical(line, "a proof hash") for line in lines[pos + 1 :])
    except NoteFormatError as err:
        raise ProofFormatError(str(err)) from err
    return TlogProof(index, hashes, note, extra)


def verify_proof(text: str, verifier: NoteVerifier, entry_bytes: bytes | None = None
                 ) -> tuple[Checkpoint, int, bytes]:
    """Verify a bundle: checkpoint signature, then inclusion of the entry.

    The entry bytes come from ``entry_bytes`` or else the bundle's ``extra``
    line. Returns (checkpoint, index, entry bytes). Raises AuditError subclasses.
    """
    proof = parse_proof(text)
    # 1. The checkpoint must be signed by the log key before it is believed.
    checkpoint = open_checkpoint(proof.checkpoint_note, verifier)
    data = entry_bytes if entry_bytes is not None else proof.extra
    if data is None:
        raise ProofFormatError("no entry given and the proof carries none")
    # 2. The entry's leaf hash must be at the index in the signed tree.
    verify_inclusion(leaf_hash(data), proof.index, checkpoint.size, proof.hashes,
                     checkpoint.root_hash)
    return checkpoint, proof.index, data
