"""Export requests and results (the API of ``/api/v1/exports``).

An export officer names a receiving body and the statements: explicit ids,
a creation-time range, or every statement not yet exported to that body.
With explicit ids the export is all or nothing (a refused id fails the
request with the reason for each); with a range or ``new_only`` the
statements that may not go are skipped and listed with their reason.

The bundle format itself is ``manifest.v1.json`` beside this module and
docs/formats/bundle.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _utc(value: datetime) -> datetime:
    if value.utcoffset() is None:
        raise ValueError("a time zone is required (use UTC, e.g. 2026-11-29T10:00:00Z)")
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_utc),
                    Field(description="RFC 3339 time with a time zone")]
Identifier = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")]
RefusalCodeName = Literal["not_found", "not_consented", "withdrawn", "purged",
                          "not_sealed_to_body", "missing_copy"]


class ExportRequest(BaseModel):
    """Exactly one of ``statement_ids``, ``since`` (optionally with ``until``) or ``new_only``."""

    model_config = ConfigDict(extra="forbid")

    body_id: Identifier
    statement_ids: list[Identifier] | None = Field(None, min_length=1, max_length=100_000)
    since: UtcTime | None = None
    until: UtcTime | None = None
    new_only: bool = False

    @model_validator(mode="after")
    def _one_selector(self) -> ExportRequest:
        chosen = sum([self.statement_ids is not None, self.since is not None, self.new_only])
        if chosen != 1:
            raise ValueError("give exactly one of statement_ids, since (with until) or new_only")
        if self.until is not None and self.since is None:
            raise ValueError("until needs since")
        if self.since and self.until and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class ExportRefusal(BaseModel):
    statement_id: str
    code: RefusalCodeName
    reason: str


class ExportResult(BaseModel):
    """What the export officer gets back; the bundle is downloaded separately."""

    export_id: str = Field(description="also the bundle id inside manifest.json")
    body_id: str
    key_kinds: list[str]
    created_at: datetime
    created_by: str
    statement_ids: list[str]
    refused: list[ExportRefusal]
    bundle_sha256: Sha256Hex
    bundle_size: int
    contents_digest: Sha256Hex
    audit_seq: int = Field(description="seq of the export.created audit entry")
    checkpoint: str = Field(description="the signed checkpoint inside the bundle")
    download: str = Field(description="path of GET to download the bundle")


class ExportSummary(BaseModel):
    export_id: str
    body_id: str
    created_at: datetime
    created_by: str
    status: str
    statement_count: int
    bundle_sha256: str | None
    bundle_size: int | None
