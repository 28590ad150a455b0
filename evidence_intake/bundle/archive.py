"""A zip reader that refuses unsafe archives before anything is read from them.

Threat model: the bundle arrives from a network, a USB stick or a courier, and
an adversary may have crafted it to attack the investigator's machine, not
only to forge evidence. Before any member is read, :func:`open_archive` checks
the whole central directory: member names (no traversal, no absolute or drive
paths, no backslashes or control characters, no duplicates, also after Unicode
and case folding), member types (regular files only: no symlinks, devices or
directories), methods (stored or deflate only, no encryption), sizes (per
member and in total) and compression ratios (zip bombs), and the layout (each
member's local header where the central directory says, names equal in both,
no overlapping members and no hidden data between them). Reading then checks
that a member yields exactly its declared size and its CRC-32.

The signatures and digests checked later are what makes the *contents*
trustworthy; this module only makes sure that reading them is safe.
"""

from __future__ import annotations

import hashlib
import stat
import struct
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .errors import ArchiveError

#: Members larger than this are refused (sealed statements and attachments are
#: "several GiB" at most; 64 GiB leaves room without accepting absurd values).
MAX_MEMBER_SIZE = 64 << 30
#: The sum of all members' sizes is refused above this.
MAX_TOTAL_SIZE = 1 << 40
#: A bundle with more members than this is refused.
MAX_MEMBERS = 200_000
#: Deflated members may not expand more than this (stored members are 1:1).
MAX_RATIO = 100
#: Longest accepted member name, in bytes of UTF-8.
MAX_NAME_BYTES = 512

_LOCAL_HEADER = struct.Struct("<4s5H3L2H")
_LOCAL_MAGIC = b"PK\x03\x04"
_FLAG_ENCRYPTED = 0x1
_FLAG_DATA_DESCRIPTOR = 0x8
_FORBIDDEN_CHARS = frozenset('\\:*?"<>|')
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    """One regular file of the archive, after every safety check passed."""

    name: str
    size: int
    info: zipfile.ZipInfo


def check_member_name(name: str) -> None:
    """Raise :class:`ArchiveError` unless ``name`` is a safe relative POSIX path.

    Safe means: non-empty components separated by ``/``, none of them ``.`` or
    ``..``, no leading ``/``, no backslash, drive colon or Windows-reserved
    character, no control character, NFC-normalised, at most
    :data:`MAX_NAME_BYTES` bytes.
    """
    if not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise ArchiveError(f"member name is empty or too long: {name[:80]!r}", subject=name)
    if name.startswith("/"):
        raise ArchiveError(f"absolute path in archive: {name!r}", subject=name)
    if unicodedata.normalize("NFC", name) != name:
        raise ArchiveError(f"member name is not NFC-normalised: {name!r}", subject=name)
    for char in name:
        if char in _FORBIDDEN_CHARS or unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co"}:
            raise ArchiveError(f"forbidden character in member name: {name!r}", subject=name)
    for part in name.split("/"):
        if part in {"", ".", ".."}:
            raise ArchiveError(f"path traversal or empty component in: {name!r}", subject=name)


def _check_type(info: zipfile.ZipInfo) -> None:
    if info.is_dir():
        raise ArchiveError(f"directory entries are not allowed: {info.filename!r}",
                           subject=info.filename)
    mode = info.external_attr >> 16
    # Unix zips keep st_mode in the high half; a type of 0 (as Python's
    # writestr leaves it) means "unspecified" and is read as a regular file.
    if info.create_system == 3 and stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        kind = "symbolic link" if stat.S_ISLNK(mode) else "special file"
        raise ArchiveError(f"{kind} in archive: {info.filename!r}", subject=info.filename)
    if info.flag_bits & _FLAG_ENCRYPTED:
        raise ArchiveError(f"encrypted zip member: {info.filename!r}", subject=info.filename)
    if info.compress_type not in {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}:
        raise ArchiveError(
            f"compression method {info.compress_type} not allowed (stored or deflate only): "
            f"{info.filename!r}", subject=info.filename)
    if info.file_size > MAX_MEMBER_SIZE:
        raise ArchiveError(f"member too large ({info.file_size} bytes): {info.filename!r}",
                           subject=info.filename)
    if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        raise ArchiveError(f"stored member with differing sizes: {info.filename!r}",
                           subject=info.filename)
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > max(
            1 << 16, info.compress_size * MAX_RATIO):
        raise ArchiveError(
            f"absurd compression ratio ({info.file_size}/{info.compress_size}): "
            f"{info.filename!r}", subject=info.filename)


def _descriptor_sizes(info: zipfile.ZipInfo) -> set[int]:
    if not info.flag_bits & _FLAG_DATA_DESCRIPTOR:
        return {0}
    # CRC and two sizes (4 or 8 bytes each), with or without the optional signature.
    return {12, 16, 20, 24}


