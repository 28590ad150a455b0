"""No secret or content reaches the logs: a canary through the real pipeline.

The app is built with its real logging configuration (structlog, JSON, the
redaction processor, the standard-library bridge) and what it writes to
stderr is captured. ``structlog.testing.capture_logs`` would bypass the
processors and prove nothing.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated

import pytest
import structlog
from evidence_intake.service.auth.rules import public
from fastapi import Depends
from intake_api_support import Api

CANARY = "CANARY-d41d8cd98f00b204"


def _lines(text: str) -> list[dict[str, object]]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def test_canary_never_reaches_the_logs(api: Api, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # The test client (httpx) logs the URLs it requests; that is the client's
    # log, not the service's, so it is silenced here.
    monkeypatch.setattr(logging.getLogger("httpx"), "disabled", True)
    capsys.readouterr()
    admin = api.auth("admin")
    # 1. A password (and a name typed into the password field) at login.
    api.client.post("/api/v1/auth/login", json={"username": CANARY.lower(), "password": CANARY})
    # 2. A new account's password through the admin API.
    api.client.post("/api/v1/admin/users", headers=admin,
                    json={"username": "canary-user", "role": "counsellor",
                          "password": CANARY + " long enough"})
    # 3. A validation error whose input holds the canary.
    api.client.post("/api/v1/bodies", headers=admin, json={"name": CANARY, "extra": CANARY})
    # 4. A fresh API token, then used in a header and (wrongly) in a query string.
    token = api.client.post("/api/v1/auth/tokens", headers=admin,
                            json={"name": CANARY}).json()["token"]
    api.client.get(f"/api/v1/auth/me?token={token}&q={CANARY}",
                   headers={"Authorization": f"Bearer {token}"})

    # 5. Code that logs carelessly and then fails with the canary in its message.
    def careless(_rule: Annotated[None, Depends(public())]) -> None:
        log = structlog.get_logger("careless")
        log.info("about to fail", password=CANARY, statement=CANARY,
                 note=f"Authorization: Bearer {token}",
                 identity="AGE-SECRET-KEY-1QYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQSZQGPQYQS",
                 pasted=CANARY * 40)
        logging.getLogger("uvicorn.error").error("stdlib says %s", f"Bearer {token}")
        raise ValueError(f"statement text was {CANARY}")

    api.client.app.add_api_route("/api/v1/test-careless", careless, methods=["GET"])
    assert api.client.get("/api/v1/test-careless").status_code == 500

    captured = capsys.readouterr()
    text = captured.err + captured.out
    events = _lines(captured.err)
    # The pipeline did run: request events with their fields are there.
    requests = [e for e in events if e.get("event") == "request"]
    assert len(requests) >= 6
    assert {"request_id", "route", "status", "duration_ms", "account_id"} <= set(requests[-1])
    assert any(e.get("account_id") == api.accounts["admin"] for e in requests)
    assert any(e.get("event") == "about to fail" for e in events)
    failure = next(e for e in events if e.get("event") == "unhandled_exception")
    assert failure["exception"]["type"] == "builtins.ValueError"  # type: ignore[index]
    # And nothing secret is in any of it.
    for needle in (CANARY, CANARY.lower(), token, token[4:], "AGE-SECRET-KEY-1QYQ"):
        assert needle not in text, needle
