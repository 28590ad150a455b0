"""``intake submit``: send a statement to a node; ``intake blobs-gc``: clean its blob store.

``submit`` streams the statement and its attachments as multipart/form-data
built here, part by part, so multi-GiB files are never read into memory; the
request declares its Content-Length so the server can refuse an oversized
upload before a byte of it is sent. The API token comes from ``--token-file``
or ``INTAKE_TOKEN`` (``--token`` works too, but shows in the process list).
"""

from __future__ import annotations

import argparse
import json
import mimetypes
import os
import sys
import time
from pathlib import Path
from typing import Any

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, show_progress
from .streaming_post import FileChangedError, FileRange, Piece, Response, body_length, post


class _Part:
    def __init__(self, name: str, content_type: str, *, data: bytes | None = None,
                 path: Path | None = None, filename: str | None = None) -> None:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            safe = filename.replace("\\", "_").replace('"', "_").replace("\r", "_")
            disposition += f'; filename="{safe.replace(chr(10), "_")}"'
        self.head = (f"Content-Disposition: {disposition}\r\n"
                     f"Content-Type: {content_type}\r\n\r\n").encode()
        self.data = data
        self.path = path
        self.size = len(data) if data is not None else (path.stat().st_size if path else 0)


class MultipartBody:
    """A multipart/form-data body as pieces: bytes in memory and whole files by reference."""

    def __init__(self, parts: list[_Part]) -> None:
        # As long as RFC 2046 allows (70): the node scans every byte for it,
        # and a longer needle is skipped over faster (about 1.7 times here).
        # os.urandom is what secrets.token_hex reads, without the start-up
        # cost of importing secrets (random, hmac, base64).
        self.boundary = "intake-" + os.urandom(31).hex()
        self.pieces: list[Piece] = []
        for part in parts:
            self.pieces.append(f"--{self.boundary}\r\n".encode() + part.head)
            if part.data is not None:
                self.pieces.append(part.data)
            elif part.path is not None:
                self.pieces.append(FileRange(part.path, part.size))
            self.pieces.append(b"\r\n")
        self.pieces.append(f"--{self.boundary}--\r\n".encode())
        self.length = body_length(self.pieces)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"


def _token(args: argparse.Namespace) -> str:
    if args.token_file:
        try:
            return Path(args.token_file).read_text(encoding="utf-8").strip()
        except OSError as err:
            raise CommandError(f"cannot read {args.token_file}: {err.strerror}",
                               EXIT_USAGE) from err
    token = args.token or os.environ.get("INTAKE_TOKEN", "")
    if not token:
        raise CommandError("give an API token: --token-file FILE, INTAKE_TOKEN or --token",
                           EXIT_USAGE)
    return str(token)


