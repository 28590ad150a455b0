"""Kill -9 the real server mid-upload, restart it, and check nothing half-done remains.

Runs ``intake init`` and ``intake serve`` as subprocesses, as an operator
would. One statement is submitted completely (with ``intake submit``), a
second upload is cut off by killing the server while an attachment streams.
After a restart: the database holds exactly the first statement, the blob
store exactly its blobs (the dead upload's temporary files are removed at
start-up because their lease died with the process), and the audit chain
exported from the database verifies offline.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from intake_samples import multipart, record, record_bytes, stored_files
from live_node_support import Server, accounts_and_body, live_node, run_intake


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    with live_node(tmp_path) as started:
        yield started


def _files(blobs: Path) -> list[str]:
    return sorted(os.listdir(blobs))


def _leases(blobs: Path) -> list[str]:
    return [n for n in _files(blobs) if n.startswith(".lease-")]


@pytest.mark.slow
def test_kill_minus_9_mid_upload_then_restart(
        node: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    server, env = node
    blobs = server.data / "blobs"
    token, body_id = accounts_and_body(server.data)
    server.start()

    meta = tmp_path / "record.json"
    meta.write_bytes(record_bytes(record([body_id])))
    (tmp_path / "statement.txt").write_text("first statement", encoding="utf-8")
    (tmp_path / "photo.jpg").write_bytes(os.urandom(300_000))
    receipt = json.loads(run_intake(
        "submit", "--server", server.url, "--token", token, "--meta", str(meta), "--json",
        str(tmp_path / "statement.txt"), str(tmp_path / "photo.jpg"), env=env))
    committed = stored_files(blobs)
    assert len(committed) == 2
    assert len(_leases(blobs)) == 1  # the worker's lease, held while it lives

    # Second upload: everything but the end of a 64 MiB attachment, then kill -9.
    total = 64 << 20
    head, ctype = multipart([
        ("record", None, "application/json", record_bytes(record([body_id]))),
        ("text", None, "text/plain", b"second statement"),
        ("attachment", "small.bin", "application/octet-stream", os.urandom(1000)),
        ("attachment", "video.mp4", "video/mp4", b""),
    ])
    closing = head[head.rindex(b"\r\n--"):]
    head = head[: -len(closing)]
    length = len(head) + total + len(closing)
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall((f"POST /api/v1/statements HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  f"Authorization: Bearer {token}\r\nContent-Type: {ctype}\r\n"
                  f"Content-Length: {length}\r\n\r\n").encode() + head)
    chunk = os.urandom(1 << 20)
    for _ in range(16):
        sock.sendall(chunk)
    deadline = time.monotonic() + 20
    while not any(n.startswith(".tmp-") for n in _files(blobs)):
        assert time.monotonic() < deadline, "the upload never reached the blob store"
        time.sleep(0.05)
    time.sleep(0.3)
    server.kill()
    sock.close()
    dead_lease = _leases(blobs)
    leftovers = [n for n in _files(blobs) if n not in committed]
    assert leftovers and all(n.startswith((".tmp-", ".lease-")) for n in leftovers)
    assert any(n.startswith(".tmp-") for n in leftovers)

    # Restart: start-up garbage collection removes the dead upload's files.
    time.sleep(2.1)  # older than the minimum orphan age
    server.start()
    assert stored_files(blobs) == committed
    assert not set(dead_lease) & set(_files(blobs))  # the killed worker's lease went too

    listed = httpx.get(f"{server.url}/api/v1/statements",
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert [item["routing"]["record_id"] for item in listed] == [receipt["statement_id"]]
    server.kill()

    log = tmp_path / "log.jsonl"
    run_intake("audit", "export", "-o", str(log), "--database-url",
            f"sqlite:///{server.data / 'intake.db'}", "--key-file",
            str(server.data / "log.key"), env=env)
    from evidence_intake.service.auditlog import log_verifier_key

    run_intake("audit", "verify", str(log), "--key", log_verifier_key(server.data / "log.key"),
            env=env)
    actions = [json.loads(line).get("action") for line in log.read_text().splitlines()]
    assert actions.count("statement.sealed") == 1
