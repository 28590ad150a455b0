"""Receiving bodies and investigators' keys: validation, fingerprints, retiring, PQ policy."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from evidence_intake.crypto.age.mlkem768x25519 import HybridIdentity
from evidence_intake.crypto.age.x25519 import X25519Identity
from evidence_intake.service.errors import NotFoundError
from evidence_intake.service.recipient_sets import active_recipients_for_bodies
from intake_api_support import Api, make_api


def _x25519() -> str:
    return str(X25519Identity.generate().recipient)


def _hybrid() -> str:
    return str(HybridIdentity.generate().recipient)


def _body(api: Api, name: str | None = None) -> dict[str, Any]:
    response = api.client.post("/api/v1/bodies", headers=api.auth("admin"),
                               json={"name": name or api.unique("UN Myanmar mechanism"),
                                     "description": "IIMM"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _add(api: Api, body_id: str, recipient: str) -> Any:
    return api.client.post(f"/api/v1/bodies/{body_id}/recipients", headers=api.auth("admin"),
                           json={"organisation": "IIMM", "person": "Investigator A",
                                 "recipient": recipient})


def test_classical_and_hybrid_keys_are_registered_with_kind_and_fingerprint(api: Api) -> None:
    body = _body(api)
    assert body["key_kinds"] == []
    classical, hybrid = _x25519(), _hybrid()
    first = _add(api, body["id"], classical)
    second = _add(api, body["id"], hybrid)
    assert first.status_code == second.status_code == 201
    assert first.json()["kind"] == "x25519"
    assert first.json()["post_quantum"] is False
    assert second.json()["kind"] == "mlkem768x25519"
    assert second.json()["post_quantum"] is True
    # What `printf %s age1… | sha256sum` prints, so investigators can check it.
    assert first.json()["fingerprint"] == hashlib.sha256(classical.encode()).hexdigest()
    view = api.client.get(f"/api/v1/bodies/{body['id']}", headers=api.auth("admin")).json()
    assert view["key_kinds"] == ["mlkem768x25519", "x25519"]
    assert view["active_recipients"] == 2
    assert "recipient.added" in api.audit_actions()


@pytest.mark.parametrize("bad", [
    "age1notakey",
    "AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE",
])
def test_malformed_or_secret_keys_are_refused_without_echo(api: Api, bad: str) -> None:
    body = _body(api)
    response = _add(api, body["id"], bad)
    assert response.status_code == 422
    assert bad not in response.text


def test_key_with_a_flipped_checksum_character_is_refused(api: Api) -> None:
    good = _x25519()
    flipped = good[:-1] + ("q" if good[-1] != "q" else "p")
    response = _add(api, _body(api)["id"], flipped)
    assert response.status_code == 422


def test_same_key_twice_in_a_body_is_a_conflict(api: Api) -> None:
    body = _body(api)
    key = _x25519()
    assert _add(api, body["id"], key).status_code == 201
    assert _add(api, body["id"], key).status_code == 409


def test_retired_keys_stay_listed_but_are_not_active(api: Api) -> None:
    body = _body(api)
    kept = _add(api, body["id"], _x25519()).json()
    gone = _add(api, body["id"], _x25519()).json()
    url = f"/api/v1/bodies/{body['id']}/recipients/{gone['id']}/retire"
    retired = api.client.post(url, headers=api.auth("admin"))
    assert retired.status_code == 200
    assert retired.json()["active"] is False
    assert api.client.post(url, headers=api.auth("admin")).status_code == 409
    view = api.client.get(f"/api/v1/bodies/{body['id']}", headers=api.auth("counsellor")).json()
    assert {r["id"] for r in view["recipients"]} == {kept["id"], gone["id"]}
    with api.database.session() as session:
        active = active_recipients_for_bodies(session, [body["id"]])
    assert [r.id for r in active[body["id"]]] == [kept["id"]]
    assert "recipient.retired" in api.audit_actions()


def test_active_recipients_for_bodies_keeps_empty_bodies_and_refuses_unknown(api: Api) -> None:
    empty = _body(api)
    full = _body(api)
    key = _add(api, full["id"], _hybrid()).json()
    with api.database.session() as session:
        result = active_recipients_for_bodies(session, [empty["id"], full["id"]])
        assert result[empty["id"]] == []
        assert [r.recipient for r in result[full["id"]]] == [key["recipient"]]
        with pytest.raises(NotFoundError):
            active_recipients_for_bodies(session, [full["id"], "no-such-body"])


def test_unknown_body_is_404(api: Api) -> None:
    response = _add(api, "00000000-0000-4000-8000-000000000000", _x25519())
    assert response.status_code == 404


def test_duplicate_body_name_is_a_conflict(api: Api) -> None:
    name = api.unique("ICC prosecutor")
    _body(api, name)
    again = api.client.post("/api/v1/bodies", headers=api.auth("admin"), json={"name": name})
    assert again.status_code == 409


@pytest.fixture
def pq_only(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> Iterator[Api]:
    yield from make_api(tmp_path, backend, request, require_pq_recipients=True)


def test_pq_requirement_refuses_new_classical_keys(pq_only: Api) -> None:
    body = _body(pq_only)
    refused = _add(pq_only, body["id"], _x25519())
    assert refused.status_code == 422
    assert refused.json()["type"].endswith(":policy")
    assert _add(pq_only, body["id"], _hybrid()).status_code == 201


def test_the_compiled_lookup_on_a_connection_answers_as_the_general_one(api: Api) -> None:
    """Submissions look keys up on a plain connection (compiled per body count, raw rows)."""
    from evidence_intake.service.models.recipients import KeyKind

    empty = _body(api)
    full = _body(api)
    first = _add(api, full["id"], _x25519()).json()
    second = _add(api, full["id"], _hybrid()).json()
    gone = _add(api, full["id"], _x25519()).json()
    url = f"/api/v1/bodies/{full['id']}/recipients/{gone['id']}/retire"
    assert api.client.post(url, headers=api.auth("admin")).status_code == 200
    wanted = [full["id"], empty["id"], full["id"]]  # a repeat is asked once
    with api.database.session() as session:
        general = active_recipients_for_bodies(session, wanted)
    with api.database.read_connection() as connection:
        compiled = active_recipients_for_bodies(connection, wanted)
        with pytest.raises(NotFoundError, match="no-such-body"):
            active_recipients_for_bodies(connection, [full["id"], "no-such-body"])
    assert compiled == general
    assert list(compiled) == [full["id"], empty["id"]]
    assert [(k.id, k.kind) for k in compiled[full["id"]]] == [
        (first["id"], KeyKind.x25519), (second["id"], KeyKind.mlkem768x25519)]
    assert compiled[empty["id"]] == []