def _readable(path: str) -> Path:
    p = Path(path)
    if not p.is_file() or not os.access(p, os.R_OK):
        raise CommandError(f"cannot read {path}", EXIT_USAGE)
    return p


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.last, self.sent = max(total, 1), enabled, 0.0, 0

    def __call__(self, size: int) -> None:
        self.sent += size
        sent = self.sent
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.2 or sent >= self.total):
            self.last = now
            width = 30
            filled = int(width * min(sent, self.total) / self.total)
            print(f"\rsending [{'#' * filled}{'.' * (width - filled)}] "
                  f"{sent / 2**20:8.1f} MiB", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


def _problem_line(response: Response) -> str:
    try:
        problem = json.loads(response.body)
        detail = problem.get("detail") or problem.get("title") or ""
        field = f" (field: {problem['field']})" if problem.get("field") else ""
        return f"the server refused the statement: {response.status} {detail}{field}"
    except (ValueError, AttributeError):
        return f"the server answered {response.status}"


def _print_receipt(receipt: dict[str, Any]) -> None:
    print(f"statement {receipt['statement_id']} sealed at {receipt['created_at']}")
    if receipt.get("amends"):
        print(f"  amends      {receipt['amends']}")
    for copy in receipt["copies"]:
        print(f"  copy        {copy['key_kind']} for {', '.join(copy['bodies'])}")
        print(f"    statement sha256 {copy['statement']['sha256']}")
        for index, item in enumerate(copy["attachments"]):
            print(f"    attach {index:<2} sha256 {item['sha256']}")
    print(f"  audit entry {receipt['audit']['seq']} {receipt['audit']['entry_hash']}")
    print("  checkpoint  " + ("included (--json to save it)" if receipt.get("checkpoint")
                              else "none signed yet; fetch the receipt again later"))


def cmd_submit(args: argparse.Namespace) -> int:
    token = _token(args)
    try:
        meta = _readable(args.meta).read_bytes()
        json.loads(meta)
    except ValueError as err:
        raise CommandError(f"{args.meta} is not valid JSON", EXIT_USAGE) from err
    statement = _readable(args.statement)
    attachments = [_readable(path) for path in args.attachments]
    parts = [_Part("record", "application/json", data=meta),
             _Part("text", "text/plain; charset=utf-8", path=statement)]
    for path in attachments:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        parts.append(_Part("attachment", ctype, path=path, filename=path.name))
    progress = _Progress(sum(p.size for p in parts if p.path is not None),
                         show_progress(args.quiet))
    body = MultipartBody(parts)
    url = args.server.rstrip("/") + "/api/v1/statements"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": body.content_type,
               "Accept": "application/json", "User-Agent": "intake-submit"}
    try:
        response = post(url, body.pieces, headers, verify=not args.insecure, progress=progress)
    except FileChangedError as err:
        raise CommandError(str(err)) from err
    except ValueError as err:
        raise CommandError(f"--server: {err}", EXIT_USAGE) from err
    except OSError as err:
        raise CommandError(f"cannot reach {args.server}: {type(err).__name__}") from err
    finally:
        progress.done()
    if response.status != 201:
        raise CommandError(_problem_line(response), EXIT_FAILED)
    try:
        receipt = json.loads(response.body)
    except ValueError as err:
        raise CommandError("the server answered 201 without a JSON receipt") from err
    if args.json:
        json.dump(receipt, sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        _print_receipt(receipt)
    return EXIT_OK


def cmd_blobs_gc(args: argparse.Namespace) -> int:
    from ..service.db import Database
    from ..service.intake.blobstore import FilesystemBlobStore
    from ..service.intake.records import collect_garbage
    from ..service.settings import load_settings

    settings = load_settings(Path(args.data_dir) if args.data_dir else None)
    database = Database.from_settings(settings)
    try:
        report = collect_garbage(database.sessions, FilesystemBlobStore(settings.blob_path),
                                 grace_seconds=args.grace_seconds)
    finally:
        database.dispose()
    print(f"removed {report.temp_files_removed} temporary file(s) of dead uploads and "
          f"{report.unreferenced_blobs_removed} unreferenced blob(s)")
    return EXIT_OK


SUBMIT_EXAMPLE = """\
example:
  export INTAKE_TOKEN=eit_...            # or --token-file ~/.config/intake/token
  intake submit --server https://intake.example --meta record.json \\
      statement.txt interview.m4a consent.m4a
  intake submit --server ... --meta record.json statement.txt --json > receipt.json

record.json is the statement-record/v1 input (see docs/formats/statement-record.md);
attachments are sent in the order given (index 0, 1, ...)."""

GC_EXAMPLE = """\
example:
  intake blobs-gc                      # what the server also does at start-up
  intake blobs-gc --grace-seconds 0    # with the server stopped: everything unreferenced"""


def register(subparsers: Any) -> None:
    submit = subparsers.add_parser(
        "submit", help="send a statement and its attachments to a node",
        description="Stream a statement (UTF-8 text, Zawgyi allowed) and attachments to an "
                    "intake node, which seals them at once, and print the receipt.",
        epilog=SUBMIT_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    submit.add_argument("--server", required=True, help="base URL of the node")
    submit.add_argument("--token", help="API token (visible to other local users; prefer "
                                        "--token-file or INTAKE_TOKEN)")
    submit.add_argument("--token-file", help="file holding the API token")
    submit.add_argument("--meta", required=True, metavar="META.json",
                        help="the record: statement-record/v1 input as JSON")
    submit.add_argument("statement", metavar="STATEMENT.txt", help="the statement as typed")
    submit.add_argument("attachments", nargs="*", metavar="ATTACHMENT")
    submit.add_argument("--json", action="store_true", help="print the receipt as JSON")
    submit.add_argument("--quiet", action="store_true", help="no progress bar")
    submit.add_argument("--insecure", action="store_true",
                        help="skip TLS certificate checks (testing only)")
    submit.set_defaults(func=cmd_submit)

    gc = subparsers.add_parser(
        "blobs-gc", help="delete blobs of uploads that never committed",
        description="Delete temporary files of dead uploads and sealed blobs that no "
                    "statement references (older than the grace period).",
        epilog=GC_EXAMPLE, formatter_class=argparse.RawDescriptionHelpFormatter)
    gc.add_argument("--data-dir", help="data directory (default: INTAKE_DATA_DIR or ./var)")
    gc.add_argument("--grace-seconds", type=float, default=24 * 3600,
                    help="keep unreferenced blobs younger than this (default: 1 day)")
    gc.set_defaults(func=cmd_blobs_gc)
