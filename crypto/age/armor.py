"""The age ASCII armor (strict PEM-like encoding), read and written as streams.

Threat model: armor is a transport encoding, not a security boundary, but a
lax decoder makes files malleable and hides corruption. The reader therefore
accepts exactly what the C2SP age spec allows: the ``BEGIN`` line, lines of
64 columns of canonical padded base64 and one shorter final line, the ``END``
line; LF or CRLF line ends; whitespace only before ``BEGIN`` and after
``END`` (at most 1 KiB of it). No headers, no checksum, no whitespace inside
lines, no empty lines. Every violation is an :class:`ArmorError`.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import BinaryIO

from ..errors import ArmorError

HEADER = b"-----BEGIN AGE ENCRYPTED FILE-----"
FOOTER = b"-----END AGE ENCRYPTED FILE-----"
COLUMNS = 64
BYTES_PER_LINE = COLUMNS // 4 * 3
_MAX_WHITESPACE = 1024
_WHITESPACE = b" \t\r\n"
# A line is read with a little slack so that a too-long line is seen as such.
_LINE_LIMIT = COLUMNS + 16
# Encode this many bytes per base64 call when writing (a multiple of 48).
_WRITE_BLOCK = BYTES_PER_LINE * 1024


def _strip_eol(line: bytes) -> tuple[bytes, bool]:
    """Remove a trailing LF or CRLF; the flag says whether there was one."""
    if line.endswith(b"\r\n"):
        return line[:-2], True
    if line.endswith(b"\n"):
        return line[:-1], True
    return line, False


class ArmorReader(io.RawIOBase):
    """Decodes armored age data from ``src`` as a raw binary stream.

    Wrap it in :class:`io.BufferedReader` for ``readline`` and ``read``.
    Errors surface from ``readinto`` as :class:`ArmorError`.
    """

    def __init__(self, src: BinaryIO | io.BufferedIOBase) -> None:
        super().__init__()
        self._src = src
        self._started = False
        self._finished = False
        self._must_end = False
        self._pending = b""

    def readable(self) -> bool:
        return True

    def _start(self) -> None:
        # 1. Up to 1 KiB of whitespace may precede the BEGIN line.
        skipped = 0
        while True:
            byte = self._src.read(1)
            if not byte:
                raise ArmorError("armor: no BEGIN line")
            if byte not in _WHITESPACE:
                break
            skipped += 1
            if skipped > _MAX_WHITESPACE:
                raise ArmorError("armor: too much leading whitespace")
        # 2. The BEGIN line itself, exactly, with LF or CRLF.
        rest = self._src.readline(_LINE_LIMIT)
        line, eol = _strip_eol(byte + rest)
        if line != HEADER or not eol:
            raise ArmorError("armor: invalid BEGIN line")
        self._started = True

    def _finish(self, eol: bool) -> None:
        # 4. After END: only whitespace (at most 1 KiB), and only after a line end.
        trailing = self._src.read(_MAX_WHITESPACE + 1)
        if trailing and not eol:
            raise ArmorError("armor: data after the END line")
        if len(trailing) > _MAX_WHITESPACE:
            raise ArmorError("armor: too much trailing data")
        if trailing.strip(_WHITESPACE):
            raise ArmorError("armor: data after the END line")
        self._finished = True

    def _next_line(self) -> bytes:
        """Decode one body line; returns b"" at the END line."""
        raw = self._src.readline(_LINE_LIMIT)
        line, eol = _strip_eol(raw)
        if line == FOOTER:
            self._finish(eol)
            return b""
        if self._must_end:
            raise ArmorError("armor: a short line must be the last before END")
        if not eol:
            raise ArmorError("armor: truncated, or a line is too long")
        # 3. A body line: 1..64 columns of canonical padded base64.
        if not line or len(line) > COLUMNS:
            raise ArmorError("armor: body line has the wrong length")
        try:
            data = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ArmorError("armor: invalid base64") from err
        if base64.b64encode(data) != line:
            raise ArmorError("armor: non-canonical base64")
        if len(data) < BYTES_PER_LINE:
            self._must_end = True
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if not self._started:
            self._start()
        filled = 0
        while filled < len(view):
            if not self._pending:
                if self._finished:
                    break
                self._pending = self._next_line()
                continue
            take = min(len(view) - filled, len(self._pending))
            view[filled : filled + take] = self._pending[:take]
            self._pending = self._pending[take:]
            filled += take
        return filled


class ArmorWriter:
    """Encodes written bytes as age armor into ``dst``; ``close()`` writes END."""

    def __init__(self, dst: BinaryIO) -> None:
        self._dst = dst
        self._buf = bytearray()
        self._closed = False
        dst.write(HEADER + b"\n")

    def _emit(self, data: bytes | bytearray) -> None:
        encoded = base64.b64encode(data)
        self._dst.write(
            b"".join(encoded[i : i + COLUMNS] + b"\n" for i in range(0, len(encoded), COLUMNS))
        )

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._closed:
            raise ValueError("write to closed armor writer")
        self._buf += data
        if len(self._buf) >= _WRITE_BLOCK:
            cut = len(self._buf) - len(self._buf) % BYTES_PER_LINE
            self._emit(self._buf[:cut])
            del self._buf[:cut]
        return len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._buf:
            self._emit(self._buf)
        self._dst.write(FOOTER + b"\n")


def is_armored_prefix(prefix: bytes) -> bool:
    """Whether data starting with ``prefix`` looks armored (leading whitespace allowed)."""
    stripped = prefix.lstrip(_WHITESPACE)
    return stripped.startswith(HEADER) and len(prefix) - len(stripped) <= _MAX_WHITESPACE
