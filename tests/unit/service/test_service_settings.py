"""Settings refuse unsafe production values and never print secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from evidence_intake.service.settings import Mode, Settings, load_settings
from pydantic import ValidationError

GOOD_KEY = "k" * 48


def _production(**overrides: object) -> Settings:
    values: dict[str, object] = {"mode": "production", "secret_key": GOOD_KEY, **overrides}
    return Settings(**values)  # type: ignore[arg-type]


def test_safe_production_settings_are_accepted() -> None:
    settings = _production()
    assert settings.mode is Mode.production
    assert settings.cookie_secure


@pytest.mark.parametrize(("overrides", "named"), [
    ({"secret_key": None}, "INTAKE_SECRET_KEY"),
    ({"secret_key": "short"}, "INTAKE_SECRET_KEY"),
    ({"cookie_secure": False}, "INTAKE_COOKIE_SECURE"),
    ({"debug": True}, "INTAKE_DEBUG"),
    ({"argon2_opslimit": 1}, "INTAKE_ARGON2"),
    ({"argon2_memlimit": 8192}, "INTAKE_ARGON2"),
    ({"log_json": False}, "INTAKE_LOG_JSON"),
])
def test_unsafe_production_values_are_refused(overrides: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        _production(**overrides)


def test_development_allows_local_conveniences() -> None:
    settings = Settings(cookie_secure=False, debug=True, argon2_opslimit=1,
                        argon2_memlimit=8192)
    assert settings.mode is Mode.development


def test_environment_variables_are_read_with_the_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_MODE", "production")
    monkeypatch.setenv("INTAKE_SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("INTAKE_REQUIRE_PQ_RECIPIENTS", "true")
    settings = Settings()
    assert settings.mode is Mode.production
    assert settings.require_pq_recipients


def test_production_refusal_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTAKE_MODE", "production")
    monkeypatch.delenv("INTAKE_SECRET_KEY", raising=False)
    with pytest.raises(ValidationError, match="INTAKE_SECRET_KEY"):
        Settings()


def test_repr_and_errors_never_show_secrets() -> None:
    password_url = "postgresql+psycopg://intake:pg-canary-pw@db.example/intake"
    settings = Settings(secret_key="canary-secret-key-" + "x" * 40, database_url=password_url)
    for text in (repr(settings), str(settings), str(settings.model_dump())):
        assert "canary-secret-key" not in text
        assert "pg-canary-pw" not in text
    assert settings.sqlalchemy_url == password_url
    with pytest.raises(ValidationError) as caught:
        Settings(mode="production", secret_key="short-canary-key",  # type: ignore[arg-type]
                 database_url=password_url)
    assert "short-canary-key" not in str(caught.value)
    assert "pg-canary-pw" not in str(caught.value)


def test_defaults_derive_from_the_data_directory(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.sqlalchemy_url == f"sqlite:///{tmp_path.resolve() / 'intake.db'}"
    assert settings.blob_path == tmp_path / "blobs"
    assert settings.is_sqlite


def test_env_file_in_data_dir_is_read_and_environment_wins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "intake.env").write_text(
        f"INTAKE_SECRET_KEY={GOOD_KEY}\nINTAKE_MAX_ATTACHMENTS=7\n", encoding="utf-8")
    monkeypatch.setenv("INTAKE_MAX_ATTACHMENTS", "9")
    settings = load_settings(tmp_path)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == GOOD_KEY
    assert settings.max_attachments == 9
