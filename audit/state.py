"""The auditor's witness state: the last checkpoint ``intake audit verify`` accepted.

A log operator holding the signing key could rewrite history and sign the
new log; each export on its own would verify. The state file remembers the
last verified (signed) checkpoint; the next run demands that the new log
extend it (a consistency proof built from the new entries and checked with
``verify_consistency``), and only then moves the state forward. The state is
local to the auditor: keep it where the log operator cannot write.

Format (JSON): ``{"format": "evidence-intake-audit-state/v1", "vkey": ...,
"checkpoint": "<signed note>"}``. The note is re-verified on every load, so
editing the file cannot plant an unsigned checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from .checkpoint import Checkpoint, open_checkpoint
from .errors import AuditError, StateError
from .note import NoteVerifier

FORMAT = "evidence-intake-audit-state/v1"


def load_state(path: Path, verifier: NoteVerifier) -> Checkpoint | None:
    """The checkpoint recorded in ``path``, or None if the file does not exist yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise StateError(f"cannot read the state file {path}: {err.strerror}") from err
    try:
        obj = json.loads(raw)
    except ValueError as err:
        raise StateError(f"the state file {path} is not JSON") from err
    if not isinstance(obj, dict) or obj.get("format") != FORMAT or not isinstance(
            obj.get("checkpoint"), str) or not isinstance(obj.get("vkey"), str):
        raise StateError(f"the state file {path} is not an {FORMAT} file")
    if obj["vkey"] != verifier.vkey:
        raise StateError(
            f"the state file {path} belongs to the key {obj['vkey']}, not {verifier.vkey}")
    try:
        return open_checkpoint(obj["checkpoint"], verifier)
    except AuditError as err:
        raise StateError(f"the checkpoint in the state file {path} is invalid: {err}") from err


def save_state(path: Path, verifier: NoteVerifier, note: str) -> None:
    """Atomically record ``note`` (a verified checkpoint) as the new state."""
    data = json.dumps({"format": FORMAT, "vkey": verifier.vkey, "checkpoint": note},
                      indent=1).encode("utf-8") + b"\n"
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
