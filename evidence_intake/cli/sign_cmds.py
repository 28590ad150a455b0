"""``intake sign-keygen``, ``intake sign`` and ``intake verify``: minisign-compatible signatures.

Offline commands: they import only ``evidence_intake.crypto.minisign`` (PyNaCl
and the standard library). Files are minisign's, so ``minisign -V -H``
verifies what ``intake sign`` writes and ``intake verify`` checks what
``minisign -S`` writes. Passphrases come from the terminal (never echoed) or
from ``--passphrase-file``; they are never taken from the command line.

Exit codes: 0 success; 1 the signature does not verify, a wrong passphrase or
an unusable key; 2 usage (bad arguments, unreadable file, refusing to
overwrite a key).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hmac
import os
import sys
import time
from pathlib import Path
from typing import Any

from ..crypto.errors import CryptoError, SignatureError
from ..crypto.minisign import (
    DEFAULT_UNTRUSTED_COMMENT,
    PassphraseError,
    PublicKey,
    SigningKey,
    verify_stream,
)
from ..crypto.minisign.encoding import (
    MAX_TRUSTED_COMMENT_BYTES,
    MAX_UNTRUSTED_COMMENT_BYTES,
    check_comment,
)
from .common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CommandError, atomic_output, open_input

DEFAULT_PUBLIC_KEY_FILE = "minisign.pub"
DEFAULT_SECRET_KEY_FILE = "minisign.key"  # noqa: S105 - a file name, not a secret
SIGNATURE_SUFFIX = ".minisig"

_KEYGEN_EPILOG = """\
examples:
  intake sign-keygen -p node.pub -s node.key
      asks twice for a passphrase on the terminal; node.key is created with mode 0600
  intake sign-keygen -p node.pub -s node.key --passphrase-file /run/secrets/sign-pass
  intake sign-keygen -p ci.pub -s ci.key --no-passphrase

The public key string printed at the end is what `intake verify -P` and
`minisign -V -P` take. Existing files are never overwritten without --force.
"""

_SIGN_EPILOG = """\
examples:
  intake sign export.zip -s node.key
      writes export.zip.minisig, trusted comment "timestamp:<now>\\tfile:export.zip\\thashed"
  intake sign export.zip -s node.key -t "bundle 2026-11-29 for UN IIMM" -x export.sig

Signatures are prehashed (BLAKE2b-512), which `minisign -V -H` requires.
"""

_VERIFY_EPILOG = """\
examples:
  intake verify export.zip -P RWQjhBK33PABsvsGHQ1yDWauW6BOnqtH3u/uDarLCol8NQVYgoSKESYH
  intake verify export.zip -p node.pub -x export.sig
  minisign -V -H -p node.pub -m export.zip        (the same check with minisign)

