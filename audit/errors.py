"""The audit package's errors: one base class, one subclass per broken check.

Each error names the check that failed and carries the evidence an auditor
needs to see it for themselves: the entry number, the expected and the found
hash, and for a disagreement between signed checkpoints both checkpoints and
the proof. The verifier CLI maps each class to its own exit code
(docs/cli/audit.md), so a script can tell a forged checkpoint from a deleted
entry without reading the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .checkpoint import Checkpoint


class AuditError(Exception):
    """Base class of every error raised by ``evidence_intake.audit``."""

    #: A short stable name of the failure class, used in ``--json`` output.
    kind = "audit-error"

    def evidence(self) -> dict[str, object]:
        """The machine-readable evidence of this failure (hex hashes, numbers)."""
        return {}


# --- Merkle proofs --------------------------------------------------------------


class InvalidProofError(AuditError):
    """A Merkle inclusion or consistency proof is malformed or does not verify."""

    kind = "invalid-proof"


class RootMismatchError(InvalidProofError):
    """A proof was well formed but led to a different root than the one given."""

    kind = "root-mismatch"

    def __init__(self, message: str, *, expected: bytes, found: bytes) -> None:
        super().__init__(message)
        self.expected = expected
        self.found = found

    def evidence(self) -> dict[str, object]:
        return {"expected_root": self.expected.hex(), "found_root": self.found.hex()}


# --- Signed notes and checkpoints ------------------------------------------------


class NoteError(AuditError):
    """Base class of signed-note failures."""

    kind = "note-error"


class NoteFormatError(NoteError):
    """The signed note, a key string or a signature line is malformed."""

    kind = "malformed-note"


class UnknownKeyError(NoteError):
    """The note carries no signature by the trusted key (a wrongly keyed note)."""

    kind = "wrong-key"


class InvalidSignatureError(NoteError):
    """A signature claims to be by the trusted key but does not verify (a forgery)."""

    kind = "forged-signature"


class CheckpointFormatError(AuditError):
    """The (verified) note text is not a valid tlog-checkpoint body."""

    kind = "malformed-checkpoint"


class ProofFormatError(AuditError):
    """A tlog-proof bundle is malformed."""

    kind = "malformed-proof"


# --- The log itself ---------------------------------------------------------------


class EntryFormatError(AuditError):
    """An entry is not valid canonical JSON of the entry schema."""

    kind = "malformed-entry"

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.line = line

    def evidence(self) -> dict[str, object]:
        return {"line": self.line}


class LogFormatError(AuditError):
    """The log export as a whole is malformed (no checkpoint, misplaced lines)."""

    kind = "malformed-log"


class EntryError(AuditError):
    """Base class of failures that point at one entry of the chain."""

    kind = "entry-error"

    def __init__(
        self,
        message: str,
        *,
        seq: int,
        expected: str | None = None,
        found: str | None = None,
        line: int | None = None,
    ) -> None:
        super().__init__(message)
        self.seq = seq
        self.expected = expected
        self.found = found
        self.line = line

    def evidence(self) -> dict[str, object]:
        return {"seq": self.seq, "expected": self.expected, "found": self.found,
                "line": self.line}


class ModifiedEntryError(EntryError):
    """An entry's hash differs from the ``prev`` its successor recorded."""

    kind = "modified-entry"


class DeletedEntryError(EntryError):
    """The sequence numbers jump: one or more entries are missing."""

    kind = "deleted-entry"


class InsertedEntryError(EntryError):
    """An entry appears that does not belong: a repeated sequence number, or an
    entry beyond the last signed checkpoint."""

    kind = "inserted-entry"


class ReorderedEntryError(EntryError):
    """Every sequence number is present once, but not in order."""

    kind = "reordered-entry"


class CheckpointError(AuditError):
    """Base class of failures between the log and a signed checkpoint."""

    kind = "checkpoint-error"

    def __init__(
        self,
        message: str,
        *,
        checkpoint: Checkpoint,
        other: Checkpoint | None = None,
        expected_root: bytes | None = None,
        found_root: bytes | None = None,
        log_size: int | None = None,
        proof: list[bytes] | None = None,
    ) -> None:
        super().__init__(message)
        self.checkpoint = checkpoint
        self.other = other
        self.expected_root = expected_root
        self.found_root = found_root
        self.log_size = log_size
        self.proof = proof

    def evidence(self) -> dict[str, object]:
        out: dict[str, object] = {"checkpoint": self.checkpoint.to_json()}
        if self.other is not None:
            out["other_checkpoint"] = self.other.to_json()
        if self.expected_root is not None:
            out["expected_root"] = self.expected_root.hex()
        if self.found_root is not None:
            out["found_root"] = self.found_root.hex()
        if self.log_size is not None:
            out["log_size"] = self.log_size
        if self.proof is not None:
            out["proof"] = [h.hex() for h in self.proof]
        return out


class CheckpointMismatchError(CheckpointError):
    """The entries do not hash to the root the checkpoint signed (rewritten log)."""

    kind = "checkpoint-mismatch"


class TruncationError(CheckpointError):
    """A signed checkpoint covers more entries than the log holds."""

    kind = "truncated"


class ForkError(CheckpointError):
    """Two validly signed checkpoints are not consistent: the history forked."""

    kind = "fork"


class StateError(AuditError):
    """The ``--state`` witness file is unreadable or malformed."""

    kind = "bad-state"
