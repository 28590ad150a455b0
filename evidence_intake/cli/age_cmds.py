"""``intake keygen``, ``intake seal`` and ``intake open``: age keys and files.

Offline commands: they import only the standard library here, and the age
package (PyNaCl, pyca/cryptography) inside their handlers, so that
``intake --help`` stays fast and nothing of the server stack is loaded.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

from .common import (
    EXIT_OK,
    EXIT_USAGE,
    CommandError,
    ask_passphrase,
    atomic_output,
    open_input,
    passphrase_from_file,
)

if TYPE_CHECKING:
    from evidence_intake.crypto.age.stanza import Identity, Recipient

KEYGEN_EXAMPLE = """\
examples:
  intake keygen -o investigator.key          # prints the public recipient age1…
  intake keygen --passphrase -o inv.key.age  # the identity file sealed with a passphrase
  intake keygen --pq -o investigator-pq.key  # hybrid post-quantum identity
"""
SEAL_EXAMPLE = """\
examples:
  intake seal -r age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p \\
      -o statement.pdf.age statement.pdf
  intake seal -R investigators.txt -a < statement.txt > statement.txt.age
"""
OPEN_EXAMPLE = """\
examples:
  intake open -i investigator.key -o statement.pdf statement.pdf.age
  intake open -i inv.key.age --passphrase-file pass.txt < statement.age > statement.pdf
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    keygen = subparsers.add_parser(
        "keygen",
        help="create an age identity (secret key file) and print its recipient",
        description="Create an age X25519 (or hybrid post-quantum) identity. The file is "
        "created with mode 0600 and never overwritten without --force; the public "
        "recipient is printed on stderr (on stdout when the key goes to stdout).",
        epilog=KEYGEN_EXAMPLE,
        formatter_class=fmt,
    )
    keygen.add_argument("-o", "--output", metavar="FILE", help="write the identity to FILE")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing FILE")
    keygen.add_argument("--pq", action="store_true",
                        help="hybrid post-quantum identity (mlkem768x25519)")
    keygen.add_argument("--passphrase", action="store_true",
                        help="seal the identity file with a passphrase (asked twice on the tty)")
    keygen.add_argument("--passphrase-file", metavar="FILE",
                        help="for scripts: read the passphrase from FILE's first line")
    keygen.set_defaults(func=cmd_keygen)

    seal = subparsers.add_parser(
        "seal",
        help="seal (encrypt) a file to age recipients",
        description="Encrypt FILE (or stdin) to one or more age recipients. Only the holders "
        "of the matching identities can open the result.",
        epilog=SEAL_EXAMPLE,
        formatter_class=fmt,
    )
    seal.add_argument("-r", "--recipient", action="append", default=[], metavar="RECIPIENT",
                      help="an age1… or age1pq1… recipient (repeatable)")
    seal.add_argument("-R", "--recipients-file", action="append", default=[], metavar="PATH",
                      help="a file of recipients, one per line, # comments (repeatable)")
    seal.add_argument("-a", "--armor", action="store_true", help="write PEM-like ASCII armor")
    seal.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    seal.add_argument("-q", "--quiet", action="store_true", help="no progress, only errors")
    seal.add_argument("input", nargs="?", metavar="FILE", help="input file (default stdin)")
    seal.set_defaults(func=cmd_seal)

    opener = subparsers.add_parser(
        "open",
        help="open (decrypt) an age file with your identity",
        description="Decrypt FILE (or stdin) with the given identity files. Armor is "
        "detected. With -o, nothing is left behind unless the whole file authenticated; "
        "on stdout, output stops at the first damaged chunk (discard it).",
        epilog=OPEN_EXAMPLE,
        formatter_class=fmt,
    )
    opener.add_argument("-i", "--identity", action="append", default=[], metavar="IDENTITY",
                        required=True, help="an identity file (repeatable)")
    opener.add_argument("--passphrase-file", metavar="FILE",
                        help="passphrase for encrypted identity files, from FILE's first line")
    opener.add_argument("-o", "--output", metavar="OUT", help="write to OUT instead of stdout")
    opener.add_argument("-q", "--quiet", action="store_true", help="no progress, only errors")
    opener.add_argument("input", nargs="?", metavar="FILE", help="input file (default stdin)")
    opener.set_defaults(func=cmd_open)




# --- progress ----------------------------------------------------------------


