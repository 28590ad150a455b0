"""What the server-side ``intake`` commands do: init, migrate, serve, admin, openapi.

``evidence_intake/cli/server_cmds.py`` parses the arguments and imports this
module lazily, so the offline commands never load FastAPI or SQLAlchemy.

Threat model for ``init``: the data directory holds the node's signing keys
and the database; it is created 0700 and the key and settings files 0600,
written through a temporary file so a crash never leaves half a key. Nothing
existing is overwritten: ``init`` is safe to run again (it only adds what is
missing and applies pending migrations).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from .settings import ENV_FILE_NAME, Settings, load_settings

SYSTEM_ACTOR = "system"


class SetupError(RuntimeError):
    """A setup step cannot be done; the message says what to fix."""


@dataclass
class InitReport:
    data_dir: Path
    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    node_public_key: str | None = None
    log_verifier_key: str | None = None
    revision: str | None = None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file ``path`` with mode 0600, atomically; never overwrite."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)  # fails if path exists: never overwrite a key
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _private_dir(path: Path, report: InitReport) -> None:
    if path.exists():
        if not path.is_dir():
            raise SetupError(f"{path} exists and is not a directory")
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o700)
        report.kept.append(str(path))
    else:
        path.mkdir(mode=0o700, parents=True)
        report.created.append(str(path))


def init(data_dir: Path) -> InitReport:
    """Create or complete the data directory; idempotent."""
    report = InitReport(data_dir=data_dir)
    _private_dir(data_dir, report)
    env_file = data_dir / ENV_FILE_NAME
    if env_file.exists():
        report.kept.append(str(env_file))
    else:
        _write_private(env_file, (
            "# Written by `intake init`. Environment variables (INTAKE_*) override these.\n"
            f"INTAKE_SECRET_KEY={secrets.token_urlsafe(48)}\n"))
        report.created.append(str(env_file))
    settings = load_settings(data_dir)
    if settings.blob_dir is None:
        _private_dir(settings.blob_path, report)
    report.revision = migrate(settings)
    _node_key(settings, report)
    _log_key(settings, report)
    return report


def _node_key(settings: Settings, report: InitReport) -> None:
    from ..crypto.minisign import PublicKey, SigningKey

    secret_path = settings.node_key_path
    public_path = secret_path.with_suffix(".pub")
    if secret_path.exists():
        report.kept.append(str(secret_path))
        key = SigningKey.from_file_text(secret_path.read_text(encoding="utf-8"), None)
    else:
        # Unencrypted on purpose: the service signs exports unattended. The
        # file is 0600 inside a 0700 directory; the public half is pinned by
        # investigators out of band.
        key = SigningKey.generate()
        _write_private(secret_path, key.to_file_text(None))
        report.created.append(str(secret_path))
    public: PublicKey = key.public_key
    if not public_path.exists():
        public_path.write_text(public.to_file_text(), encoding="utf-8")
        report.created.append(str(public_path))
    report.node_public_key = public.to_string()


def _log_key(settings: Settings, report: InitReport) -> None:
    path = settings.log_key_path
    try:
        auditlog = importlib.import_module("evidence_intake.service.auditlog")
        create_log_key = auditlog.create_log_key
    except (ImportError, AttributeError) as err:
        raise SetupError("the audit log package does not provide create_log_key yet") from err
    if path.exists():
        report.kept.append(str(path))
        verifier = getattr(auditlog, "log_verifier_key", None)
        if verifier is not None:
            report.log_verifier_key = str(verifier(path))
        return
    result = create_log_key(path, settings.log_origin)
    report.created.append(str(path))
    if result is not None:
        report.log_verifier_key = str(result)


def migrate(settings: Settings) -> str | None:
    """Apply pending migrations; return the revision the database is at."""
    from .db import create_engine_from_settings
    from .migrations.runner import current_revision, upgrade_to_head

    engine = create_engine_from_settings(settings)
    try:
        upgrade_to_head(engine)
        return current_revision(engine)
    finally:
        engine.dispose()


def serve(data_dir: Path, *, host: str, port: int, workers: int) -> None:
    """Run the service under uvicorn (each worker builds its app from the settings)."""
    import uvicorn

    from .logging import configure_logging

    # Checked here once so that a refusal is one clear message, not one per
    # worker; the supervisor process logs through the same redacting pipeline.
    settings = load_settings(data_dir)
    configure_logging(settings)
    os.environ["INTAKE_DATA_DIR"] = str(data_dir)
    http: Any = "auto"
    if importlib.util.find_spec("httptools") is not None:
        from .http_protocol import ChunkPassingProtocol

        http = ChunkPassingProtocol  # httptools, without uvicorn's two body copies
    uvicorn.run(
        "evidence_intake.service.asgi:app_factory",
        factory=True,
        http=http,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # our logging configuration (JSON, redacted) stays in charge
        access_log=False,  # RequestMiddleware logs each request without its query string
        server_header=False,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        timeout_graceful_shutdown=30,
    )


@contextlib.contextmanager
def _session(settings: Settings) -> Iterator[Any]:
    from .db import Database

    database = Database.from_settings(settings)
    try:
        with database.session() as session:
            yield session
    finally:
        database.dispose()


def _account_id(session: Any, username: str) -> str:
    from .auth.accounts import find_by_username

    account = find_by_username(session, username)
    if account is None:
        raise SetupError(f"no account named {username!r}")
    account_id: str = account.id
    return account_id


def create_user(settings: Settings, *, username: str, role: str, password: str) -> str:
    from .auth.accounts import create_account
    from .models.accounts import Role

    with _session(settings) as session:
        account = create_account(session, settings, actor=SYSTEM_ACTOR, username=username,
                                 role=Role(role), password=password)
        account_id: str = account.id
        return account_id


def reset_password(settings: Settings, *, username: str, password: str) -> None:
    from .auth.accounts import reset_password as reset

    with _session(settings) as session:
        reset(session, settings, actor=SYSTEM_ACTOR, account_id=_account_id(session, username),
              password=password)


def disable_user(settings: Settings, *, username: str) -> None:
    from .auth.accounts import set_disabled

    with _session(settings) as session:
        set_disabled(session, actor=SYSTEM_ACTOR, account_id=_account_id(session, username),
                     disabled=True)


def create_token(settings: Settings, *, username: str, name: str) -> str:
    from .auth.accounts import create_api_token

    with _session(settings) as session:
        issued = create_api_token(session, actor=SYSTEM_ACTOR,
                                  account_id=_account_id(session, username), name=name)
        return issued.token


def openapi_document(settings: Settings) -> str:
    """The OpenAPI document of the app, as stable JSON (sorted keys, trailing newline)."""
    from .app import create_app
    from .db import Database

    # The document needs no data: an in-memory database keeps this from
    # creating ./var or touching a real database.
    offline = settings.model_copy(update={"database_url": SecretStr("sqlite://")})
    database = Database.from_settings(offline)
    try:
        app = create_app(offline, database=database)
        return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    finally:
        database.dispose()
