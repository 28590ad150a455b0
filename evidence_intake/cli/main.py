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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intake",
        description="Seal, sign, export and verify evidence referrals.",
        epilog="Run 'intake COMMAND --help' for a command's options and an example.",
    )
    parser.add_argument("--version", action="version", version=f"intake {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as err:
            # A command group that is not written yet; the others still work.
            if err.name == f"{__package__}.{name}":
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
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
