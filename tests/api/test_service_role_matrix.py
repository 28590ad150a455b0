"""Every registered route, every role and anonymous: gets exactly its declared rule.

The table below is the specification. The test is built from the app's own
routes, so a route added anywhere (statements, exports, audit) is walked
automatically, and a route missing from the table fails the test until its
owner writes down who may call it.
"""

from __future__ import annotations

import uuid

import pytest
from evidence_intake.service.auth.rules import api_routes, documentation_paths, rule_of
from intake_api_support import ROLES, Api

PUBLIC = "public"
ANY = frozenset(ROLES)
ADMIN = frozenset({"admin"})
BODY_READERS = frozenset({"admin", "counsellor", "export_officer"})
COUNSELLOR = frozenset({"counsellor"})
COUNSELLOR_OR_ADMIN = frozenset({"counsellor", "admin"})
EXPORT_OFFICER = frozenset({"export_officer"})
AUDITOR = frozenset({"auditor"})
AUDITOR_OR_ADMIN = frozenset({"auditor", "admin"})

# (method, path) -> "public" or the set of roles admitted.
EXPECTED: dict[tuple[str, str], str | frozenset[str]] = {
    ("GET", "/"): PUBLIC,
    # The counsellors' page and its two assets: a static shell with no data in
    # it; everything it shows comes from the API routes below, under their rules.
    ("GET", "/counsellor"): PUBLIC,
    ("GET", "/static/{asset}"): PUBLIC,
    ("GET", "/api/v1/health"): PUBLIC,
    ("POST", "/api/v1/auth/login"): PUBLIC,
    ("POST", "/api/v1/auth/logout"): ANY,
    ("GET", "/api/v1/auth/me"): ANY,
    ("POST", "/api/v1/auth/password"): ANY,
    ("GET", "/api/v1/auth/tokens"): ANY,
    ("POST", "/api/v1/auth/tokens"): ANY,
    ("DELETE", "/api/v1/auth/tokens/{token_id}"): ANY,
    ("GET", "/api/v1/admin/settings"): ADMIN,
    ("GET", "/api/v1/admin/users"): ADMIN,
    ("POST", "/api/v1/admin/users"): ADMIN,
    ("GET", "/api/v1/admin/users/{account_id}"): ADMIN,
    ("POST", "/api/v1/admin/users/{account_id}/password"): ADMIN,
    ("POST", "/api/v1/admin/users/{account_id}/disable"): ADMIN,
    ("POST", "/api/v1/admin/users/{account_id}/enable"): ADMIN,
    ("GET", "/api/v1/bodies"): BODY_READERS,
    ("POST", "/api/v1/bodies"): ADMIN,
    ("GET", "/api/v1/bodies/{body_id}"): BODY_READERS,
    ("POST", "/api/v1/bodies/{body_id}/recipients"): ADMIN,
    ("POST", "/api/v1/bodies/{body_id}/recipients/{recipient_id}/retire"): ADMIN,
    # Statements (issue 4): counsellors submit and see their own; admins handle
    # withdrawals, so they see metadata and receipts too.
    ("POST", "/api/v1/statements"): COUNSELLOR,
    ("GET", "/api/v1/statements"): COUNSELLOR,
    ("GET", "/api/v1/statements/{statement_id}"): COUNSELLOR_OR_ADMIN,
    ("GET", "/api/v1/statements/{statement_id}/receipt"): COUNSELLOR_OR_ADMIN,
    ("POST", "/api/v1/statements/{statement_id}/withdrawal"): COUNSELLOR_OR_ADMIN,
    # Exports (issue 5).
    ("POST", "/api/v1/exports"): EXPORT_OFFICER,
    ("GET", "/api/v1/exports"): EXPORT_OFFICER,
    ("GET", "/api/v1/exports/{export_id}/bundle"): EXPORT_OFFICER,
    # Audit log (issues 3 and 4): auditors read it; signing a checkpoint on
    # demand is harmless and useful to admins too (before a handover, say).
    ("GET", "/api/v1/audit/entries"): AUDITOR,
    ("GET", "/api/v1/audit/entries/{seq}"): AUDITOR,
    ("GET", "/api/v1/audit/checkpoint"): AUDITOR,
    ("POST", "/api/v1/audit/checkpoint"): AUDITOR_OR_ADMIN,
    ("GET", "/api/v1/audit/proof/{seq}"): AUDITOR,
    ("GET", "/api/v1/audit/consistency"): AUDITOR,
    ("GET", "/api/v1/audit/export"): AUDITOR,
}


def _registered(api: Api) -> list[tuple[str, str, object]]:
    app = api.client.app
    docs = documentation_paths(app)
    out = []
    for route in api_routes(app):
        if route.path in docs:
            continue
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            out.append((method, route.path, route))
    return out


def _fill(path: str) -> str:
    parts = []
    for segment in path.split("/"):
        if segment.startswith("{") and segment.endswith("}"):
            parts.append(str(uuid.uuid4()))
        else:
            parts.append(segment)
    return "/".join(parts)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_every_route_is_in_the_table_and_declares_that_rule(api: Api) -> None:
    registered = _registered(api)
    missing = [f"{m} {p}" for m, p, _ in registered if (m, p) not in EXPECTED]
    assert not missing, "routes without an expected rule in this table: " + ", ".join(missing)
    stale = set(EXPECTED) - {(m, p) for m, p, _ in registered}
    assert not stale, f"table rows for routes that do not exist: {sorted(stale)}"
    for method, path, route in registered:
        rule = rule_of(route)
        expected = EXPECTED[(method, path)]
        if expected == PUBLIC:
            assert rule.public, f"{method} {path} should be public"
        else:
            assert not rule.public, f"{method} {path} should not be public"
            assert {r.value for r in rule.roles} == expected, f"{method} {path}: {rule.describe()}"


def test_every_route_answers_every_role_as_declared(api: Api) -> None:
    failures = []
    for method, path, _route in _registered(api):
        expected = EXPECTED.get((method, path))
        if expected is None:
            continue  # reported by the table test above
        url = _fill(path)
        body = {"json": {}} if method in {"POST", "PUT", "PATCH"} else {}
        for who in (None, *ROLES):
            headers = api.auth(who) if who else {}
            status = api.client.request(method, url, headers=headers, **body).status_code
            if expected == PUBLIC:
                ok = status not in (401, 403)
            elif who is None:
                ok = status == 401
            elif who in expected:
                ok = status not in (401, 403)
            else:
                ok = status == 403
            if not ok:
                failures.append(f"{method} {path} as {who or 'anonymous'}: {status}")
    assert not failures, "\n".join(failures)
