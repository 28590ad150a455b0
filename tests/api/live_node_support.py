"""A real ``intake serve`` in a subprocess, for the crash and ``intake submit`` tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent / "intake"


def run_intake(*args: str, env: dict[str, str], stdin: str | None = None) -> str:
    result = subprocess.run([str(BIN), *args], env=env, input=stdin, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, f"intake {args[0]}: {result.stderr}"
    return result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, data: Path, env: dict[str, str]) -> None:
        self.data, self.env, self.port = data, env, free_port()
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


def accounts_and_body(data: Path, identity: Any = None) -> tuple[str, str]:
    """A counsellor's API token and a receiving body with one key, made in-process.

    The body's key is ``identity``'s recipient (a new one when not given).
    """
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
            key = identity or X25519Identity.generate()
            add_recipient(session, settings, actor=admin.id, body_id=body.id, organisation="UN",
                          person="Investigator", recipient=str(key.recipient))
            body_id = body.id
            session.commit()
    finally:
        database.dispose()
    return token, body_id


@contextlib.contextmanager
def live_node(tmp_path: Path, **env: str) -> Iterator[tuple[Server, dict[str, str]]]:
    """``intake init`` in ``tmp_path/var``; yields a (not yet started) server and its env."""
    data = tmp_path / "var"
    environ = {**os.environ, "INTAKE_DATA_DIR": str(data), "INTAKE_COOKIE_SECURE": "false",
               **env}
    environ.pop("INTAKE_DATABASE_URL", None)
    run_intake("init", "--data-dir", str(data), env=environ)
    server = Server(data, environ)
    try:
        yield server, environ
    finally:
        server.kill()
