"""The statement record (``statement-record/v1``) and the intake receipt (``receipt/v1``).

A record has two parts. ``sealed`` identifies the witness and never leaves
the server's memory except inside an age envelope. ``routing`` is the clear
metadata the service keeps to route, list and export a statement; nothing in
it may identify the witness (no names, places, dates of the interview, file
names or free text).

The counsellor sends a :class:`StatementInput` (the sealed part without the
statement text, plus routing *hints*); the service adds the text as typed and
its Unicode form, the attachments' metadata and the routing facts it measured,
and seals the resulting :class:`StatementRecord`. The JSON Schema files
``statement_record.v1.json`` and ``receipt.v1.json`` are generated from these
models (``python -m evidence_intake.schemas.statements``), and a test keeps
them identical, so investigators' tools validate what they decrypt against
exactly what the service enforced.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

RECORD_SCHEMA: Final = "statement-record/v1"
RECEIPT_SCHEMA: Final = "receipt/v1"
RECORD_SCHEMA_ID = "urn:evidence-intake:schema:statement-record:v1"
RECEIPT_SCHEMA_ID = "urn:evidence-intake:schema:receipt:v1"


def _utc(value: datetime) -> datetime:
    if value.utcoffset() is None:
        raise ValueError("a time zone is required (use UTC, e.g. 2026-11-29T10:00:00Z)")
    return value.astimezone(UTC)


UtcTime = Annotated[
    datetime, AfterValidator(_utc), Field(description="RFC 3339 time, stored in UTC")
]
Answer = Literal["yes", "no"]
Text = Annotated[str, Field(min_length=1, max_length=20_000)]
Name = Annotated[str, Field(min_length=1, max_length=500)]
PartialDate = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$",
        description="a date as precise as known: YYYY, YYYY-MM or YYYY-MM-DD",
    ),
]
Language = Annotated[
    str, Field(pattern=r"^[a-z]{2,3}$", description="ISO 639-1 or 639-3 code, e.g. my, en")
]
Script = Annotated[
    str, Field(pattern=r"^[A-Z][a-z]{3}$", description="ISO 15924 script code, e.g. Mymr, Latn")
]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]
RecordId = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
        description="random (version 4) UUID",
    ),
]
Identifier = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
KeyKind = Literal["x25519", "mlkem768x25519"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------- consent


class ConsentAnswer(_Model):
    """One yes/no answer of the witness, and when it was given."""

    answer: Answer
    answered_at: UtcTime


class BodyConsent(_Model):
    """Sharing with one receiving body, and onward from it to courts."""

    body_id: Identifier
    answer: Answer
    onward_to_courts: Answer
    answered_at: UtcTime


class Consent(_Model):
    """The full consent record: one answer per purpose, each with its time.

    The receiving bodies a statement may go to are exactly those in
    ``sharing`` answered ``yes``.
    """

    storage: ConsentAnswer
    sharing: Annotated[list[BodyConsent], Field(min_length=1, max_length=50)]
    publication_or_advocacy: ConsentAnswer
    identity_disclosure_to_court: Annotated[
        ConsentAnswer,
        Field(description="identity disclosed to a court; the defence may then learn it"),
    ]
    willingness_to_testify: ConsentAnswer
    risks_explained: Annotated[
        ConsentAnswer,
        Field(description="risks explained, incl. that a confession may expose the witness"),
    ]
    withdrawal_explained: Annotated[
        ConsentAnswer,
        Field(description="withdrawal explained, and what it cannot recall once referred"),
    ]
    explained_in_language: Language
    taken_by: Annotated[list[Name], Field(min_length=1, max_length=10)]
    recording_attachment: Annotated[
        int | None,
        Field(ge=0, description="index (0-based) of the attachment holding a consent recording"),
    ] = None


# ----------------------------------------------------------------- sealed part


class Witness(_Model):
    name: Name
    aliases: Annotated[list[Name], Field(max_length=20)] = []
    date_of_birth: PartialDate | None = None
    contact: Text | None = None
    alias_identity_link: Annotated[
        Text | None, Field(description="how the aliases relate to the identity")
    ] = None


class ServiceHistory(_Model):
    former_unit: Name | None = None
    rank: Name | None = None
    service_number: Name | None = None
    role: Name | None = None
    served_from: PartialDate | None = None
    served_to: PartialDate | None = None


class Interview(_Model):
    started_at: UtcTime
    place: Name
    mode: Literal["in_person", "remote"]
    interviewers: Annotated[list[Name], Field(min_length=1, max_length=20)]
    persons_present: Annotated[list[Name], Field(max_length=50)] = []
    interpreter: Name | None = None
    language_pair: Annotated[
        str | None, Field(pattern=r"^[a-z]{2,3}-[a-z]{2,3}$", description="e.g. my-en")
    ] = None


class Incident(_Model):
    occurred: PartialDate | None = None
    place: Name | None = None
    description: Text
    units_involved: Annotated[list[Name], Field(max_length=50)] = []


class FollowUp(_Model):
    willing_to_testify: Literal["yes", "no", "undecided"]
    may_be_contacted: bool
    safe_channel: Text | None = None


class Risk(_Model):
    level: Literal["low", "medium", "high", "critical"]
    assessment: Text
    protection_needs: Annotated[list[Name], Field(max_length=50)] = []


class Translation(_Model):
    language: Language
    text: Annotated[str, Field(min_length=1, max_length=4_000_000)]
    translator: Name | None = None


class SealedInput(_Model):
    """The identifying part as sent by the counsellor (the text comes in its own part)."""

    witness: Witness
    service: ServiceHistory
    interview: Interview
    incidents: Annotated[list[Incident], Field(max_length=200)] = []
    follow_up: FollowUp
    risk: Risk
    consent: Consent
    translation: Translation | None = None


class RoutingInput(_Model):
    """What the counsellor declares about routing; the service measures the rest."""

    language: Language
    script: Script
    priority: Literal["normal", "urgent"] = "normal"
    restricted: Annotated[
        bool, Field(description="handle with extra care (e.g. a witness at acute risk)")
    ] = False
    amends: Annotated[
        RecordId | None, Field(description="id of the statement this one amends")
    ] = None


class StatementInput(_Model):
    """The JSON ``record`` part of ``POST /api/v1/statements``."""

    schema_: Annotated[Literal["statement-record/v1"], Field(alias="schema")]
    sealed: SealedInput
    routing: RoutingInput

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class StatementText(_Model):
    """The statement as typed and in Unicode; the typed bytes are kept exactly."""

    typed_base64: Annotated[str, Field(description="the bytes as received, standard base64")]
    typed_sha256: Sha256Hex
    unicode: Annotated[str, Field(description="Unicode (NFC not applied) form of the text")]


class AttachmentMeta(_Model):
    """An attachment as described inside the envelope (file names identify, so only here)."""

    index: Annotated[int, Field(ge=0)]
    filename: Annotated[str, Field(max_length=255)]
    content_type: Annotated[str, Field(max_length=255)]
    size: Annotated[int, Field(ge=0)]
    sha256: Sha256Hex


class SealedRecord(SealedInput):
    statement: StatementText
    attachments: list[AttachmentMeta] = []


# ---------------------------------------------------------------- routing part


class BodyRoute(_Model):
    body_id: Identifier
    key_kind: Annotated[KeyKind, Field(description="which sealed copy this body receives")]


Fingerprint = Annotated[
    str,
    Field(pattern=r"^[0-9a-f]{64}$",
          description="SHA-256 (lowercase hex) of the recipient string, e.g. of age1..."),
]


class RecipientRoute(_Model):
    body_id: Identifier
    kind: KeyKind
    fingerprint: Fingerprint


class BlobDigest(_Model):
    sha256: Sha256Hex
    size: Annotated[int, Field(ge=0)]


class SealedCopy(_Model):
    """One copy of the statement and its attachments, sealed to every key of one kind."""

    key_kind: KeyKind
    bodies: list[Identifier]
    statement: BlobDigest
    attachments: list[BlobDigest]


class Sizes(_Model):
    text_bytes: Annotated[int, Field(ge=0)]
    record_bytes: Annotated[int, Field(ge=0, description="the sealed record JSON, in bytes")]
    attachment_bytes: list[Annotated[int, Field(ge=0)]]


class Routing(_Model):
    """Clear metadata: what the service stores and lists. Never identifying."""

    record_id: RecordId
    created_at: UtcTime
    counsellor_account_id: Identifier
    amends: RecordId | None = None
    bodies: Annotated[list[BodyRoute], Field(min_length=1)]
    language: Language
    script: Script
    text_encoding: Literal["unicode", "zawgyi", "undetermined", "no-myanmar-text"]
    zawgyi_probability: Annotated[float | None, Field(ge=0, le=1)] = None
    transformations: list[Literal["zawgyi-to-unicode"]]
    sizes: Sizes
    recipients: list[RecipientRoute]
    priority: Literal["normal", "urgent"]
    restricted: bool
    copies: Annotated[
        list[SealedCopy] | None,
        Field(description="ciphertext digests; absent inside the envelope itself"),
    ] = None


class StatementRecord(_Model):
    """``statement-record/v1``: what an investigator decrypts from ``statement.age``."""

    schema_: Annotated[Literal["statement-record/v1"], Field(alias="schema")]
    sealed: SealedRecord
    routing: Routing

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ------------------------------------------------------------------- receipts


class AuditRef(_Model):
    seq: Annotated[int, Field(ge=0)]
    entry_hash: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Receipt(_Model):
    """What the counsellor keeps to prove later what was recorded, and when."""

    schema_: Annotated[Literal["receipt/v1"], Field(alias="schema")]
    statement_id: RecordId
    created_at: UtcTime
    amends: RecordId | None = None
    status: Literal["active", "withdrawn", "purged"]
    copies: list[SealedCopy]
    audit: AuditRef
    checkpoint: Annotated[
        str | None, Field(description="latest signed checkpoint (C2SP signed note), if any")
    ] = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Withdrawal(_Model):
    """Body of ``POST /api/v1/statements/{id}/withdrawal``."""

    withdrawn_at: Annotated[UtcTime, Field(description="when the witness withdrew consent")]
    purge: Annotated[
        bool, Field(description="also delete the ciphertext, keeping a tombstone")
    ] = False


class StatementSummary(_Model):
    """One line of a counsellor's list: routing metadata and status, never content."""

    routing: Routing
    status: Literal["active", "withdrawn", "purged"]
    withdrawn_at: UtcTime | None = None
    purged_at: UtcTime | None = None
    audit: AuditRef


def _schema_document(model: type[BaseModel], schema_id: str, title: str) -> dict[str, Any]:
    body = model.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": schema_id,
            **body, "title": title}


def statement_record_json_schema() -> dict[str, Any]:
    return _schema_document(StatementRecord, RECORD_SCHEMA_ID, RECORD_SCHEMA)


def receipt_json_schema() -> dict[str, Any]:
    return _schema_document(Receipt, RECEIPT_SCHEMA_ID, RECEIPT_SCHEMA)


def render_schema(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


if __name__ == "__main__":
    # Regenerate: python -m evidence_intake.schemas.statements record \
    #                 > schemas/statement_record.v1.json
    which = sys.argv[1] if len(sys.argv) > 1 else "record"
    doc = statement_record_json_schema() if which == "record" else receipt_json_schema()
    sys.stdout.write(render_schema(doc))