@contextmanager
def _progress(label: str, src: BinaryIO, quiet: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress callback drawing on stderr, only on a terminal and without --quiet."""
    from .common import show_progress

    if not show_progress(quiet):
        yield None
        return
    total = None
    try:
        info = os.fstat(src.fileno())
        if stat.S_ISREG(info.st_mode):
            total = info.st_size
    except (OSError, AttributeError, ValueError):
        pass
    done = 0
    last = 0.0

    def update(n: int) -> None:
        nonlocal done, last
        done += n
        now = time.monotonic()
        if now - last < 0.2:
            return
        last = now
        mib = done / (1 << 20)
        text = f"{label}: {mib:.0f} MiB"
        if total:
            text += f" of {total / (1 << 20):.0f} MiB ({100 * done // total}%)"
        sys.stderr.write(f"\r{text}\x1b[K")
        sys.stderr.flush()

    try:
        yield update
    finally:
        if last:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


# --- errors ------------------------------------------------------------------


def _translate(err: Exception) -> CommandError:
    """One line per failure kind; never the reason an AEAD failed, never a secret."""
    from evidence_intake.crypto import errors

    if isinstance(err, errors.NoIdentityMatchError):
        return CommandError("no identity matched the file's recipients (wrong key?)")
    if isinstance(err, errors.HeaderMACError):
        return CommandError("the file's header was altered (header MAC mismatch)")
    if isinstance(err, errors.HeaderError):
        return CommandError(f"not a valid age file: {err}")
    if isinstance(err, errors.PayloadError):
        return CommandError(f"the file is damaged or was tampered with: {err}")
    if isinstance(err, errors.ArmorError):
        return CommandError(f"invalid ASCII armor: {err}")
    if isinstance(err, (errors.KeyFormatError, errors.RecipientMixError,
                        errors.UnsupportedRecipientError)):
        return CommandError(str(err), EXIT_USAGE)
    return CommandError(str(err))


# --- keygen ------------------------------------------------------------------


def cmd_keygen(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from evidence_intake.crypto.errors import CryptoError

    try:
        identity, recipient = _new_identity(args.pq)
    except CryptoError as err:
        raise _translate(err) from err
    created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    text = f"# created: {created}\n# public key: {recipient}\n{identity}\n".encode("ascii")
    if args.passphrase or args.passphrase_file:
        text = _seal_with_passphrase(text, args.passphrase_file)
    if args.output is None and sys.stdout.isatty() and not args.passphrase_file:
        # Writing a secret key to a terminal is allowed (age-keygen does), but
        # the key then lives in scrollback; say so.
        print("intake: warning: writing a secret key to the terminal", file=sys.stderr)
    with atomic_output(args.output, mode=0o600, force=args.force) as out:
        out.write(text)
    if args.output is not None:
        print(f"Public key: {recipient}", file=sys.stderr)
    return EXIT_OK


def _new_identity(pq: bool) -> tuple[object, object]:
    if pq:
        from evidence_intake.crypto.age.keys import post_quantum_module

        identity = post_quantum_module().generate_identity()
        return identity, identity.recipient
    from evidence_intake.crypto.age import X25519Identity

    x25519 = X25519Identity.generate()
    return x25519, x25519.recipient


def _seal_with_passphrase(text: bytes, passphrase_file: str | None) -> bytes:
    import io

    from evidence_intake.crypto.age import ScryptRecipient, encrypt

    if passphrase_file:
        passphrase = passphrase_from_file(passphrase_file)
    else:
        passphrase = ask_passphrase("Passphrase for the new identity file: ", confirm=True)
    sealed = io.BytesIO()
    # Armored, so the file stays printable text like an unsealed identity file.
    encrypt(io.BytesIO(text), sealed, [ScryptRecipient(passphrase)], armor=True)
    return sealed.getvalue()


# --- seal --------------------------------------------------------------------


def _recipients(args: argparse.Namespace) -> list[Recipient]:
    from evidence_intake.crypto.age import parse_recipient, parse_recipients_file

    found: list[Recipient] = [parse_recipient(r) for r in args.recipient]
    for path in args.recipients_file:
        try:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as err:
            raise CommandError(f"cannot read recipients file {path}", EXIT_USAGE) from err
        found.extend(parse_recipients_file(text))
    if not found:
        raise CommandError("no recipients: give -r age1… or -R FILE", EXIT_USAGE)
    return found


def cmd_seal(args: argparse.Namespace) -> int:
    from evidence_intake.crypto.age import encrypt
    from evidence_intake.crypto.errors import CryptoError

    try:
        recipients = _recipients(args)
    except CryptoError as err:
        raise _translate(err) from err
    if args.output in (None, "-") and not args.armor and sys.stdout.isatty():
        raise CommandError("refusing to write binary to a terminal; use -o FILE or -a",
                           EXIT_USAGE)
    with open_input(args.input) as src, _progress("sealing", src, args.quiet) as progress:
        try:
            with atomic_output(args.output) as dst:
                encrypt(src, dst, recipients, armor=args.armor, progress=progress)
        except CryptoError as err:
            raise _translate(err) from err
    return EXIT_OK


# --- open --------------------------------------------------------------------


def _identities(paths: Sequence[str], passphrase_file: str | None) -> list[Identity]:
    from evidence_intake.crypto.age import parse_identities_file
    from evidence_intake.crypto.errors import CryptoError, NoIdentityMatchError

    found: list[Identity] = []
    for path in paths:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise CommandError(f"cannot read identity file {path}: {err.strerror}",
                               EXIT_USAGE) from err

        def passphrase(path: str = path) -> str:
            if passphrase_file:
                return passphrase_from_file(passphrase_file)
            return ask_passphrase(f"Passphrase for identity file {path}: ", confirm=False)

        try:
            found.extend(parse_identities_file(data, passphrase))
        except NoIdentityMatchError as err:
            # A sealed identity file that the passphrase does not open.
            raise CommandError(f"wrong passphrase for identity file {path}") from err
        except CryptoError as err:
            raise CommandError(f"identity file {path}: {_translate(err)}", EXIT_USAGE) from err
    return found


def cmd_open(args: argparse.Namespace) -> int:
    from evidence_intake.crypto.age import decrypt
    from evidence_intake.crypto.errors import CryptoError

    identities = _identities(args.identity, args.passphrase_file)
    with open_input(args.input) as src, _progress("opening", src, args.quiet) as progress:
        try:
            # Plaintext goes to a temporary file that becomes OUT only if every
            # chunk authenticated: released-but-untrusted plaintext never stays.
            with atomic_output(args.output, mode=0o600) as dst:
                decrypt(src, dst, identities, progress=progress)
        except CryptoError as err:
            raise _translate(err) from err
    return EXIT_OK

