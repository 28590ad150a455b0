"""Zip safety: hostile archives are refused from the central directory, before any read."""

from __future__ import annotations

import stat
import warnings
import zipfile
from pathlib import Path

import pytest

from evidence_intake.bundle import archive as archive_mod
from evidence_intake.bundle.archive import check_member_name, open_archive
from evidence_intake.bundle.errors import ArchiveError


def _zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]],
         compression: int = zipfile.ZIP_STORED) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(path, "w", compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def _refused(path: Path) -> ArchiveError:
    with pytest.raises(ArchiveError) as caught:
        open_archive(path).close()
    return caught.value


def test_plain_archive_opens_and_reads(tmp_path: Path) -> None:
    path = _zip(tmp_path / "ok.zip", [("a/b.txt", b"hello"), ("c.txt", b"")])
    with open_archive(path) as archive:
        assert sorted(archive.members) == ["a/b.txt", "c.txt"]
        assert archive.read_small("a/b.txt", 10) == b"hello"


@pytest.mark.parametrize("name", [
    "../evil", "a/../../evil", "/etc/passwd", "a//b", "./a", "a\\..\\b", "C:/x", "a\x00b",
    "a\u202eexe.txt", "", "a/",
])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(ArchiveError):
        check_member_name(name)


def test_path_traversal_member(tmp_path: Path) -> None:
    err = _refused(_zip(tmp_path / "t.zip", [("ok.txt", b"1"), ("../../escape.sh", b"2")]))
    assert err.subject == "../../escape.sh"


def test_absolute_member(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("x")
    info.filename = "/tmp/abs"  # ZipInfo strips a leading slash unless set afterwards
    info.orig_filename = "/tmp/abs"
    assert _refused(_zip(tmp_path / "a.zip", [(info, b"1")])).subject == "/tmp/abs"


def test_symlink_member(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    err = _refused(_zip(tmp_path / "l.zip", [(info, b"/etc/passwd")]))
    assert "symbolic link" in str(err)


def test_directory_entry(tmp_path: Path) -> None:
    _refused(_zip(tmp_path / "d.zip", [("dir/", b"")]))


@pytest.mark.parametrize("names", [("a.txt", "a.txt"), ("A.txt", "a.txt"),
                                   ("caf\u00e9", "CAF\u00c9")])
def test_duplicate_names(tmp_path: Path, names: tuple[str, str]) -> None:
    err = _refused(_zip(tmp_path / "dup.zip", [(names[0], b"1"), (names[1], b"2")]))
    assert "duplicate" in str(err)


def test_compression_bomb(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bomb.zip", [("zeros", bytes(20 << 20))], zipfile.ZIP_DEFLATED)
    assert "compression ratio" in str(_refused(path))


def test_other_compression_methods(tmp_path: Path) -> None:
    path = _zip(tmp_path / "bz.zip", [("x", b"data" * 10)], zipfile.ZIP_BZIP2)
    assert "compression method" in str(_refused(path))


def test_oversize_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_mod, "MAX_MEMBER_SIZE", 1000)
    assert "too large" in str(_refused(_zip(tmp_path / "big.zip", [("x", bytes(1001))])))


def test_too_many_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(archive_mod, "MAX_MEMBERS", 3)
    _refused(_zip(tmp_path / "many.zip", [(f"f{n}", b"") for n in range(4)]))


def test_data_prepended_to_the_archive(tmp_path: Path) -> None:
    inner = _zip(tmp_path / "inner.zip", [("a", b"1")]).read_bytes()
    (tmp_path / "prefixed.zip").write_bytes(b"#!/bin/sh\nrm -rf ~\n" + inner)
    _refused(tmp_path / "prefixed.zip")


def test_local_name_differs_from_central_directory(tmp_path: Path) -> None:
    data = bytearray(_zip(tmp_path / "n.zip", [("good.txt", b"1")]).read_bytes())
    data[30:38] = b"evil.txt"  # the first local header's name
    (tmp_path / "n.zip").write_bytes(bytes(data))
    assert "differs" in str(_refused(tmp_path / "n.zip"))


def test_overlapping_members(tmp_path: Path) -> None:
    """Two central entries pointing at one local header: the classic overlap bomb."""
    raw = bytearray(_zip(tmp_path / "o.zip", [("a", b"x" * 100), ("b", b"y" * 100)]).read_bytes())
    central = raw.rfind(b"PK\x01\x02")  # the second central entry
    raw[central + 42:central + 46] = (0).to_bytes(4, "little")  # its local header offset
    (tmp_path / "o.zip").write_bytes(bytes(raw))
    _refused(tmp_path / "o.zip")


def test_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"not a zip at all")
    _refused(tmp_path / "x.zip")


def test_crc_mismatch_is_caught_while_reading(tmp_path: Path) -> None:
    data = bytearray(_zip(tmp_path / "c.zip", [("a", b"hello world")]).read_bytes())
    data[data.find(b"hello")] ^= 0x20
    (tmp_path / "c.zip").write_bytes(bytes(data))
    with open_archive(tmp_path / "c.zip") as archive, pytest.raises(ArchiveError):
        archive.read_small("a", 100)
