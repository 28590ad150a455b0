"""``intake audit``: verify an audit-log export offline; export, checkpoint and prove from the DB.

``intake audit verify`` is offline: it imports ``evidence_intake.audit`` only
(PyNaCl and the standard library). The other subcommands read the service's
database; they import ``evidence_intake.service`` inside their handlers, so
that an auditor's machine never needs SQLAlchemy.

Exit codes of ``verify`` (docs/cli/audit.md): 0 verified; 1 other failure;
2 usage or unreadable input; 3 malformed log, entry, note or checkpoint;
4 modified entry; 5 deleted entry; 6 inserted entry; 7 reordered entries;
8 forged checkpoint signature; 9 checkpoint not signed by the pinned key;
10 entries do not match the signed checkpoint; 11 truncated below a signed
checkpoint; 12 fork between two signed checkpoints; 13 bad witness state file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..audit.checkpoint import Checkpoint, open_checkpoint
from ..audit.errors import (
    AuditError,
    CheckpointFormatError,
    CheckpointMismatchError,
    DeletedEntryError,
    EntryFormatError,
    ForkError,
    InsertedEntryError,
    InvalidSignatureError,
    LogFormatError,
    ModifiedEntryError,
    NoteFormatError,
    ProofFormatError,
    ReorderedEntryError,
    StateError,
    TruncationError,
    UnknownKeyError,
)
from ..audit.note import NoteVerifier, parse_vkey
from ..audit.state import load_state, save_state
from ..audit.verify import VerifyResult, default_workers, verify_log
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, atomic_output

EXIT_MALFORMED = 3
EXIT_MODIFIED = 4
EXIT_DELETED = 5
EXIT_INSERTED = 6
EXIT_REORDERED = 7
EXIT_FORGED = 8
EXIT_WRONG_KEY = 9
EXIT_MISMATCH = 10
EXIT_TRUNCATED = 11
EXIT_FORK = 12
EXIT_STATE = 13

# Most specific first: the first matching class decides the exit code.
EXIT_CODES: tuple[tuple[type[AuditError], int], ...] = (
    (ModifiedEntryError, EXIT_MODIFIED),
    (DeletedEntryError, EXIT_DELETED),
    (InsertedEntryError, EXIT_INSERTED),
    (ReorderedEntryError, EXIT_REORDERED),
    (InvalidSignatureError, EXIT_FORGED),
    (UnknownKeyError, EXIT_WRONG_KEY),
    (CheckpointMismatchError, EXIT_MISMATCH),
    (TruncationError, EXIT_TRUNCATED),
    (ForkError, EXIT_FORK),
    (StateError, EXIT_STATE),
    (EntryFormatError, EXIT_MALFORMED),
    (LogFormatError, EXIT_MALFORMED),
    (NoteFormatError, EXIT_MALFORMED),
    (CheckpointFormatError, EXIT_MALFORMED),
    (ProofFormatError, EXIT_MALFORMED),
)


def exit_code_for(err: AuditError) -> int:
    for cls, code in EXIT_CODES:
        if isinstance(err, cls):
            return code
    return EXIT_FAILED


_VERIFY_EPILOG = """\
examples:
  intake audit verify log.jsonl --key 'intake.example.org/audit+1a2b3c4d+AUs...'
  intake audit verify log.jsonl --key "$(cat log.vkey)" --state ~/.intake-audit-state
      remembers the last verified checkpoint; the next run fails (exit 12) if the
      new log does not extend it, even when the new log is signed and self-consistent
  intake audit verify log.jsonl --key "$(cat log.vkey)" --checkpoint seen.checkpoint --json

exit codes: 0 verified, 2 usage, 3 malformed, 4 modified entry, 5 deleted entry,
6 inserted entry, 7 reordered, 8 forged checkpoint, 9 wrong key, 10 log does not
match its checkpoint, 11 truncated, 12 fork, 13 bad state file (docs/cli/audit.md)
"""

_EXPORT_EPILOG = """\
examples:
  intake audit export -o log.jsonl
      signs a fresh checkpoint (with var/log.key) and writes every entry it covers
  intake audit export -o log.jsonl --database-url postgresql+psycopg://intake@db/intake
