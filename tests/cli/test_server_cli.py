"""``intake init``, ``admin`` and ``openapi`` run as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

PASSWORD = "a long enough password"


def _intake(cwd: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTAKE_")}
    env["INTAKE_ARGON2_OPSLIMIT"] = "1"
    env["INTAKE_ARGON2_MEMLIMIT"] = "8192"
    return subprocess.run(
        [sys.executable, "-m", "evidence_intake.cli.main", *args],
        cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=120, check=False,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_is_private_and_idempotent(tmp_path: Path) -> None:
    first = _intake(tmp_path, "init")
    assert first.returncode == 0, first.stderr
    var = tmp_path / "var"
    assert _mode(var) == 0o700
    assert _mode(var / "blobs") == 0o700
    for secret in ("intake.env", "node.key", "log.key"):
        assert _mode(var / secret) == 0o600, secret
    assert (var / "intake.db").is_file()
    assert (var / "node.pub").read_text(encoding="utf-8").startswith("untrusted comment:")
    env_before = (var / "intake.env").read_bytes()
    key_before = (var / "node.key").read_bytes()
    log_key_before = (var / "log.key").read_bytes()

    second = _intake(tmp_path, "init")
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout
    assert (var / "intake.env").read_bytes() == env_before
    assert (var / "node.key").read_bytes() == key_before
    assert (var / "log.key").read_bytes() == log_key_before


def test_admin_bootstrap_and_token(tmp_path: Path) -> None:
    assert _intake(tmp_path, "init").returncode == 0
    made = _intake(tmp_path, "admin", "create-user", "--role", "admin", "alice",
                   "--password-stdin", stdin=PASSWORD + "\n")
    assert made.returncode == 0, made.stderr
    assert "alice" in made.stdout
    again = _intake(tmp_path, "admin", "create-user", "--role", "admin", "alice",
                    "--password-stdin", stdin=PASSWORD + "\n")
    assert again.returncode == 1
    assert "taken" in again.stderr
    weak = _intake(tmp_path, "admin", "create-user", "--role", "auditor", "bob",
                   "--password-stdin", stdin="short\n")
    assert weak.returncode == 1
    token = _intake(tmp_path, "admin", "create-token", "--name", "laptop", "alice")
    assert token.returncode == 0, token.stderr
    assert token.stdout.strip().startswith("eit_")
    assert "shown once" in token.stderr
    # The token is not written anywhere under var/ in clear.
    value = token.stdout.strip().encode()
    for path in (tmp_path / "var").rglob("*"):
        if path.is_file():
            assert value not in path.read_bytes(), path
    reset = _intake(tmp_path, "admin", "reset-password", "alice", "--password-stdin",
                    stdin="another long password\n")
    assert reset.returncode == 0, reset.stderr
    disabled = _intake(tmp_path, "admin", "disable-user", "alice")
    assert disabled.returncode == 0, disabled.stderr
    missing = _intake(tmp_path, "admin", "disable-user", "nobody")
    assert missing.returncode == 1
    assert "no account" in missing.stderr


def test_openapi_document_lists_the_routes(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    result = _intake(tmp_path, "openapi", "-o", str(out))
    assert result.returncode == 0, result.stderr
    document = json.loads(out.read_text(encoding="utf-8"))
    assert "/api/v1/auth/login" in document["paths"]
    assert "/api/v1/bodies/{body_id}/recipients" in document["paths"]


def test_production_refusal_is_one_clear_line(tmp_path: Path) -> None:
    env_dir = tmp_path / "var"
    env_dir.mkdir(mode=0o700)
    (env_dir / "intake.env").write_text("INTAKE_MODE=production\n", encoding="utf-8")
    result = _intake(tmp_path, "migrate")
    assert result.returncode == 2
    assert "INTAKE_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_server_command_has_help_with_an_example(tmp_path: Path) -> None:
    for args in (["init"], ["migrate"], ["serve"], ["openapi"], ["admin"],
                 ["admin", "create-user"], ["admin", "reset-password"],
                 ["admin", "disable-user"], ["admin", "create-token"]):
        result = _intake(tmp_path, *args, "--help")
        assert result.returncode == 0, args
        assert "example:" in result.stdout, args


def test_registering_server_commands_loads_no_server_stack(tmp_path: Path) -> None:
    """The offline commands share the parser with the server ones; building it stays light."""
    probe = (
        "import sys\n"
        "from evidence_intake.cli.main import build_parser\n"
        "build_parser().parse_args(['init', '--help'])\n"
    )
    check = (
        "import sys, runpy\n"
        "try:\n"
        "    runpy.run_path(sys.argv[1])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in ('fastapi', 'sqlalchemy', 'pydantic', 'structlog', 'uvicorn',"
        " 'alembic') if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    script = tmp_path / "probe.py"
    script.write_text(probe, encoding="utf-8")
    result = subprocess.run([sys.executable, "-c", check, str(script)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "HEAVY="
