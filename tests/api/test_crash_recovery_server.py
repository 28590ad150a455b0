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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from intake_samples import multipart, record, record_bytes

BIN = Path(sys.executable).parent / "intake"


def _intake(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run([str(BIN), *args], env=env, input=stdin, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, f"intake {args[0]}: {result.stderr}"
    return result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.data, self.env, self.port = data, env, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(BIN), "serve", "--data-dir", str(self.data), "--host", "127.0.0.1",
             "--port", str(self.port)],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("the server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


def _accounts_and_body(data: Path) -> tuple[str, str]:
    """A counsellor's API token and a receiving body with one key, made in-process."""
    from evidence_intake.crypto.age import X25519Identity
    from evidence_intake.service.auth.accounts import create_account, create_api_token
    from evidence_intake.service.db import Database
    from evidence_intake.service.models.accounts import Role
    from evidence_intake.service.recipient_sets import add_recipient, create_body
    from evidence_intake.service.settings import load_settings

    settings = load_settings(data, argon2_opslimit=1, argon2_memlimit=8192)
    database = Database.from_settings(settings)
    try:
        with database.session() as session:
            admin = create_account(session, settings, actor="system", username="root",
                                   role=Role.admin, password="correct horse battery staple")
            thida = create_account(session, settings, actor="system", username="thida",
                                   role=Role.counsellor, password="correct horse battery staple")
            session.commit()
            token = create_api_token(session, actor="system", account_id=thida.id,
                                     name="t").token
            body = create_body(session, actor=admin.id, name="UN mechanism", description="")
            session.flush()
            add_recipient(session, settings, actor=admin.id, body_id=body.id, organisation="UN",
                          person="Investigator", recipient=str(X25519Identity.generate().recipient))
            body_id = body.id
            session.commit()
    finally:
        database.dispose()
    return token, body_id


@pytest.fixture
def node(tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    data = tmp_path / "var"
    env = {**os.environ, "INTAKE_DATA_DIR": str(data), "INTAKE_COOKIE_SECURE": "false"}
    env.pop("INTAKE_DATABASE_URL", None)
    _intake("init", "--data-dir", str(data), env=env)
    server = Server(data, env)
    try:
        yield server, env
    finally:
        server.kill()


def _files(blobs: Path) -> list[str]:
    return sorted(os.listdir(blobs))


@pytest.mark.slow
def test_kill_minus_9_mid_upload_then_restart(
        node: tuple[Server, dict[str, str]], tmp_path: Path) -> None:
    server, env = node
    blobs = server.data / "blobs"
    token, body_id = _accounts_and_body(server.data)
    server.start()

    meta = tmp_path / "record.json"
    meta.write_bytes(record_bytes(record([body_id])))
    (tmp_path / "statement.txt").write_text("first statement", encoding="utf-8")
    (tmp_path / "photo.jpg").write_bytes(os.urandom(300_000))
    receipt = json.loads(_intake(
        "submit", "--server", server.url, "--token", token, "--meta", str(meta), "--json",
        str(tmp_path / "statement.txt"), str(tmp_path / "photo.jpg"), env=env))
    committed = _files(blobs)
    assert len(committed) == 2

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
    leftovers = [n for n in _files(blobs) if n not in committed]
    assert leftovers and all(n.startswith((".tmp-", ".lease-")) for n in leftovers)

    # Restart: start-up garbage collection removes the dead upload's files.
    time.sleep(2.1)  # older than the minimum orphan age
    server.start()
    assert _files(blobs) == committed

    listed = httpx.get(f"{server.url}/api/v1/statements",
                       headers={"Authorization": f"Bearer {token}"}).json()
    assert [item["routing"]["record_id"] for item in listed] == [receipt["statement_id"]]
    server.kill()

    log = tmp_path / "log.jsonl"
    _intake("audit", "export", "-o", str(log), "--database-url",
            f"sqlite:///{server.data / 'intake.db'}", "--key-file",
            str(server.data / "log.key"), env=env)
    from evidence_intake.service.auditlog import log_verifier_key

    _intake("audit", "verify", str(log), "--key", log_verifier_key(server.data / "log.key"),
            env=env)
    actions = [json.loads(line).get("action") for line in log.read_text().splitlines()]
    assert actions.count("statement.sealed") == 1
