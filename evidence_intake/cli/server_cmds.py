"""``intake init | migrate | serve | openapi | admin …``: the server-side commands.

Each handler imports ``evidence_intake.service.cli`` (and with it FastAPI and
SQLAlchemy) only when it runs, so the offline commands never load them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, atomic_output

ROLES = ("admin", "counsellor", "export_officer", "auditor")


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("INTAKE_DATA_DIR", "var"))


def _service() -> Any:
    try:
        from ..service import cli as service_cli
    except ModuleNotFoundError as err:
        raise CommandError(
            f"the server is not installed ({err.name} missing): pip install -e '.[server]'",
            EXIT_USAGE) from err
    return service_cli


def _settings(args: argparse.Namespace) -> Any:
    from ..service.settings import load_settings

    try:
        return load_settings(_data_dir(args))
    except ValueError as err:  # pydantic's ValidationError and UnsafeSettingsError
        raise CommandError(f"settings refused: {err}", EXIT_USAGE) from err


def _service_call(func: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a service function, turning its expected failures into one-line errors."""
    from ..service.cli import SetupError
    from ..service.errors import ServiceError

    try:
        return func(*args, **kwargs)
    except ServiceError as err:
        raise CommandError(err.detail, EXIT_FAILED) from err
    except SetupError as err:
        raise CommandError(str(err), EXIT_FAILED) from err


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
    else:
        if not sys.stdin.isatty():
            raise CommandError("no terminal to ask for the password; use --password-stdin",
                               EXIT_USAGE)
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise CommandError("the passwords differ", EXIT_USAGE)
    if not password:
        raise CommandError("empty password", EXIT_USAGE)
    return password


def _program() -> str:
    """How the user invoked us (``.venv/bin/intake`` under ``make run``), for copy-paste hints."""
    invoked = sys.argv[0] if sys.argv else ""
    return invoked if os.path.basename(invoked) == "intake" else "intake"


def cmd_init(args: argparse.Namespace) -> int:
    service = _service()
    report = _service_call(service.init, _data_dir(args))
    for path in report.created:
        print(f"created  {path}")
    for path in report.kept:
        print(f"kept     {path}")
    print(f"database at revision {report.revision}")
    if report.node_public_key:
        print(f"node signing key (minisign, give to investigators): {report.node_public_key}")
    if report.log_verifier_key:
        print(f"audit log verifier key (give to auditors): {report.log_verifier_key}")
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    service = _service()
    revision = _service_call(service.migrate, _settings(args))
    print(f"database at revision {revision}")
    return EXIT_OK


def _http_implementation() -> str:
    """What uvicorn's "auto" choice will run: httptools and uvloop when installed.

    Both come with the ``server`` extra; without them uvicorn falls back to the
    pure-Python h11 parser and asyncio's loop, which cut upload throughput by
    more than half (bench/intake.py), so say so at start-up.
    """
    import importlib.util

    http = ("httptools (bodies passed on uncopied)" if importlib.util.find_spec("httptools")
            else "h11 (slow: install httptools)")
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio (install uvloop)"
    return f"{http}, event loop {loop}"


def cmd_serve(args: argparse.Namespace) -> int:
    service = _service()
    settings = _settings(args)
    url = f"http://{args.host}:{args.port}"
    print(f"evidence-intake on {url} (mode {settings.mode.value}, {args.workers} worker(s))",
          file=sys.stderr)
    if settings.openapi_docs:
        print(f"  API documentation: {url}/docs", file=sys.stderr)
    print(f"  first admin:       {_program()} admin create-user --role admin NAME",
          file=sys.stderr)
    print(f"  HTTP parser:       {_http_implementation()}", file=sys.stderr)
    service.serve(_data_dir(args), host=args.host, port=args.port, workers=args.workers)
    return EXIT_OK


def cmd_openapi(args: argparse.Namespace) -> int:
    service = _service()
    text = service.openapi_document(_settings(args))
    with atomic_output(args.output) as out:
        out.write(text.encode("utf-8"))
    return EXIT_OK


def cmd_create_user(args: argparse.Namespace) -> int:
    service = _service()
    settings = _settings(args)
    password = _read_password(args)
    account_id = _service_call(service.create_user, settings, username=args.name,
                               role=args.role, password=password)
    print(f"created {args.role} {args.name} (account {account_id})")
    return EXIT_OK


def cmd_reset_password(args: argparse.Namespace) -> int:
    service = _service()
    settings = _settings(args)
    password = _read_password(args)
    _service_call(service.reset_password, settings, username=args.name, password=password)
    print(f"password of {args.name} reset; their sessions are ended")
    return EXIT_OK


def cmd_disable_user(args: argparse.Namespace) -> int:
    service = _service()
    _service_call(service.disable_user, _settings(args), username=args.name)
    print(f"{args.name} disabled; their sessions and tokens no longer work")
    return EXIT_OK


def cmd_create_token(args: argparse.Namespace) -> int:
    service = _service()
    token = _service_call(service.create_token, _settings(args), username=args.name,
                          name=args.token_name)
    # The token alone on stdout (scripts capture it); the warning on stderr.
    print("API token (shown once, store it now):", file=sys.stderr)
    print(token)
    return EXIT_OK


def _parser(subparsers: Any, name: str, help_text: str, example: str,
            func: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text,
        epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", metavar="DIR",
                        help="data directory (default: $INTAKE_DATA_DIR or ./var)")
    parser.set_defaults(func=func)
    return parser


def register(subparsers: Any) -> None:
    _parser(subparsers, "init",
            "create ./var/ (database, blob store, node and log signing keys, settings); "
            "safe to run again", "intake init", cmd_init)
    _parser(subparsers, "migrate", "apply pending database migrations", "intake migrate",
            cmd_migrate)
    serve = _parser(subparsers, "serve", "run the intake service (uvicorn)",
                    "intake serve --host 127.0.0.1 --port 8000 --workers 2", cmd_serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (several need PostgreSQL for throughput)")
    openapi = _parser(subparsers, "openapi", "write the service's OpenAPI document",
                      "intake openapi -o docs/openapi.json", cmd_openapi)
    openapi.add_argument("-o", "--output", metavar="FILE", help="output file (default stdout)")

    admin = subparsers.add_parser(
        "admin", help="manage accounts on this server (bootstrap the first admin)",
        description="Manage accounts directly in the server's database.",
        epilog="example:\n  intake admin create-user --role admin alice",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    admin.set_defaults(func=None)
    actions = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    create = _parser(actions, "create-user", "create an account (asks for its password)",
                     "intake admin create-user --role counsellor thida", cmd_create_user)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("name", help="user name (a-z, 0-9, '.', '_', '-')")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")
    reset = _parser(actions, "reset-password", "set a new password and end the sessions",
                    "intake admin reset-password thida", cmd_reset_password)
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true",
                       help="read the password from the first line of stdin")
    disable = _parser(actions, "disable-user", "disable an account (sessions and tokens stop)",
                      "intake admin disable-user thida", cmd_disable_user)
    disable.add_argument("name")
    token = _parser(actions, "create-token",
                    "create a personal API token for an account (printed once)",
                    "intake admin create-token --name laptop thida", cmd_create_token)
    token.add_argument("name")
    token.add_argument("--name", dest="token_name", default="cli", metavar="LABEL",
                       help="what the token is for")
