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
    temporary file in the same directory, which is fsynced and moved to
    ``path`` on success (then the directory is fsynced) and deleted on any
    exception, so a failed decryption never leaves partial (untrusted)
    plaintext behind. Without ``force`` an existing ``path`` is refused, and
    the final move is a hard link, which fails if ``path`` appeared meanwhile:
    a file created by someone else between the check and the move is never
    overwritten. (A SIGKILL cannot be caught: the hidden ``.NAME.*.tmp`` file,
    mode 0600 until the move, may then remain.)
    """
    if path is None or path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    if not force and target.exists():
        raise CommandError(f"{path} exists; use --force to overwrite it", EXIT_USAGE)
    # Imported here: tempfile brings shutil, random and the compression
    # modules, which `intake seal` to stdout does not need.
    import tempfile

    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            yield tmp
            tmp.flush()
            os.fchmod(tmp.fileno(), mode)
            os.fsync(tmp.fileno())
        if force:
            os.replace(tmp_name, target)
        else:
            try:
                os.link(tmp_name, target)
            except FileExistsError as err:
                raise CommandError(
                    f"{path} appeared while writing; use --force to overwrite it", EXIT_USAGE
                ) from err
            os.unlink(tmp_name)
        _fsync_directory(directory)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable; some file systems refuse to open directories."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


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


def passphrase_from_file(path: str) -> str:
    """The first line of ``path``, without its line ending; refused if empty."""
    try:
        with open(path, encoding="utf-8") as handle:
            line = handle.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as err:
        raise CommandError(f"cannot read the passphrase file {path}", EXIT_USAGE) from err
    if not line:
        raise CommandError(f"the passphrase file {path} is empty", EXIT_USAGE)
    return line


def ask_passphrase(prompt: str, *, confirm: bool) -> str:
    """Ask on the terminal (twice with ``confirm``); never read stdin.

    Without a terminal, getpass would fall back to reading stdin, which for
    `intake open` is the sealed file itself: refuse instead.
    """
    import getpass

    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError as err:
        raise CommandError("no terminal to ask for the passphrase; use --passphrase-file",
                           EXIT_USAGE) from err
    try:
        first = getpass.getpass(prompt)
        if confirm and getpass.getpass("Confirm passphrase: ") != first:
            raise CommandError("the passphrases do not match", EXIT_USAGE)
    except EOFError as err:
        raise CommandError("no passphrase given (no terminal?); use --passphrase-file",
                           EXIT_USAGE) from err
    if not first:
        raise CommandError("an empty passphrase is not allowed", EXIT_USAGE)
    return first