def _check_layout(handle: BinaryIO, infos: list[zipfile.ZipInfo], cd_offset: int) -> None:
    """Members must tile the file from offset 0 to the central directory.

    This refuses overlapping members (a zip-bomb technique), data hidden
    between members, and local headers whose name differs from the central
    directory's (so every zip reader sees the same files).
    """
    position = 0
    for info in sorted(infos, key=lambda i: i.header_offset):
        if info.header_offset != position:
            raise ArchiveError(
                f"member {info.filename!r} starts at {info.header_offset}, expected {position} "
                "(overlapping members or hidden data)", subject=info.filename)
        handle.seek(info.header_offset)
        raw = handle.read(_LOCAL_HEADER.size)
        if len(raw) != _LOCAL_HEADER.size:
            raise ArchiveError(f"truncated local header: {info.filename!r}", subject=info.filename)
        fields = _LOCAL_HEADER.unpack(raw)
        if fields[0] != _LOCAL_MAGIC:
            raise ArchiveError(f"bad local header: {info.filename!r}", subject=info.filename)
        name_len, extra_len = fields[9], fields[10]
        name_raw = handle.read(name_len)
        central_raw = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
        if name_raw != central_raw:
            raise ArchiveError(
                f"local header name differs from central directory: {info.filename!r}",
                subject=info.filename)
        data_end = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len
        data_end += info.compress_size
        gap_ok = False
        for descriptor in _descriptor_sizes(info):
            if data_end + descriptor in _next_starts(infos, info, cd_offset):
                position = data_end + descriptor
                gap_ok = True
                break
        if not gap_ok:
            raise ArchiveError(
                f"member {info.filename!r} overlaps the next one or is followed by hidden data",
                subject=info.filename)
    if position != cd_offset:
        raise ArchiveError("hidden data before the central directory")


def _next_starts(infos: list[zipfile.ZipInfo], info: zipfile.ZipInfo, cd_offset: int) -> set[int]:
    later = [i.header_offset for i in infos if i.header_offset > info.header_offset]
    return {min(later) if later else cd_offset}


class SafeArchive:
    """An opened, checked archive. Use :func:`open_archive`."""

    def __init__(self, path: Path, handle: BinaryIO, zf: zipfile.ZipFile,
                 members: dict[str, Member]) -> None:
        self.path = path
        self._handle = handle
        self._zip = zf
        self.members = members

    def close(self) -> None:
        self._zip.close()
        self._handle.close()

    def __enter__(self) -> SafeArchive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_member(self, name: str) -> BinaryIO:
        """A stream over a member's bytes; the zip layer checks its CRC-32 at the end."""
        member = self.members[name]
        try:
            return self._zip.open(member.info, "r")  # type: ignore[return-value]
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise ArchiveError(f"cannot read {name}: {err}", subject=name) from err

    def read_small(self, name: str, limit: int) -> bytes:
        """The whole member ``name``, refused if it is larger than ``limit`` bytes."""
        member = self.members[name]
        if member.size > limit:
            raise ArchiveError(f"{name} is too large ({member.size} bytes, limit {limit})",
                               subject=name)
        chunks = []
        for chunk in self.iter_member(name):
            chunks.append(chunk)
        return b"".join(chunks)

    def iter_member(self, name: str) -> Iterator[bytes]:
        """Yield a member's bytes in chunks, checking its size and CRC-32."""
        member = self.members[name]
        remaining = member.size
        try:
            with self._zip.open(member.info, "r") as stream:
                while True:
                    chunk = stream.read(min(_READ_CHUNK, remaining + 1))
                    if not chunk:
                        break
                    remaining -= len(chunk)
                    if remaining < 0:
                        raise ArchiveError(f"{name} is longer than declared", subject=name)
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError) as err:
            raise ArchiveError(f"cannot read {name}: {err}", subject=name) from err
        if remaining:
            raise ArchiveError(f"{name} is shorter than declared", subject=name)

    def digest(self, name: str) -> tuple[int, str]:
        """Size and SHA-256 (hex) of member ``name``, read in a stream."""
        hasher = hashlib.sha256()
        size = 0
        for chunk in self.iter_member(name):
            hasher.update(chunk)
            size += len(chunk)
        return size, hasher.hexdigest()


def open_archive(path: Path) -> SafeArchive:
    """Open ``path`` as a zip and run every structural safety check.

    Raises :class:`ArchiveError` naming the offending member. Nothing is
    decompressed or extracted before every check has passed.
    """
    try:
        handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - owned by SafeArchive
    except OSError as err:
        raise ArchiveError(f"cannot open {path}: {err.strerror}") from err
    try:
        try:
            zf = zipfile.ZipFile(handle, "r")
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
            raise ArchiveError(f"not a valid zip archive: {err}") from err
        infos = zf.infolist()
        if len(infos) > MAX_MEMBERS:
            raise ArchiveError(f"too many members ({len(infos)})")
        members: dict[str, Member] = {}
        folded: dict[str, str] = {}
        total = 0
        for info in infos:
            name = info.orig_filename
            check_member_name(name)
            _check_type(info)
            key = unicodedata.normalize("NFKC", name).casefold()
            if name in members or key in folded:
                raise ArchiveError(f"duplicate member name: {name!r}", subject=name)
            folded[key] = name
            total += info.file_size
            if total > MAX_TOTAL_SIZE:
                raise ArchiveError("archive expands beyond the total size limit")
            members[name] = Member(name=name, size=info.file_size, info=info)
        _check_layout(handle, infos, zf.start_dir)
    except BaseException:
        handle.close()
        raise
    return SafeArchive(path, handle, zf, members)
