"""``intake export`` against the node's own database, as an export officer account.

Imported lazily by evidence_intake/cli/bundle_cmds.py, so the offline
commands never load the service. The account must exist, be enabled and have
the export_officer role; the export is logged under its id like an API export.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError
from ..auth.accounts import find_by_username
from ..db import Database
from ..errors import ServiceError
from ..models.accounts import Role
from ..settings import load_settings
from .service import create_export


def parse_time(text: str) -> datetime:
    """A date (``2026-01-31``, midnight UTC) or an RFC 3339 time with a zone."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as err:
        raise CommandError(f"not a date or RFC 3339 time: {text}", EXIT_USAGE) from err
    if value.tzinfo is None:
        if len(text) != 10:
            raise CommandError(f"give a time zone (e.g. {text}Z)", EXIT_USAGE)
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _copy(source: Path, target: Path, expected_sha256: str, *, force: bool) -> None:
    """Copy the bundle to ``target`` atomically, checking its SHA-256 on the way."""
    if target.exists() and not force:
        raise CommandError(f"{target} exists; use --force to overwrite it", EXIT_USAGE)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        hasher = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            while chunk := src.read(1 << 20):
                hasher.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if hasher.hexdigest() != expected_sha256:
            raise CommandError(f"the bundle {source} changed after it was written", EXIT_FAILED)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def export_locally(args: argparse.Namespace) -> int:
    settings = load_settings()
    database = Database.from_settings(settings)
    try:
        with database.session() as session:
            account = find_by_username(session, args.username)
            if account is None or account.disabled or account.role is not Role.export_officer:
                raise CommandError(f"{args.username} is not an enabled export officer account",
                                   EXIT_USAGE)
            actor = account.id
        try:
            outcome = create_export(
                database.sessions, settings, actor=actor, body_id=args.body,
                statement_ids=args.statement,
                since=parse_time(args.since) if args.since else None,
                until=parse_time(args.until) if args.until else None,
                new_only=args.new)
        except ServiceError as err:
            for refusal in err.extra.get("refused", []):
                print(f"refused {refusal['statement_id']}: {refusal['reason']}", file=sys.stderr)
            raise CommandError(err.detail, EXIT_FAILED) from err
    finally:
        database.dispose()
    export = outcome.export
    if export.bundle_sha256 is None:
        raise CommandError("the bundle was not written", EXIT_FAILED)
    _copy(outcome.path, Path(args.output), export.bundle_sha256, force=args.force)
    result = {
        "export_id": export.id, "body_id": export.body_id, "output": str(args.output),
        "bundle_sha256": export.bundle_sha256, "bundle_size": export.bundle_size,
        "statement_ids": [item.statement_id for item in export.items],
        "refused": [{"statement_id": r.statement_id, "code": r.code.value, "reason": r.reason}
                    for r in outcome.refused],
        "audit_seq": export.audit_seq,
    }
    print_result(result, as_json=args.json)
    return EXIT_OK


def print_result(result: Mapping[str, Any], *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
        return
    statements = result.get("statement_ids") or []
    print(f"bundle {result['export_id']} for {result['body_id']}: {result['output']}")
    print(f"sha256 {result['bundle_sha256']}  ({result['bundle_size']} bytes)")
    print(f"statements: {len(statements)}")
    for refusal in result.get("refused") or []:
        print(f"skipped {refusal['statement_id']}: {refusal['reason']}")
