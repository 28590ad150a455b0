"""C2SP tlog-checkpoint: the signed tree head of the audit log.

The body is ``<origin>\\n<size>\\n<base64 root>\\n`` followed by optional
extension lines; it is the text of a signed note (:mod:`.note`). Bodies are
parsed only after the signature has been checked (:func:`open_checkpoint`);
the parser that skips that step says so in its name.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from .errors import CheckpointFormatError, NoteFormatError
from .merkle import HASH_SIZE
from .note import NoteSigner, NoteVerifier, b64decode_canonical, open_note

_SIZE = re.compile(r"(0|[1-9][0-9]{0,18})\Z")
MAX_SIZE = 2**63 - 1


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log ``origin`` had ``size`` entries with ``root_hash``."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or any(c.isspace() for c in self.origin):
            raise CheckpointFormatError("the origin must be one non-empty word")
        if not 0 <= self.size <= MAX_SIZE:
            raise CheckpointFormatError("the tree size is out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise CheckpointFormatError("the root hash must be 32 bytes")
        for line in self.extensions:
            if not line or "\n" in line:
                raise CheckpointFormatError("extension lines must be non-empty single lines")

    def body(self) -> str:
        """The note text: origin, size, root and extension lines, each ending in \\n."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(f"{line}\n" for line in (self.origin, str(self.size), root,
                                                *self.extensions))

    def to_json(self) -> dict[str, object]:
        return {"origin": self.origin, "size": self.size, "root": self.root_hash.hex()}


def parse_unverified_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint body. The caller must already have verified its signature."""
    if not text.endswith("\n"):
        raise CheckpointFormatError("a checkpoint body ends with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointFormatError("a checkpoint has an origin, a size and a root line")
    origin, size_text, root_text, *extensions = lines
    if not _SIZE.match(size_text):
        raise CheckpointFormatError("the tree size must be a decimal without leading zeros")
    try:
        root = b64decode_canonical(root_text, "the root hash")
    except NoteFormatError as err:
        raise CheckpointFormatError(str(err)) from err
    return Checkpoint(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(checkpoint: Checkpoint, signer: NoteSigner) -> str:
    """The checkpoint as a signed note. The origin must be the signer's key name."""
    if checkpoint.origin != signer.name:
        raise CheckpointFormatError("the checkpoint origin must equal the log key's name")
    return signer.sign(checkpoint.body())


def open_checkpoint(note_text: str, verifier: NoteVerifier) -> Checkpoint:
    """Verify the signed note with the log's key, then parse the checkpoint.

    The origin line must equal the key name: a checkpoint of another log,
    even one signed by a key with the same bytes, is refused.
    """
    text = open_note(note_text, verifier)
    checkpoint = parse_unverified_checkpoint(text)
    if checkpoint.origin != verifier.name:
        raise CheckpointFormatError(
            f"checkpoint origin {checkpoint.origin!r} is not the log {verifier.name!r}")
    return checkpoint
