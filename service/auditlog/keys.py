"""The audit log's signing key file (a signed-note signer key string, 0600).

``intake init`` calls :func:`create_log_key`; the verifier key string it
returns is printed for auditors to pin. The file is never overwritten: a new
key would orphan every checkpoint signed with the old one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ...audit.errors import AuditError
from ...audit.note import NoteSigner, generate_signer_key


class LogKeyError(Exception):
    """The log key file is missing, unsafe or malformed."""


def create_log_key(path: Path | str, origin_name: str) -> str:
    """Write a new key for log ``origin_name`` to ``path`` (0600, never overwriting).

    Returns the verifier key string. Raises FileExistsError if ``path`` exists.
    """
    target = Path(path)
    skey, vkey = generate_signer_key(origin_name)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (skey + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return vkey


def load_log_signer(path: Path | str) -> NoteSigner:
    """Read the signer key, refusing a file that group or others may read."""
    target = Path(path)
    try:
        mode = target.stat().st_mode
        text = target.read_text(encoding="ascii")
    except FileNotFoundError as err:
        raise LogKeyError(f"no audit log key at {target} (run 'intake init')") from err
    except (OSError, UnicodeDecodeError) as err:
        raise LogKeyError(f"cannot read the audit log key {target}: {err}") from err
    if stat.S_IMODE(mode) & 0o077:
        raise LogKeyError(f"the audit log key {target} is readable by others; chmod 600 it")
    try:
        return NoteSigner(text.strip())
    except (AuditError, ValueError) as err:
        # The message names the file, never the key material.
        raise LogKeyError(f"{target} is not an audit log key: {err}") from err


def log_verifier_key(path: Path | str) -> str:
    """The verifier key string (``name+hex8+base64``) of the key file at ``path``."""
    return load_log_signer(path).verifier.vkey
