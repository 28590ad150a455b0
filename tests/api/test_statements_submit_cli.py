"""``intake submit`` against a real ``intake serve``, as a counsellor's script runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from intake_samples import ZAWGYI_ARTICLE_1, record, record_bytes
from live_node_support import Server, accounts_and_body, live_node

BIN = Path(sys.executable).parent / "intake"
LIMIT = 2 << 20


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Server, dict[str, str], str, str]]:
    root = tmp_path_factory.mktemp("submit-cli")
    with live_node(root, INTAKE_MAX_REQUEST_BYTES=str(LIMIT)) as (server, env):
        token, body_id = accounts_and_body(server.data)
        server.start()
        yield server, env, token, body_id


def _submit(served: tuple[Server, dict[str, str], str, str], tmp_path: Path, *args: str,
            token: str | None = None) -> subprocess.CompletedProcess[str]:
    server, env, good_token, _ = served
    token_file = tmp_path / "token"
    token_file.write_text((token or good_token) + "\n", encoding="utf-8")
    return subprocess.run(
        [str(BIN), "submit", "--server", server.url, "--token-file", str(token_file), *args],
        env={**env, "INTAKE_TOKEN": ""}, capture_output=True, text=True, timeout=120,
        check=False)


def _meta(tmp_path: Path, body_id: str) -> Path:
    path = tmp_path / "record.json"
    path.write_bytes(record_bytes(record([body_id])))
    return path


def test_submit_prints_the_receipt_as_json(served: tuple[Server, dict[str, str], str, str],
                                           tmp_path: Path) -> None:
    statement = tmp_path / "statement.txt"
    statement.write_text(ZAWGYI_ARTICLE_1, encoding="utf-8")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(os.urandom(100_000))
    result = _submit(served, tmp_path, "--meta", str(_meta(tmp_path, served[3])), "--json",
                     str(statement), str(photo))
    assert result.returncode == 0, result.stderr
    receipt = json.loads(result.stdout)
    assert receipt["schema"] == "receipt/v1"
    assert len(receipt["copies"][0]["attachments"]) == 1
    assert result.stderr == ""  # no progress bar without a terminal


def test_submit_prints_a_readable_receipt(served: tuple[Server, dict[str, str], str, str],
                                          tmp_path: Path) -> None:
    statement = tmp_path / "statement.txt"
    statement.write_text("plain statement", encoding="utf-8")
    result = _submit(served, tmp_path, "--meta", str(_meta(tmp_path, served[3])),
                     str(statement))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("statement ")
    assert "audit entry" in result.stdout


def test_refusals_are_one_line_errors(served: tuple[Server, dict[str, str], str, str],
                                      tmp_path: Path) -> None:
    statement = tmp_path / "statement.txt"
    statement.write_text("x", encoding="utf-8")
    meta = _meta(tmp_path, served[3])
    big = tmp_path / "video.mp4"
    big.write_bytes(b"\0" * (LIMIT + 1))

    too_big = _submit(served, tmp_path, "--meta", str(meta), str(statement), str(big))
    bad_token = _submit(served, tmp_path, "--meta", str(meta), str(statement),
                        token="eit_not-a-real-token")
    no_consent = tmp_path / "no-consent.json"
    no_consent.write_bytes(record_bytes(record([], [served[3]])))
    refused = _submit(served, tmp_path, "--meta", str(no_consent), str(statement))
    missing = _submit(served, tmp_path, "--meta", str(meta), str(tmp_path / "nope.txt"))

    for result, code, words in ((too_big, 1, "413"), (bad_token, 1, "401"),
                                (refused, 1, "consented to no receiving body"),
                                (missing, 2, "cannot read")):
        assert result.returncode == code, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("intake: error: ")
        assert words in lines[0]
        assert result.stdout == ""


def test_blobs_gc_removes_orphans_and_keeps_committed_blobs(
        served: tuple[Server, dict[str, str], str, str], tmp_path: Path) -> None:
    server, env, _, body_id = served
    statement = tmp_path / "statement.txt"
    statement.write_text("kept", encoding="utf-8")
    done = _submit(served, tmp_path, "--meta", str(_meta(tmp_path, body_id)), "--json",
                   str(statement))
    kept = json.loads(done.stdout)["copies"][0]["statement"]["sha256"]
    blobs = server.data / "blobs"
    orphan = blobs / ("ab" * 32)
    orphan.write_bytes(b"published, never committed")
    dead_temp = blobs / ".tmp-0123456789abcdef01234567-0011223344556677"
    dead_temp.write_bytes(b"an upload whose process died")
    old = 1_000_000_000
    for path in (orphan, dead_temp, blobs / kept):
        os.utime(path, (old, old))

    result = subprocess.run([str(BIN), "blobs-gc", "--data-dir", str(server.data),
                             "--grace-seconds", "3600"],
                            env=env, capture_output=True, text=True, timeout=120, check=False)

    assert result.returncode == 0, result.stderr
    assert "removed 1 temporary file(s) of dead uploads and 1 unreferenced blob(s)" in (
        result.stdout)
    assert not orphan.exists() and not dead_temp.exists()
    assert (blobs / kept).exists()
