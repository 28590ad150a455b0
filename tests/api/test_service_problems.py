"""Errors are RFC 9457 problem documents that name the problem and leak nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import pytest
from evidence_intake.service.auth.rules import public
from fastapi import Depends
from intake_api_support import Api, make_api

PROBLEM = "application/problem+json"
SECRET_INPUT = "hunter2-canary-7f3a9c"


def _is_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["type"] == f"urn:evidence-intake:problem:{slug}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    return body


def test_unknown_path_is_404(api: Api) -> None:
    _is_problem(api.client.get("/api/v1/no-such-thing"), 404, "not-found")


def test_wrong_method_is_405_with_allow(api: Api) -> None:
    response = api.client.delete("/api/v1/health")
    _is_problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["allow"]


def test_validation_names_the_field_and_never_echoes_input(api: Api) -> None:
    response = api.client.post("/api/v1/admin/users", headers=api.auth("admin"),
                               json={"username": "Not Valid!", "role": "counsellor",
                                     "password": SECRET_INPUT, "colour": SECRET_INPUT})
    body = _is_problem(response, 422, "validation")
    fields = {e["field"] for e in body["errors"]}
    assert {"body.username", "body.colour"} <= fields
    assert "body.username" in body["detail"]
    assert SECRET_INPUT not in response.text
    assert "Not Valid!" not in response.text


def test_malformed_json_is_422_without_the_document(api: Api) -> None:
    response = api.client.post("/api/v1/auth/login", content=b'{"password": "' + b"x" * 20,
                               headers={"content-type": "application/json"})
    _is_problem(response, 422, "validation")
    assert "xxxxxxxxxx" not in response.text


def test_wrong_content_type_is_415(api: Api) -> None:
    response = api.client.post("/api/v1/auth/login", content=b"username=a&password=b",
                               headers={"content-type": "application/x-www-form-urlencoded"})
    _is_problem(response, 415, "unsupported-media-type")


def test_anonymous_is_401_with_challenge(api: Api) -> None:
    response = api.client.get("/api/v1/admin/users")
    _is_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_wrong_role_is_403(api: Api) -> None:
    _is_problem(api.client.get("/api/v1/admin/users", headers=api.auth("auditor")),
                403, "forbidden")


@pytest.fixture
def tiny_limits(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Api]:
    yield from make_api(tmp_path, backend, request, max_json_bytes=1024,
                        max_request_bytes=4096)


def test_declared_oversize_body_is_413_before_reading(tiny_limits: Api) -> None:
    response = tiny_limits.client.post("/api/v1/auth/login",
                                       json={"username": "a", "password": "x" * 2000})
    body = _is_problem(response, 413, "payload-too-large")
    assert "1024" in body["detail"]


def test_streamed_oversize_body_is_413(tiny_limits: Api) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"username": "a", "password": "'
        for _ in range(10):
            yield b"x" * 500
        yield b'"}'

    response = tiny_limits.client.post("/api/v1/auth/login", content=chunks(),
                                       headers={"content-type": "application/json"})
    _is_problem(response, 413, "payload-too-large")


def test_unhandled_exception_is_500_without_internals(api: Api) -> None:
    def explode(_rule: Annotated[None, Depends(public())]) -> None:
        # An internal-looking message: a path, SQL and the canary must not reach the client.
        raise RuntimeError("/srv/secret/path SELECT * FROM accounts " + SECRET_INPUT)  # noqa: S608

    api.client.app.add_api_route("/api/v1/test-explode", explode, methods=["GET"])
    response = api.client.get("/api/v1/test-explode")
    body = _is_problem(response, 500, "internal")
    assert SECRET_INPUT not in response.text
    assert "SELECT" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"] == response.headers["x-request-id"]


def test_throttled_login_is_429_problem(api: Api) -> None:
    _, username = api.create_account("auditor")
    for _ in range(api.settings.login_max_failures_per_account):
        api.client.post("/api/v1/auth/login", json={"username": username, "password": "bad"})
    response = api.client.post("/api/v1/auth/login", json={"username": username,
                                                            "password": "bad"})
    body = _is_problem(response, 429, "too-many-requests")
    assert body["retry_after"] == int(response.headers["retry-after"])


def test_responses_carry_hardening_headers(api: Api) -> None:
    response = api.client.get("/api/v1/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_front_page_is_static_under_a_strict_policy(api: Api) -> None:
    response = api.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "<script" not in response.text
    assert "intake admin create-user --role admin NAME" in response.text