"""

_CHECKPOINT_EPILOG = """\
examples:
  intake audit checkpoint > now.checkpoint
      signs, stores and prints a checkpoint of the log as it is now
"""

_PROVE_EPILOG = """\
examples:
  intake audit prove 42 -o entry-42.tlog-proof
      a C2SP tlog-proof: the entry (in the 'extra' line), its inclusion proof and
      the newest signed checkpoint that covers it
"""


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "audit", help="verify, export and prove the tamper-evident audit log",
        description="The tamper-evident audit log: offline verification of an export, "
        "and export, checkpoint and proof commands on the service's database.")
    commands = group.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda _args: _usage(group))

    verify = commands.add_parser(
        "verify", help="verify an audit-log export offline",
        description="Recompute every entry hash, the chain and the Merkle root of a JSONL "
        "export; check each checkpoint's signature with the pinned key and that the log "
        "matches it. Needs no database and no network.",
        epilog=_VERIFY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("log", help="the JSONL export (from 'intake audit export')")
    verify.add_argument("--key", required=True, metavar="VKEY",
                        help="the log's verifier key string, name+hex8+base64, pinned "
                        "out of band")
    verify.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                        help="a signed checkpoint seen elsewhere that the log must extend "
                        "(repeatable)")
    verify.add_argument("--state", metavar="FILE",
                        help="witness state: the last verified checkpoint; created if "
                        "missing, advanced on success")
    verify.add_argument("--json", action="store_true", help="print a JSON report on stdout")
    verify.add_argument("--jobs", type=int, metavar="N",
                        help="worker processes for checking entries (default: one per CPU "
                        "for logs over 64 MB)")
    verify.set_defaults(func=run_verify)

    export = commands.add_parser(
        "export", help="write the audit log as JSONL (signs a checkpoint first)",
        description="Sign a checkpoint of the log as it is now and write every entry and "
        "signed checkpoint up to it as JSONL (docs/formats/audit-log.md).",
        epilog=_EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("-o", "--output", required=True, help="output file ('-' for stdout)")
    _database_arguments(export)
    export.add_argument("--no-sign", action="store_true",
                        help="do not sign a fresh checkpoint; end at the newest stored one")
    export.set_defaults(func=run_export)

    checkpoint = commands.add_parser(
        "checkpoint", help="sign and print a checkpoint of the log now",
        description="Sign a C2SP checkpoint of the log's current size, store it and print "
        "the signed note.", epilog=_CHECKPOINT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    _database_arguments(checkpoint)
    checkpoint.set_defaults(func=run_checkpoint)

    prove = commands.add_parser(
        "prove", help="write a tlog-proof that entry SEQ is in the log",
        description="Write a C2SP tlog-proof for one entry against the newest signed "
        "checkpoint covering it.", epilog=_PROVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    prove.add_argument("seq", type=int, help="the entry number")
    prove.add_argument("-o", "--output", default="-", help="output file (default stdout)")
    prove.add_argument("--sign", action="store_true",
                       help="sign a fresh checkpoint first (needs the log key)")
    _database_arguments(prove)
    prove.set_defaults(func=run_prove)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _database_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--database-url", metavar="URL",
                        help="SQLAlchemy URL (default: $INTAKE_DATABASE_URL, else "
                        "sqlite:///./var/intake.db)")
    parser.add_argument("--key-file", metavar="FILE",
                        help="the log signing key (default: $INTAKE_DATA_DIR/log.key, "
                        "var/log.key)")


# --- verify (offline) ------------------------------------------------------------


def _read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(f"cannot read {what} {path}: {err}", EXIT_USAGE) from err


def _verify(args: argparse.Namespace, verifier: NoteVerifier
            ) -> tuple[VerifyResult, Path | None]:
    trusted: list[tuple[str, Checkpoint]] = []
    for path in args.checkpoint:
        note = _read_text(path, "checkpoint file")
        trusted.append((f"checkpoint file {path}", open_checkpoint(note, verifier)))
    state_path = Path(args.state) if args.state else None
    if state_path is not None:
        previous = load_state(state_path, verifier)
        if previous is not None:
            trusted.append((f"the witness state {state_path}", previous))
    log_path = Path(args.log)
    if not log_path.is_file():
        raise CommandError(f"cannot read {log_path}: no such file", EXIT_USAGE)
    try:
        jobs = args.jobs if args.jobs is not None else default_workers(log_path)
        result = verify_log(log_path, verifier, trusted=trusted, workers=max(1, jobs))
    except OSError as err:
        raise CommandError(f"cannot read {log_path}: {err.strerror}", EXIT_USAGE) from err
    if state_path is not None:
        save_state(state_path, verifier, result.checkpoint_note)
    return result, state_path


def run_verify(args: argparse.Namespace) -> int:
    try:
        verifier = parse_vkey(args.key)
    except NoteFormatError as err:
        raise CommandError(f"--key: {err}", EXIT_USAGE) from err
    try:
        result, state_path = _verify(args, verifier)
    except AuditError as err:
        code = exit_code_for(err)
        if args.json:
            json.dump({"verified": False, "kind": err.kind, "exit_code": code,
                       "message": str(err), "evidence": err.evidence()}, sys.stdout, indent=1)
            sys.stdout.write("\n")
        print(f"intake: audit log NOT verified ({err.kind}): {err}", file=sys.stderr)
        return code
    if args.json:
        report: dict[str, object] = {"verified": True, **result.to_json()}
        if state_path is not None:
            report["state"] = str(state_path)
        json.dump(report, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"verified: {result.size} entries, root {result.root.hex()}")
        print(f"signed by {verifier.vkey} ({result.checkpoints} checkpoints in the log)")
        for seen in result.witnessed:
            print(f"extends the checkpoint of size {seen.size} root {seen.root_hash.hex()}")
        if state_path is not None:
            print(f"witness state advanced to size {result.checkpoint.size} in {state_path}")
    return EXIT_OK


# --- database commands (lazy service imports) ---------------------------------------


def _open_database(args: argparse.Namespace) -> tuple[Any, Path]:
    """(session factory, key path) from --database-url/--key-file or the settings."""
    from ..service.db import Database
    from ..service.settings import load_settings

    overrides: dict[str, Any] = {}
    url = args.database_url or os.environ.get("INTAKE_DATABASE_URL")
    if url:
        overrides["database_url"] = url
    settings = load_settings(**overrides)
    key_path = Path(args.key_file) if args.key_file else settings.log_key_path
    return Database.from_settings(settings), key_path


def _signer(key_path: Path) -> Any:
    from ..service.auditlog import LogKeyError, load_log_signer

    try:
        return load_log_signer(key_path)
    except LogKeyError as err:
        raise CommandError(str(err), EXIT_FAILED) from err


def run_export(args: argparse.Namespace) -> int:
    from ..service.auditlog import AuditLogError, export_jsonl

    database, key_path = _open_database(args)
    signer = None if args.no_sign else _signer(key_path)
    try:
        with database.session() as session, atomic_output(args.output) as out:
            checkpoint = export_jsonl(session, out, signer)
            session.commit()
    except AuditLogError as err:
        raise CommandError(str(err), EXIT_FAILED) from err
    finally:
        database.engine.dispose()
    print(f"exported {checkpoint.size} entries, root {checkpoint.root_hash.hex()}",
          file=sys.stderr)
    return EXIT_OK


def run_checkpoint(args: argparse.Namespace) -> int:
    from ..service.auditlog import sign_checkpoint

    database, key_path = _open_database(args)
    signer = _signer(key_path)
    try:
        with database.session() as session:
            note = sign_checkpoint(session, signer)
            session.commit()
    finally:
        database.engine.dispose()
    sys.stdout.write(note)
    return EXIT_OK


def run_prove(args: argparse.Namespace) -> int:
    from ..service.auditlog import AuditLogError, prove

    database, key_path = _open_database(args)
    signer = _signer(key_path) if args.sign else None
    try:
        with database.session() as session:
            text = prove(session, args.seq, signer)
            session.commit()
    except AuditLogError as err:
        raise CommandError(str(err), EXIT_FAILED) from err
    finally:
        database.engine.dispose()
    with atomic_output(args.output) as out:
        out.write(text.encode("utf-8"))
    return EXIT_OK
