"""Helpers every ``intake`` subcommand shares: exit codes, errors, safe output files.

Exit codes (documented in docs/cli.md):

====  ==========================================================
0     success
1     the operation failed (wrong identity, bad signature, ...)
2     usage error (bad arguments, unreadable input file)
3     verification failed (audit log or bundle) - see command docs
====  ==========================================================
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_VERIFY = 3


class CommandError(Exception):
    """A one-line, user-facing error with its exit code.

    The message says what is wrong and what to do; it never quotes a secret.
    """

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def fail(err: CommandError) -> int:
    print(f"intake: error: {err}", file=sys.stderr)
    return err.exit_code


@contextlib.contextmanager
def atomic_output(path: str | None, *, mode: int = 0o644, force: bool = True) -> Iterator[BinaryIO]:
    """Yield a binary stream that becomes ``path`` only if the block succeeds.

    With ``path`` None or ``-`` the stream is stdout. Otherwise data goes to a
    temporary file in the same directory, which is fsynced and renamed over
    ``path`` on success and deleted on any exception, so a failed decryption
    never leaves partial (untrusted) plaintext behind. Without ``force`` an
    existing ``path`` is refused.
    """
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if not force and target.exists():
        raise CommandError(f"{path} exists; use --force to overwrite it", EXIT_USAGE)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as tmp:
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


@contextlib.contextmanager
def open_input(path: str | None) -> Iterator[BinaryIO]:
    """Open ``path`` for binary reading; None or ``-`` is stdin."""
    if path is None or path == "-":
        yield sys.stdin.buffer
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below, after the yield
    except OSError as err:
        raise CommandError(f"cannot read {path}: {err.strerror}", EXIT_USAGE) from err
    with handle:
        yield handle


def show_progress(quiet: bool) -> bool:
    """Progress goes to stderr only on a terminal and without --quiet."""
    return not quiet and sys.stderr.isatty()
