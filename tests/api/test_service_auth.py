"""Sign-in, session cookies, CSRF, throttling, API tokens, disabling and resets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from evidence_intake.service.auth.tokens import token_digest
from intake_api_support import PASSWORD, Api, make_api

LOGIN = "/api/v1/auth/login"


def _login(api: Api, username: str, password: str = PASSWORD) -> tuple[int, dict[str, object]]:
    response = api.client.post(LOGIN, json={"username": username, "password": password})
    return response.status_code, response.json() if response.content else {}


def test_login_sets_a_hardened_session_cookie(api: Api) -> None:
    _, username = api.create_account("counsellor")
    response = api.client.post(LOGIN, json={"username": username, "password": PASSWORD})
    assert response.status_code == 200
    cookies = response.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("__Host-intake_session="))
    flags = {part.strip().lower() for part in session.split(";")[1:]}
    assert {"httponly", "secure", "samesite=strict", "path=/"} <= flags
    assert not any(f.startswith("domain") for f in flags)
    assert response.headers["cache-control"] == "no-store"
    me = api.client.get("/api/v1/auth/me")
    assert me.status_code == 200
    assert me.json()["username"] == username
    assert me.json()["role"] == "counsellor"


def test_session_token_is_stored_only_as_a_digest(api: Api) -> None:
    _, username = api.create_account("auditor")
    _login(api, username)
    cookie = api.client.cookies.get("__Host-intake_session")
    assert cookie and cookie.startswith("eis_")
    from sqlalchemy import text

    with api.database.engine.connect() as conn:
        stored = [row[0] for row in conn.execute(text("SELECT token_sha256 FROM login_sessions"))]
    assert token_digest(cookie) in stored
    assert cookie not in stored


def test_forged_cross_site_post_without_csrf_token_is_refused(api: Api) -> None:
    _, username = api.create_account("counsellor")
    _, body = _login(api, username)
    csrf = body["csrf_token"]
    assert isinstance(csrf, str)
    forged = api.client.post("/api/v1/auth/tokens", json={"name": "x"})
    assert forged.status_code == 403
    assert forged.json()["type"].endswith(":csrf")
    wrong = api.client.post("/api/v1/auth/tokens", json={"name": "x"},
                            headers={"X-CSRF-Token": "0" * len(csrf)})
    assert wrong.status_code == 403
    ok = api.client.post("/api/v1/auth/tokens", json={"name": "x"},
                         headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201


def test_csrf_token_of_another_session_is_refused(api: Api) -> None:
    _, first = api.create_account("counsellor")
    _, second = api.create_account("counsellor")
    _, body = _login(api, first)
    stolen = body["csrf_token"]
    api.client.cookies.clear()
    _login(api, second)
    response = api.client.post("/api/v1/auth/tokens", json={"name": "x"},
                               headers={"X-CSRF-Token": str(stolen)})
    assert response.status_code == 403


def test_wrong_password_and_unknown_user_answer_alike(api: Api) -> None:
    _, username = api.create_account("counsellor")
    bad_password = api.client.post(LOGIN, json={"username": username, "password": "nope" * 4})
    no_user = api.client.post(LOGIN, json={"username": "nobody-here", "password": "nope" * 4})
    assert bad_password.status_code == no_user.status_code == 401
    assert bad_password.json() == no_user.json()
    assert "set-cookie" not in bad_password.headers


def test_password_guessing_on_one_account_is_throttled(api: Api) -> None:
    _, username = api.create_account("admin")
    limit = api.settings.login_max_failures_per_account
    statuses = [_login(api, username, "wrong password!")[0] for _ in range(limit)]
    assert statuses == [401] * limit
    locked = api.client.post(LOGIN, json={"username": username, "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) >= 1
    assert locked.json()["type"].endswith(":too-many-requests")


@pytest.fixture
def small_client_limit(tmp_path: Path, backend: str,
                       request: pytest.FixtureRequest) -> Iterator[Api]:
    yield from make_api(tmp_path, backend, request, login_max_failures_per_client=4)


def test_password_spraying_from_one_client_is_throttled(small_client_limit: Api) -> None:
    api = small_client_limit
    names = [api.create_account("counsellor")[1] for _ in range(5)]
    statuses = [_login(api, name, "wrong password!")[0] for name in names[:4]]
    assert statuses == [401] * 4
    # A fifth account, never guessed before, is refused for this client even
    # with its right password.
    assert _login(api, names[4])[0] == 429


def test_login_failures_are_audited_without_the_name_tried(api: Api) -> None:
    _, username = api.create_account("counsellor")
    _login(api, username, "wrong password!")
    _login(api, "typed-password-here", "wrong password!")
    actions = api.new_audit_actions()
    assert actions.count("login.failed") == 2
    from sqlalchemy import text

    with api.database.engine.connect() as conn:
        dump = " ".join(str(row) for row in conn.execute(text("SELECT * FROM audit_entries")))
    assert "typed-password-here" not in dump
    assert "wrong password!" not in dump


def test_api_token_is_shown_once_and_works_until_revoked(api: Api) -> None:
    headers = api.auth("export_officer")
    created = api.client.post("/api/v1/auth/tokens", json={"name": "laptop"}, headers=headers)
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("eit_")
    listed = api.client.get("/api/v1/auth/tokens", headers=headers).json()
    assert all("token" not in item for item in listed)
    mine = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/auth/me", headers=mine).status_code == 200
    token_id = created.json()["id"]
    revoked = api.client.delete(f"/api/v1/auth/tokens/{token_id}", headers=headers)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert api.client.get("/api/v1/auth/me", headers=mine).status_code == 401
    assert "token.created" in api.audit_actions()
    assert "token.revoked" in api.audit_actions()


def test_forged_and_malformed_bearer_tokens_are_refused(api: Api) -> None:
    token = api.token_for("auditor")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    for header in (f"Bearer {flipped}", "Bearer", "Basic abc", f"Bearer x{token}"):
        response = api.client.get("/api/v1/auth/me", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_disabled_account_loses_sessions_and_tokens(api: Api) -> None:
    account_id, username = api.create_account("counsellor")
    from evidence_intake.service.auth.accounts import create_api_token

    with api.database.session() as session:
        token = create_api_token(session, actor="system", account_id=account_id, name="t").token
    _login(api, username)
    admin = api.auth("admin")
    response = api.client.post(f"/api/v1/admin/users/{account_id}/disable", headers=admin)
    assert response.status_code == 200
    assert response.json()["disabled"] is True
    assert api.client.get("/api/v1/auth/me").status_code == 401
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/v1/auth/me", headers=bearer).status_code == 401
    assert _login(api, username)[0] == 401
    assert "user.disabled" in api.audit_actions()


def test_admin_creates_user_and_resets_password(api: Api) -> None:
    admin = api.auth("admin")
    name = api.unique("thida")
    created = api.client.post("/api/v1/admin/users", headers=admin,
                              json={"username": name, "role": "counsellor",
                                    "password": "a long first password"})
    assert created.status_code == 201
    account_id = created.json()["id"]
    assert _login(api, name, "a long first password")[0] == 200
    reset = api.client.post(f"/api/v1/admin/users/{account_id}/password", headers=admin,
                            json={"password": "a long second password"})
    assert reset.status_code == 200
    # The reset ended the session opened above.
    assert api.client.get("/api/v1/auth/me").status_code == 401
    assert _login(api, name, "a long first password")[0] == 401
    assert _login(api, name, "a long second password")[0] == 200
    duplicate = api.client.post("/api/v1/admin/users", headers=admin,
                                json={"username": name, "role": "auditor",
                                      "password": "a long third password"})
    assert duplicate.status_code == 409
    actions = api.audit_actions()
    assert "user.created" in actions
    assert "user.password_reset" in actions


def test_logout_ends_the_session_server_side(api: Api) -> None:
    _, username = api.create_account("auditor")
    _, body = _login(api, username)
    cookie = api.client.cookies.get("__Host-intake_session")
    out = api.client.post("/api/v1/auth/logout", headers={"X-CSRF-Token": str(body["csrf_token"])})
    assert out.status_code == 204
    # Replaying the old cookie does not work: the session ended in the database.
    api.client.cookies.set("__Host-intake_session", cookie or "", domain="testserver")
    assert api.client.get("/api/v1/auth/me").status_code == 401


def test_change_own_password_needs_the_current_one(api: Api) -> None:
    headers = api.auth("counsellor")
    wrong = api.client.post("/api/v1/auth/password", headers=headers,
                            json={"current_password": "not it at all",
                                  "new_password": "a brand new password"})
    assert wrong.status_code == 401
    short = api.client.post("/api/v1/auth/password", headers=headers,
                            json={"current_password": PASSWORD, "new_password": "short"})
    assert short.status_code == 422
    ok = api.client.post("/api/v1/auth/password", headers=headers,
                         json={"current_password": PASSWORD,
                               "new_password": "a brand new password"})
    assert ok.status_code == 204


def test_admin_sees_settings_without_secrets(api: Api) -> None:
    response = api.client.get("/api/v1/admin/settings", headers=api.auth("admin"))
    assert response.status_code == 200
    shown = response.json()
    assert shown["require_pq_recipients"] is False
    assert shown["secret_key_set"] is True
    assert "secret_key" not in shown
    assert "database_url" not in shown
    assert api.settings.secret_key is not None
    assert api.settings.secret_key.get_secret_value() not in response.text
    assert "postgres@" not in response.text


@pytest.mark.parametrize("column", ["last_seen_at", "expires_at"])
def test_idle_or_expired_session_is_refused(api: Api, column: str) -> None:
    from datetime import timedelta

    from evidence_intake.service.models.accounts import LoginSession
    from evidence_intake.service.models.types import utcnow
    from sqlalchemy import update

    _, username = api.create_account("auditor")
    _login(api, username)
    assert api.client.get("/api/v1/auth/me").status_code == 200
    digest = token_digest(api.client.cookies.get("__Host-intake_session") or "")
    past = utcnow() - timedelta(seconds=api.settings.session_idle_seconds + 1)
    with api.database.session() as session:
        session.execute(update(LoginSession).where(LoginSession.token_sha256 == digest)
                        .values({column: past}))
        session.commit()
    assert api.client.get("/api/v1/auth/me").status_code == 401
