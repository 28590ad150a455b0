"""Export bundles: create one for a receiving body, list them, download one.

Only export officers create and download bundles. A bundle holds ciphertext,
routing metadata and audit evidence, never content; the download answers
with the bundle's SHA-256 (``Repr-Digest``, RFC 9530) so a client can check
what it received against the ``export.written`` audit entry.
"""

from __future__ import annotations

import base64
import functools
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ...schemas.exports import ExportRefusal, ExportRequest, ExportResult, ExportSummary
from .. import threads
from ..auth.principal import Principal
from ..auth.rules import require
from ..deps import DbSession, JsonBody, SettingsDep
from ..errors import NotFoundError
from ..exports.service import bundle_path, create_export
from ..models.accounts import Role
from ..models.exports import Export, ExportStatus
from ..settings import Settings

OfficerPrincipal = Annotated[Principal, Depends(require(Role.export_officer))]

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])


@router.post("", status_code=201, response_model=ExportResult,
             responses={404: {"description": "unknown receiving body"},
                        409: {"description": "a statement was withdrawn during the export"},
                        422: {"description": "statements refused (reason per statement in "
                                             "`refused`) or nothing to export"}})
async def create(body: ExportRequest, _json: JsonBody, principal: OfficerPrincipal,
                 settings: SettingsDep, request: Request) -> ExportResult:
    """Create a signed bundle of sealed statements for one receiving body.

    Select by `statement_ids` (all or nothing), by `since`/`until` or with
    `new_only` (not yet exported to this body); the last two skip and list
    statements that may not go. The bundle is streamed to disk; download it
    from `download`.
    """
    # A bundle can take minutes to write: in the long-work lane (service/threads.py).
    return await anyio.to_thread.run_sync(functools.partial(
        _create, body, request.app.state.database.sessions, settings, principal.account_id),
        limiter=threads.long_work())


def _create(body: ExportRequest, sessions: sessionmaker[Session], settings: Settings,
            actor: str) -> ExportResult:
    outcome = create_export(
        sessions, settings, actor=actor, body_id=body.body_id,
        statement_ids=body.statement_ids, since=body.since, until=body.until,
        new_only=body.new_only)
    export = outcome.export
    if export.bundle_sha256 is None or export.bundle_size is None:
        raise NotFoundError("the bundle was not written")
    return ExportResult(
        export_id=export.id, body_id=export.body_id, key_kinds=outcome.key_kinds,
        created_at=export.created_at, created_by=export.created_by,
        statement_ids=[item.statement_id for item in export.items],
        refused=[ExportRefusal(statement_id=r.statement_id, code=r.code.value, reason=r.reason)
                 for r in outcome.refused],
        bundle_sha256=export.bundle_sha256, bundle_size=export.bundle_size,
        contents_digest=export.contents_digest, audit_seq=export.audit_seq,
        checkpoint=outcome.checkpoint, download=f"/api/v1/exports/{export.id}/bundle")


@router.get("", response_model=list[ExportSummary])
def list_exports(principal: OfficerPrincipal, session: DbSession) -> list[ExportSummary]:
    """Every export, newest first."""
    rows = session.scalars(select(Export).order_by(Export.created_at.desc(), Export.id))
    return [ExportSummary(export_id=r.id, body_id=r.body_id, created_at=r.created_at,
                          created_by=r.created_by, status=r.status.value,
                          statement_count=r.statement_count, bundle_sha256=r.bundle_sha256,
                          bundle_size=r.bundle_size) for r in rows]


@router.get("/{export_id}/bundle", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}},
                       404: {"description": "no such complete export"}})
def download(export_id: str, principal: OfficerPrincipal, session: DbSession,
             settings: SettingsDep) -> FileResponse:
    """The bundle file, with its SHA-256 in `Repr-Digest`."""
    row = session.get(Export, export_id)
    if row is None or row.status is not ExportStatus.complete or row.bundle_sha256 is None:
        raise NotFoundError("no such export")
    path = bundle_path(settings, row.id)
    if not path.is_file():
        raise NotFoundError("the bundle file is no longer on this node")
    digest = base64.b64encode(bytes.fromhex(row.bundle_sha256)).decode("ascii")
    return FileResponse(path, media_type="application/zip", filename=path.name,
                        headers={"Repr-Digest": f"sha-256=:{digest}:"})
