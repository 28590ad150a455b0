"""``intake bundle verify|open`` (offline) and ``intake export`` (needs the service).

The bundle commands run on PyNaCl and the standard library: they import only
``evidence_intake.bundle``, ``crypto`` and ``audit``. ``intake export`` imports
the service inside its handler, so the offline commands never load FastAPI
or SQLAlchemy.

Exit codes of ``bundle verify`` and ``bundle open`` (docs/cli/bundle.md):
0 verified (and, for open, every item decrypted); 2 usage (unreadable key,
unusable output directory); 3 unsafe or malformed archive; 4 manifest or
SHA256SUMS signature invalid, or manifest malformed; 5 a file missing, extra
or changed; 6 audit evidence (checkpoint, inclusion proof, relation) fails;
7 (open only) verified, but some items are not sealed to the given identities
or failed to decrypt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError

EXIT_NOT_ALL_OPENED = 7

_VERIFY_EPILOG = """\
example:
  intake bundle verify bundle-1f3c.zip --node-key node.pub --log-key log.vkey
  intake bundle verify bundle-1f3c.zip --node-key node.pub --log-key log.vkey --json

exit codes: 0 verified; 3 unsafe or malformed zip; 4 bad signature or manifest;
5 file missing, extra or changed; 6 audit evidence fails; 2 usage.
"""

_OPEN_EPILOG = """\
example:
  intake bundle open bundle-1f3c.zip --node-key node.pub --log-key log.vkey \\
      -i investigator-key.txt -o opened/

Writes opened/<statement-id>/statement.json (the sealed record), statement.txt,
attachments/<n>-<name>, and opened/custody-report.html and .json.
exit codes: as for verify; 7 verified but some items were not sealed to your
identity (or failed to decrypt; see the report).
"""

_EXPORT_EPILOG = """\
examples:
  intake export --as officer1 --body un-iimm --new -o bundle.zip
  intake export --as officer1 --body icc-otp --statement 0c6e... --statement 9a1f... -o b.zip
  intake export --server https://intake.example --token TOKEN --body un-iimm \\
      --since 2026-01-01 -o b.zip
