"""Whatever an attachment was called, its output name is one safe path component."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath, PureWindowsPath

from hypothesis import given, settings
from hypothesis import strategies as st

from evidence_intake.bundle.archive import check_member_name
from evidence_intake.bundle.errors import ArchiveError
from evidence_intake.bundle.names import MAX_NAME_BYTES, safe_filename

_HOSTILE = st.sampled_from(["..", ".", "/", "\\", "C:", "\x00", "\u202e", "CON", "nul.txt",
                            "../../etc/passwd", " ", "~", "$HOME", "ဗမာ", "\n", "%2e%2e/"])
NAMES = st.lists(st.one_of(st.text(max_size=30), _HOSTILE), max_size=8).map("".join)


@settings(max_examples=150, deadline=None)
@given(NAMES)
def test_safe_filename_is_one_plain_component(name: str) -> None:
    result = safe_filename(name, "attachment")
    assert result and len(result.encode("utf-8")) <= MAX_NAME_BYTES
    assert result not in {".", ".."} and not result.startswith((".", " "))
    assert PurePosixPath(result).name == result and PureWindowsPath(result).name == result
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Cs", "Co"} for c in result)
    assert not any(c in result for c in '/\\:*?"<>|')
    stem = result.split(".")[0].upper()
    assert stem not in {"CON", "PRN", "AUX", "NUL"}
    assert safe_filename(result, "attachment") == result  # idempotent


@settings(max_examples=150, deadline=None)
@given(NAMES)
def test_member_names_the_reader_accepts_stay_inside(name: str) -> None:
    try:
        check_member_name(name)
    except ArchiveError:
        return
    parts = PurePosixPath(name).parts
    assert parts and not PurePosixPath(name).is_absolute()
    assert ".." not in parts and "\\" not in name