Prints the verified trusted comment on stdout. On failure prints one line on
stderr and exits 1; nothing is printed on stdout.
"""


def register(subparsers: Any) -> None:
    keygen = subparsers.add_parser(
        "sign-keygen",
        help="create a minisign-compatible Ed25519 signing key pair",
        description="Create an Ed25519 key pair in minisign's file formats: a public key "
        "file and a secret key file (passphrase-protected unless --no-passphrase).",
        epilog=_KEYGEN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    keygen.add_argument("-p", "--public-key-file", default=DEFAULT_PUBLIC_KEY_FILE,
                        metavar="PUB", help=f"public key file (default {DEFAULT_PUBLIC_KEY_FILE})")
    keygen.add_argument("-s", "--secret-key-file", default=DEFAULT_SECRET_KEY_FILE,
                        metavar="SEC", help=f"secret key file (default {DEFAULT_SECRET_KEY_FILE})")
    protect = keygen.add_mutually_exclusive_group()
    protect.add_argument("-W", "--no-passphrase", action="store_true",
                         help="store the secret key unencrypted (as minisign -W)")
    protect.add_argument("--passphrase-file", metavar="FILE",
                         help="read the passphrase from the first line of FILE")
    keygen.add_argument("-f", "--force", action="store_true",
                        help="overwrite existing key files")
    keygen.set_defaults(func=_keygen)

    sign = subparsers.add_parser(
        "sign",
        help="sign a file (minisign-compatible, prehashed)",
        description="Sign FILE with a minisign secret key; the signature goes to "
        "FILE.minisig unless -x says otherwise.",
        epilog=_SIGN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sign.add_argument("file", metavar="FILE", help="file to sign ('-' for stdin, with -x)")
    sign.add_argument("-s", "--secret-key-file", default=DEFAULT_SECRET_KEY_FILE, metavar="SEC",
                      help=f"secret key file (default {DEFAULT_SECRET_KEY_FILE})")
    sign.add_argument("-t", "--trusted-comment", metavar="TEXT",
                      help="one-line comment covered by the signature "
                      "(default: timestamp, file name and 'hashed', as minisign)")
    sign.add_argument("-c", "--untrusted-comment", metavar="TEXT",
                      help="one-line comment that is NOT signed")
    sign.add_argument("-x", "--signature-file", metavar="SIG",
                      help="signature file to write (default FILE.minisig)")
    sign.add_argument("--passphrase-file", metavar="FILE",
                      help="read the secret key's passphrase from the first line of FILE")
    sign.set_defaults(func=_sign)

    check = subparsers.add_parser(
        "verify",
        help="verify a minisign signature and print its trusted comment",
        description="Verify FILE against its minisign signature and print the trusted "
        "comment. Accepts prehashed (ED) and, unless -H, legacy (Ed) signatures.",
        epilog=_VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", metavar="FILE", help="the signed file ('-' for stdin, with -x)")
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("-P", "--public-key", metavar="PUBKEY",
                        help="public key as its base64 string")
    source.add_argument("-p", "--public-key-file", metavar="PUB", help="public key file")
    check.add_argument("-x", "--signature-file", metavar="SIG",
                       help="signature file (default FILE.minisig)")
    check.add_argument("-H", "--prehashed-only", action="store_true",
                       help="refuse legacy (non-prehashed) signatures, as minisign -H")
    check.add_argument("-q", "--quiet", action="store_true",
                       help="print nothing; the exit code tells the result")
    check.set_defaults(func=_verify)


# -- sign-keygen -------------------------------------------------------------


def _keygen(args: argparse.Namespace) -> int:
    public_path, secret_path = args.public_key_file, args.secret_key_file
    for path in (public_path, secret_path):
        if path == "-":
            raise CommandError("key files cannot be written to stdout", EXIT_USAGE)
    if Path(public_path).resolve() == Path(secret_path).resolve():
        raise CommandError("the public and secret key files must differ", EXIT_USAGE)
    if not args.force:
        for path in (public_path, secret_path):
            if Path(path).exists():
                raise CommandError(f"{path} exists; use --force to overwrite it", EXIT_USAGE)
    if args.no_passphrase:
        passphrase = None
    elif args.passphrase_file:
        passphrase = _passphrase_from_file(args.passphrase_file)
    else:
        passphrase = _passphrase_from_terminal(confirm=True)

    key = SigningKey.generate()
    try:
        secret_text = key.to_file_text(passphrase)
    except ValueError as err:
        raise CommandError(str(err), EXIT_USAGE) from err
    with atomic_output(secret_path, mode=0o600, force=args.force) as out:
        out.write(secret_text.encode("utf-8"))
    with atomic_output(public_path, mode=0o644, force=args.force) as out:
        out.write(key.public_key.to_file_text().encode("utf-8"))
    print(f"intake: secret key written to {secret_path} - keep it secret", file=sys.stderr)
    print(f"intake: public key {key.public_key.fingerprint} written to {public_path}",
          file=sys.stderr)
    print(key.public_key.to_string())
    return EXIT_OK


# -- sign --------------------------------------------------------------------


def _sign(args: argparse.Namespace) -> int:
    if args.file == "-" and not args.signature_file:
        raise CommandError("signing stdin needs -x SIGFILE", EXIT_USAGE)
    signature_path = args.signature_file or args.file + SIGNATURE_SUFFIX
    trusted = args.trusted_comment
    if not trusted:
        name = "stdin" if args.file == "-" else Path(args.file).name
        trusted = f"timestamp:{int(time.time())}\tfile:{name}\thashed"
    untrusted = (DEFAULT_UNTRUSTED_COMMENT if args.untrusted_comment is None
                 else args.untrusted_comment)
    # Check what is cheap to check before asking for a passphrase and
    # spending seconds on scrypt: the comments, and that FILE can be read.
    try:
        check_comment(trusted, MAX_TRUSTED_COMMENT_BYTES, "trusted comment")
        check_comment(untrusted, MAX_UNTRUSTED_COMMENT_BYTES, "untrusted comment")
    except ValueError as err:
        raise CommandError(str(err), EXIT_USAGE) from err
    with open_input(args.file) as stream:
        key = _load_signing_key(args.secret_key_file, args.passphrase_file)
        try:
            text = key.sign_stream(stream, trusted, untrusted)
        except OSError as err:
            raise CommandError(f"cannot read {args.file}: {err.strerror}", EXIT_USAGE) from err
    with atomic_output(signature_path, mode=0o644, force=True) as out:
        out.write(text.encode("utf-8"))
    return EXIT_OK


def _load_signing_key(path: str, passphrase_file: str | None) -> SigningKey:
    text = _read_text(path, "secret key")
    try:
        encrypted = SigningKey.file_is_encrypted(text)
        passphrase: bytes | None = None
        if encrypted:
            if passphrase_file:
                passphrase = _passphrase_from_file(passphrase_file)
            else:
                passphrase = _passphrase_from_terminal(confirm=False)
        return SigningKey.from_file_text(text, passphrase)
    except PassphraseError as err:
        raise CommandError(f"{path}: {err}", EXIT_FAILED) from err
    except CryptoError as err:
        raise CommandError(f"{path}: not a usable minisign secret key: {err}",
                           EXIT_FAILED) from err


# -- verify ------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    if args.file == "-" and not args.signature_file:
        raise CommandError("verifying stdin needs -x SIGFILE", EXIT_USAGE)
    signature_path = args.signature_file or args.file + SIGNATURE_SUFFIX
    try:
        if args.public_key is not None:
            public_key = PublicKey.from_string(args.public_key)
        else:
            public_key = PublicKey.from_file_text(_read_text(args.public_key_file, "public key"))
    except CryptoError as err:
        raise CommandError(f"not a minisign public key: {err}", EXIT_USAGE) from err
    signature_text = _read_text(signature_path, "signature", undecodable_exit=EXIT_FAILED)
    with open_input(args.file) as stream:
        try:
            trusted = verify_stream(stream, signature_text, public_key,
                                    allow_legacy=not args.prehashed_only)
        except SignatureError as err:
            raise CommandError(f"{args.file}: {err}", EXIT_FAILED) from err
        except OSError as err:
            raise CommandError(f"cannot read {args.file}: {err.strerror}", EXIT_USAGE) from err
    if not args.quiet:
        print(_printable(trusted))
    return EXIT_OK


# -- helpers -----------------------------------------------------------------


def _read_text(path: str, what: str, *, undecodable_exit: int = EXIT_USAGE) -> str:
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise CommandError(f"cannot read the {what} file {path}: {err.strerror}",
                           EXIT_USAGE) from err
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CommandError(f"the {what} file {path} is not UTF-8 text",
                           undecodable_exit) from err


def _passphrase_from_file(path: str) -> bytes:
    try:
        raw = Path(path).read_bytes()
    except OSError as err:
        raise CommandError(f"cannot read the passphrase file {path}: {err.strerror}",
                           EXIT_USAGE) from err
    # The first line, without its line ending (as minisign reads a typed one).
    line = raw.split(b"\n", 1)[0].removesuffix(b"\r")
    if not line:
        raise CommandError(f"the passphrase file {path} starts with an empty line", EXIT_USAGE)
    return line


def _passphrase_from_terminal(*, confirm: bool) -> bytes:
    # getpass reads from the controlling terminal; without one it would fall
    # back to echoing stdin, which we refuse.
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError as err:
        raise CommandError("no terminal to read a passphrase from; use --passphrase-file FILE",
                           EXIT_USAGE) from err
    os.close(fd)
    with contextlib.suppress(EOFError):
        first = getpass.getpass("Passphrase: ").encode("utf-8")
        if not confirm:
            return first
        if not first:
            raise CommandError("empty passphrase; use --no-passphrase for an unencrypted key",
                               EXIT_USAGE)
        second = getpass.getpass("Passphrase (again): ").encode("utf-8")
        if not hmac.compare_digest(first, second):
            raise CommandError("the passphrases do not match", EXIT_USAGE)
        return first
    raise CommandError("no passphrase was entered", EXIT_USAGE)


def _printable(text: str) -> str:
    """The trusted comment for a terminal: tabs kept, other control characters escaped.

    A validly signed comment still comes from outside; it must not be able to
    move the cursor or rewrite earlier lines of the operator's screen.
    """
    return "".join(ch if ch == "\t" or ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