"""


def register(subparsers: Any) -> None:
    group = subparsers.add_parser(
        "bundle", help="verify and open export bundles (offline)",
        description="Verify and open export bundles, offline.")
    commands = group.add_subparsers(dest="bundle_command", metavar="COMMAND")
    group.set_defaults(func=lambda _args: (group.print_help(sys.stderr), EXIT_USAGE)[1])

    verify = commands.add_parser(
        "verify", help="check a bundle's signatures, digests and audit proofs",
        description="Check a bundle: zip safety, the manifest and SHA256SUMS signatures with "
                    "the pinned node key, every file's size and SHA-256, the checkpoint with "
                    "the pinned log key, every inclusion proof and what the log records.",
        epilog=_VERIFY_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _pinned_keys(verify)
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    verify.add_argument("-v", "--verbose", action="store_true", help="list every passed check")
    verify.set_defaults(func=_verify)

    opener = commands.add_parser(
        "open", help="verify a bundle, then decrypt what your identity can open",
        description="Verify a bundle, then decrypt every statement and attachment sealed to "
                    "your identity into a new directory, with a custody report.",
        epilog=_OPEN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _pinned_keys(opener)
    opener.add_argument("-i", "--identity", action="append", required=True, metavar="FILE",
                        help="age identity file (repeatable)")
    opener.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="new or empty directory for the opened files")
    opener.add_argument("--force", action="store_true",
                        help="open even if verification fails (the report says so)")
    opener.add_argument("--json", action="store_true", help="print the custody report as JSON")
    opener.set_defaults(func=_open)

    export = subparsers.add_parser(
        "export", help="create an export bundle for a receiving body (export officer)",
        description="Create a signed export bundle of sealed statements for one receiving "
                    "body, from the local database (--as) or through the API (--server).",
        epilog=_EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("--body", required=True, help="receiving body id")
    pick = export.add_mutually_exclusive_group(required=True)
    pick.add_argument("--statement", action="append", metavar="ID", help="statement id (repeat)")
    pick.add_argument("--new", action="store_true",
                      help="every statement not yet exported to this body")
    pick.add_argument("--since", metavar="DATE", help="statements created on or after DATE")
    export.add_argument("--until", metavar="DATE", help="with --since: created before DATE")
    export.add_argument("-o", "--output", required=True, metavar="FILE", help="bundle file")
    export.add_argument("--as", dest="username", metavar="USER",
                        help="export officer account (local database)")
    export.add_argument("--server", metavar="URL", help="API base URL instead of the database")
    export.add_argument("--token", metavar="TOKEN", help="API token (with --server)")
    export.add_argument("--force", action="store_true", help="overwrite FILE")
    export.add_argument("--json", action="store_true", help="print the result as JSON")
    export.set_defaults(func=_export)


def _pinned_keys(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", metavar="BUNDLE", help="the bundle (.zip)")
    parser.add_argument("--node-key", required=True, metavar="FILE",
                        help="the node's minisign public key, obtained out of band")
    parser.add_argument("--log-key", required=True, metavar="VKEY",
                        help="the audit log's verifier key (name+hash+key), or a file holding it")


def _load_keys(args: argparse.Namespace) -> tuple[Any, Any, str]:
    from ..audit.errors import AuditError
    from ..audit.note import parse_vkey
    from ..crypto import minisign
    from ..crypto.errors import CryptoError

    try:
        node_text = Path(args.node_key).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(f"cannot read node key {args.node_key}: {err}", EXIT_USAGE) from err
    try:
        node_key = minisign.PublicKey.from_file_text(node_text)
    except CryptoError as err:
        raise CommandError(f"{args.node_key} is not a minisign public key: {err}",
                           EXIT_USAGE) from err
    vkey = args.log_key
    if Path(vkey).is_file():
        try:
            lines = [line.strip() for line in Path(vkey).read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as err:
            raise CommandError(f"cannot read log key {vkey}: {err}", EXIT_USAGE) from err
        vkey = next((line for line in lines if line and not line.startswith("#")), "")
    try:
        log_key = parse_vkey(vkey)
    except (AuditError, ValueError) as err:
        raise CommandError(f"not a log verifier key: {err}", EXIT_USAGE) from err
    return node_key, log_key, vkey


def _run_verification(args: argparse.Namespace) -> tuple[Any, Any]:
    from .. import __version__
    from ..bundle.verify import verify_path

    node_key, log_key, _ = _load_keys(args)
    path = Path(args.bundle)
    if not path.is_file():
        raise CommandError(f"no such bundle: {path}", EXIT_USAGE)
    return verify_path(path, node_key, log_key, tool_version=__version__)


def _verify(args: argparse.Namespace) -> int:
    archive, verification = _run_verification(args)
    if archive is not None:
        archive.close()
    report = verification.report
    if args.json:
        sys.stdout.write(report.dumps())
    else:
        sys.stdout.write(report.to_text(verbose=args.verbose))
    code: int = report.exit_code
    return code


def _open(args: argparse.Namespace) -> int:
    from .. import __version__
    from ..bundle import custody
    from ..bundle.errors import BundleError
    from ..bundle.opener import open_bundle, prepare_output
    from ..crypto.age import keys
    from ..crypto.errors import CryptoError
    from .common import ask_passphrase

    def passphrase() -> str:
        return ask_passphrase("passphrase for the identity file: ", confirm=False)

    identities = []
    for name in args.identity:
        try:
            identities.extend(keys.parse_identities_file(Path(name).read_bytes(), passphrase))
        except OSError as err:
            raise CommandError(f"cannot read identity file {name}: {err}", EXIT_USAGE) from err
        except CryptoError as err:
            raise CommandError(f"{name} is not an age identity file: {err}", EXIT_USAGE) from err
    _, _, vkey = _load_keys(args)
    out_dir = Path(args.output)
    archive, verification = _run_verification(args)
    report = verification.report
    try:
        if not report.ok:
            sys.stderr.write(report.to_text())
            if not args.force or archive is None or verification.manifest is None:
                raise CommandError("bundle failed verification; nothing was decrypted"
                                   + ("" if args.force else " (use --force to open anyway)"),
                                   report.exit_code)
            print("intake: warning: opening a bundle that FAILED verification (--force)",
                  file=sys.stderr)
        try:
            prepare_output(out_dir)
            opened = open_bundle(archive, verification, identities, out_dir)
            doc = custody.build_report(Path(args.bundle), verification, opened,
                                       forced=args.force, tool_version=__version__,
                                       log_key_name=vkey)
            custody.write_reports(out_dir, doc)
        except BundleError as err:
            raise CommandError(str(err), err.exit_code) from err
    finally:
        if archive is not None:
            archive.close()
    if args.json:
        import json

        sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False, sort_keys=True) + "\n")
    else:
        for item in opened.items:
            where = f" -> {item.output}" if item.output else ""
            print(f"{item.bundle_path}: {item.status}{where}")
        print(f"custody report: {out_dir / 'custody-report.html'}")
    if not report.ok:
        failed: int = report.exit_code
        return failed
    return EXIT_OK if opened.all_opened else EXIT_NOT_ALL_OPENED


def _export(args: argparse.Namespace) -> int:
    if args.until and not args.since:
        raise CommandError("--until needs --since", EXIT_USAGE)
    if args.server:
        return _export_via_api(args)
    if not args.username:
        raise CommandError("give --as USER (local database) or --server URL --token TOKEN",
                           EXIT_USAGE)
    from ..service.exports.cli import export_locally

    code: int = export_locally(args)
    return code if code is not None else EXIT_FAILED


def _export_via_api(args: argparse.Namespace) -> int:
    """POST /api/v1/exports, then download the bundle, checking its SHA-256 (stdlib only)."""
    import hashlib
    import json
    import urllib.error
    import urllib.request

    from .common import atomic_output

    if not args.token:
        raise CommandError("--server needs --token", EXIT_USAGE)
    base = args.server.rstrip("/")
    if not base.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise CommandError("use https:// (plain http only to localhost)", EXIT_USAGE)
    body: dict[str, Any] = {"body_id": args.body}
    if args.statement:
        body["statement_ids"] = args.statement
    elif args.new:
        body["new_only"] = True
    else:
        from datetime import UTC, datetime

        for key in ("since", "until"):
            value = getattr(args, key)
            if value:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
                body[key] = (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
    headers = {"Authorization": f"Bearer {args.token}", "Content-Type": "application/json",
               "Accept": "application/json"}
    request = urllib.request.Request(  # noqa: S310 - https or loopback only, checked above
        f"{base}/api/v1/exports", method="POST", data=json.dumps(body).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:  # noqa: S310
            result = json.loads(response.read())
    except urllib.error.HTTPError as err:
        try:
            problem = json.loads(err.read())
        except ValueError:
            problem = {}
        for refusal in problem.get("refused", []):
            print(f"refused {refusal['statement_id']}: {refusal['reason']}", file=sys.stderr)
        raise CommandError(f"server refused the export ({err.code}): "
                           f"{problem.get('detail', err.reason)}", EXIT_FAILED) from err
    except urllib.error.URLError as err:
        raise CommandError(f"cannot reach {base}: {err.reason}", EXIT_FAILED) from err
    download = urllib.request.Request(  # noqa: S310 - same checked base URL
        base + result["download"], headers={"Authorization": f"Bearer {args.token}"})
    hasher = hashlib.sha256()
    if Path(args.output).exists() and not args.force:
        raise CommandError(f"{args.output} exists; use --force to overwrite it", EXIT_USAGE)
    with atomic_output(args.output, mode=0o600) as out, \
            urllib.request.urlopen(download, timeout=3600) as response:  # noqa: S310
        while chunk := response.read(1 << 20):
            hasher.update(chunk)
            out.write(chunk)
        if hasher.hexdigest() != result["bundle_sha256"]:
            raise CommandError("the downloaded bundle does not have the SHA-256 the server "
                               "reported; discarded", EXIT_FAILED)
    result["output"] = args.output
    if args.json:
        sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    else:
        print(f"bundle {result['export_id']} for {result['body_id']}: {args.output}")
        print(f"sha256 {result['bundle_sha256']}  ({result['bundle_size']} bytes)")
        print(f"statements: {len(result['statement_ids'])}")
        for refusal in result["refused"]:
            print(f"skipped {refusal['statement_id']}: {refusal['reason']}")
    return EXIT_OK
