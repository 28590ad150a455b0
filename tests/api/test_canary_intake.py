"""No plaintext byte on disk, ever: a canary through the real intake pipeline.

A statement whose witness name, text and 20 MiB attachment carry a canary is
submitted through the app; then the data directory (database, WAL, blob
store), every file written to the temp directory during the test and the
captured process output (the JSON logs) are searched for the canary and its
obvious encodings. Nothing may be found. The control at the end proves the
search itself works.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from intake_api_support import make_api
from intake_samples import CANARY, record, with_change
from statements_support import make_bodies, submit

WINDOW = 4 << 20


def _needles(secret: bytes) -> list[bytes]:
    out = [secret, secret.hex().encode(), secret.hex().upper().encode(),
           secret.decode().encode("utf-16-le"), secret.decode().encode("utf-16-be")]
    for shift in range(3):
        # Base64 of the secret at any alignment contains this core.
        encoded = base64.b64encode(b"\0" * shift + secret)
        out.append(encoded[4 * ((shift + 2) // 3) + 4: -4])
        out.append(base64.urlsafe_b64encode(b"\0" * shift + secret)[4 * ((shift + 2) // 3) + 4: -4])
    return out


def _files(root: Path, since: float) -> Iterator[Path]:
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            try:
                if path.is_file() and not path.is_symlink() and path.stat().st_mtime >= since:
                    yield path
            except OSError:
                continue


def _find(path: Path, needles: list[bytes]) -> bytes | None:
    longest = max(len(n) for n in needles)
    tail = b""
    try:
        with open(path, "rb") as src:
            while chunk := src.read(WINDOW):
                window = tail + chunk
                for needle in needles:
                    if needle in window:
                        return needle
                tail = window[-longest:]
    except OSError:
        return None
    return None


def _attachment() -> bytes:
    data = bytearray(os.urandom(20 << 20))
    marker = CANARY.encode()
    for offset in (0, 65536 - 10, 10 << 20, len(data) - len(marker)):
        data[offset:offset + len(marker)] = marker
    return bytes(data)


@pytest.mark.slow
def test_canary_is_nowhere_on_disk_or_in_logs(
        tmp_path: Path, request: pytest.FixtureRequest, capfd: pytest.CaptureFixture[str]) -> None:
    started = time.time() - 1
    gen = make_api(tmp_path, "sqlite", request)
    api = next(gen)
    try:
        bodies = make_bodies(api)
        rec = with_change(record([bodies.un, bodies.icc]), "sealed.witness.name", CANARY)
        response = submit(api, rec, f"I, {CANARY}, declare.".encode(), (_attachment(),))
        assert response.status_code == 201, response.text
        refused = submit(api, with_change(rec, "routing.language", CANARY))
        assert refused.status_code == 422
    finally:
        gen.close()
    logs = capfd.readouterr()
    needles = _needles(CANARY.encode())

    hits = []
    for root in {tmp_path, Path(tempfile.gettempdir())}:
        for path in _files(root, started):
            found = _find(path, needles)
            if found is not None:
                hits.append(f"{path}: {found!r}")
    for stream in (logs.out, logs.err):
        for needle in needles:
            if needle.decode("latin-1") in stream:
                hits.append(f"captured output: {needle!r}")
    assert hits == []
    assert (logs.out + logs.err).strip(), "no log output captured; the log check saw nothing"

    # Control: the same search finds the canary where it is planted.
    control = tmp_path / "control.bin"
    control.write_bytes(b"x" * 100 + base64.b64encode(b"ab" + CANARY.encode()) + b"y")
    assert _find(control, needles) is not None
