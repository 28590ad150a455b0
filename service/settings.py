"""The service's settings: environment variables prefixed ``INTAKE_``.

Threat model: a misconfigured production node is the cheapest attack on the
system (a cookie sent over plain HTTP, a missing secret key, a debug page that
prints a traceback with request data). ``Settings`` therefore refuses unsafe
values at start-up in ``production`` mode rather than warning about them, and
its ``repr`` never shows a secret: the secret key and the database URL (which
may carry a password) are ``SecretStr``.

Settings are built explicitly (``Settings()`` or :func:`load_settings`) by the
command that starts the service; nothing here runs at import time.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The name of the settings file `intake init` writes inside the data directory.
ENV_FILE_NAME = "intake.env"

# Argon2id floors for production: libsodium's "interactive" profile.
_MIN_PROD_OPSLIMIT = 2
_MIN_PROD_MEMLIMIT = 64 * 1024 * 1024
_MIN_SECRET_KEY_CHARS = 32


class Mode(enum.StrEnum):
    development = "development"
    production = "production"


class UnsafeSettingsError(ValueError):
    """Production mode was asked to start with values that are unsafe."""


class Settings(BaseSettings):
    """Every knob of the service; each field's description is its documentation."""

    model_config = SettingsConfigDict(
        env_prefix="INTAKE_",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
    )

    mode: Mode = Field(Mode.development, description="development or production")
    data_dir: Path = Field(Path("var"), description="data directory made by `intake init`")
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite:///DATA_DIR/intake.db. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db",
    )
    blob_dir: Path | None = Field(None, description="sealed-blob store; default DATA_DIR/blobs")
    secret_key: SecretStr | None = Field(
        None,
        description="at least 32 characters; keys CSRF tokens and client identifiers. "
        "`intake init` generates one into DATA_DIR/intake.env",
    )
    debug: bool = Field(False, description="development aid; refused in production")
    cookie_secure: bool = Field(
        True, description="mark session cookies Secure (HTTPS only); refused False in production"
    )
    session_ttl_seconds: Annotated[int, Field(gt=0)] = Field(
        8 * 3600, description="absolute lifetime of a login session"
    )
    session_idle_seconds: Annotated[int, Field(gt=0)] = Field(
        30 * 60, description="a session unused this long expires"
    )
    login_max_failures_per_account: Annotated[int, Field(gt=0)] = Field(
        5, description="failed logins on one account before it is throttled"
    )
    login_max_failures_per_client: Annotated[int, Field(gt=0)] = Field(
        20, description="failed logins from one client address before it is throttled"
    )
    login_failure_window_seconds: Annotated[int, Field(gt=0)] = Field(
        15 * 60, description="failures older than this are forgotten"
    )
    login_lockout_seconds: Annotated[int, Field(gt=0)] = Field(
        60, description="first lockout; doubles with each further failure, capped at 1 hour"
    )
    argon2_opslimit: Annotated[int, Field(ge=1)] = Field(
        _MIN_PROD_OPSLIMIT, description="Argon2id passes (libsodium opslimit)"
    )
    argon2_memlimit: Annotated[int, Field(ge=8192)] = Field(
        _MIN_PROD_MEMLIMIT, description="Argon2id memory in bytes (libsodium memlimit)"
    )
    require_pq_recipients: bool = Field(
        False, description="refuse classical (X25519) keys for new recipients"
    )
    max_request_bytes: Annotated[int, Field(gt=0)] = Field(
        16 * 1024**3, description="largest request body accepted (413 beyond)"
    )
    max_json_bytes: Annotated[int, Field(gt=0)] = Field(
        1024 * 1024, description="largest JSON request body accepted (413 beyond)"
    )
    max_attachment_bytes: Annotated[int, Field(gt=0)] = Field(
        8 * 1024**3, description="largest single attachment accepted (413 beyond)"
    )
    max_attachments: Annotated[int, Field(ge=0)] = Field(
        64, description="most attachments in one statement (413 beyond)"
    )
    upload_idle_seconds: Annotated[float, Field(gt=0)] = Field(
        60.0, description="a client silent this long in mid-body is dropped (any upload)"
    )
    worker_threads: Annotated[int, Field(ge=1, le=256)] = Field(
        6, description="threads per server process for blocking work (authentication, "
        "sealing, database); uploads read from the socket and exports have their own"
    )
    log_json: bool = Field(True, description="JSON log lines (False: readable console lines)")
    log_level: str = Field("info", description="debug, info, warning or error")
    openapi_docs: bool = Field(True, description="serve /docs and /openapi.json")
    forwarded_allow_ips: str = Field(
        "127.0.0.1",
        description="reverse proxies trusted for X-Forwarded-For (comma-separated); the client "
        "address they report is what login throttling counts",
    )
    log_origin: str = Field(
        "evidence-intake.local/audit",
        description="checkpoint origin line of the audit log (C2SP tlog-checkpoint)",
    )
    checkpoint_interval_seconds: Annotated[float, Field(ge=0)] = Field(
        300, description="sign an audit log checkpoint this often while the log grows "
        "(besides every export and on demand); 0 disables the periodic signer",
    )

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.mode is not Mode.production:
            return self
        problems = []
        key = self.secret_key.get_secret_value() if self.secret_key else ""
        if len(key) < _MIN_SECRET_KEY_CHARS:
            problems.append(
                f"INTAKE_SECRET_KEY must be set (at least {_MIN_SECRET_KEY_CHARS} chars)")
        if not self.cookie_secure:
            problems.append("INTAKE_COOKIE_SECURE must be true (cookies over HTTPS only)")
        if self.debug:
            problems.append("INTAKE_DEBUG must be false")
        if self.argon2_opslimit < _MIN_PROD_OPSLIMIT or self.argon2_memlimit < _MIN_PROD_MEMLIMIT:
            problems.append("INTAKE_ARGON2_* must be at least libsodium's interactive profile")
        if not self.log_json:
            problems.append("INTAKE_LOG_JSON must be true (structured logs)")
        if problems:
            raise UnsafeSettingsError("refusing to start in production: " + "; ".join(problems))
        return self

    @property
    def sqlalchemy_url(self) -> str:
        """The database URL in clear, for the engine only; never log it."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'intake.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def blob_path(self) -> Path:
        return self.blob_dir if self.blob_dir is not None else self.data_dir / "blobs"

    @property
    def node_key_path(self) -> Path:
        """The node's minisign secret key (signs export manifests)."""
        return self.data_dir / "node.key"

    @property
    def log_key_path(self) -> Path:
        """The audit log's signed-note key (signs checkpoints)."""
        return self.data_dir / "log.key"

    def secret_key_bytes(self) -> bytes:
        """The secret key as bytes; in development without one, a per-process random key.

        A random key means CSRF tokens do not survive a restart, which is the
        right failure for development; production refuses a missing key above.
        """
        if self.secret_key is not None:
            return self.secret_key.get_secret_value().encode("utf-8")
        return _DEV_FALLBACK_KEY.value


class _ProcessKey:
    """A random key made on first use, not at import time."""

    def __init__(self) -> None:
        self._value: bytes | None = None

    @property
    def value(self) -> bytes:
        if self._value is None:
            import secrets

            self._value = secrets.token_bytes(32)
        return self._value


_DEV_FALLBACK_KEY = _ProcessKey()


def load_settings(data_dir: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then DATA_DIR/intake.env, then ``overrides``.

    Environment variables win over the file, so an operator can override one
    value without editing it.
    """
    import os

    directory = data_dir or Path(os.environ.get("INTAKE_DATA_DIR", "var"))
    env_file = directory / ENV_FILE_NAME
    kwargs: dict[str, Any] = {"data_dir": directory, **overrides}
    if env_file.is_file():
        kwargs["_env_file"] = env_file
    return Settings(**kwargs)
