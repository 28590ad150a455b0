"""The published JSON Schemas are exactly what the service enforces.

schemas/statement_record.v1.json and schemas/receipt.v1.json are generated
from the pydantic models; a model change without regenerating them fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from evidence_intake.schemas.statements import (
    RECEIPT_SCHEMA_ID,
    RECORD_SCHEMA_ID,
    receipt_json_schema,
    render_schema,
    statement_record_json_schema,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


@pytest.mark.parametrize(("name", "build", "schema_id"), [
    ("statement_record.v1.json", statement_record_json_schema, RECORD_SCHEMA_ID),
    ("receipt.v1.json", receipt_json_schema, RECEIPT_SCHEMA_ID),
])
def test_schema_file_matches_the_models(name: str, build: object, schema_id: str) -> None:
    assert callable(build)
    text = (SCHEMAS / name).read_text(encoding="utf-8")
    assert text == render_schema(build()), (
        f"regenerate: python -m evidence_intake.schemas.statements ... > schemas/{name}")
    document = json.loads(text)
    assert document["$id"] == schema_id
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_routing_schema_has_no_identifying_field() -> None:
    routing = statement_record_json_schema()["$defs"]["Routing"]["properties"]
    for field in ("name", "witness", "place", "filename", "aliases", "contact", "text"):
        assert field not in routing


def test_every_consent_purpose_is_required() -> None:
    consent = statement_record_json_schema()["$defs"]["Consent"]
    purposes = {"storage", "sharing", "publication_or_advocacy", "identity_disclosure_to_court",
                "willingness_to_testify", "risks_explained", "withdrawal_explained"}
    assert purposes <= set(consent["required"])
