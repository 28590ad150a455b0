"""The ``intake`` command: one entry point, one module per group of subcommands.

Each module listed in ``_COMMAND_MODULES`` exposes ``register(subparsers)``,
which adds its subcommands and sets ``func`` on each parser. Modules of the
offline path (keys, sealing, signatures, audit verification, bundles) must not
import FastAPI, SQLAlchemy or pydantic, even indirectly; the server commands
import the service lazily, inside their handlers.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence

from .. import __version__
from .common import EXIT_USAGE, CommandError, fail

# Order is the order of the help listing.
_COMMAND_MODULES = (
    "age_cmds",
    "sign_cmds",
    "audit_cmds",
    "bundle_cmds",
    "submit_cmds",
    "server_cmds",
)

# Which module registers each top-level command. Running one command imports
# only its module, so `intake seal` does not pay for the audit, bundle and
# server imports (start-up counts when sealing many small files). A test checks
# this table against what the modules register.
COMMAND_MODULE = {
    "keygen": "age_cmds",
    "seal": "age_cmds",
    "open": "age_cmds",
    "sign-keygen": "sign_cmds",
    "sign": "sign_cmds",
    "verify": "sign_cmds",
    "audit": "audit_cmds",
    "bundle": "bundle_cmds",
    "export": "bundle_cmds",
    "submit": "submit_cmds",
    "blobs-gc": "submit_cmds",
    "init": "server_cmds",
    "migrate": "server_cmds",
    "serve": "server_cmds",
    "openapi": "server_cmds",
    "admin": "server_cmds",
}


def build_parser(modules: Sequence[str] = _COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intake",
        description="Seal, sign, export and verify evidence referrals.",
        epilog="Run 'intake COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"intake {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in modules:
        module = importlib.import_module(f"{__package__}.{name}")
        module.register(subparsers)
    return parser


def _modules_for(argv: Sequence[str]) -> Sequence[str]:
    """The one module that serves ``argv``'s command, or all of them (help, errors)."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    if first is not None and first in COMMAND_MODULE and "-h" not in argv[:1]:
        return (COMMAND_MODULE[first],)
    if first is None and "--version" in argv:
        return ()
    return _COMMAND_MODULES


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_modules_for(arguments))
    args = parser.parse_args(arguments)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    # SIGTERM unwinds like Ctrl-C, so atomic outputs delete their partial files.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code: int = args.func(args)
    except CommandError as err:
        return fail(err)
    except KeyboardInterrupt:
        print("intake: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
