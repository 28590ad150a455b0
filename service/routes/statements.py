"""Statements: submit (sealed at once), list own, receipts, consent withdrawal.

Nobody can read a statement's content through these routes, by design: the
service keeps only ciphertext and the routing metadata. Counsellors see their
own statements; an administrator may act on any (e.g. record a withdrawal
when the counsellor has left).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from starlette.requests import ClientDisconnect

from ...schemas.statements import Receipt, StatementSummary, Withdrawal
from ..auth.principal import Principal
from ..auth.rules import require
from ..deps import DbSession, JsonBody, SettingsDep
from ..intake import records
from ..intake.blobstore import FilesystemBlobStore
from ..intake.errors import UploadAbortedError
from ..intake.submission import Limits
from ..intake.upload import SOCKET_BODY, Caller, receive_statement
from ..models.accounts import Role
from ..settings import Settings

BLOB_GC_GRACE_SECONDS = 24 * 3600

CounsellorPrincipal = Annotated[Principal, Depends(require(Role.counsellor))]
OwnerPrincipal = Annotated[Principal, Depends(require(Role.counsellor, Role.admin))]


def blob_store(settings: Settings) -> FilesystemBlobStore:
    return FilesystemBlobStore(settings.blob_path)


def _app_blob_store(request: Request) -> FilesystemBlobStore:
    """The app's blob store, made at its first use (making one checks its directory)."""
    store: FilesystemBlobStore | None = getattr(request.app.state, "blob_store", None)
    if store is None:
        store = request.app.state.blob_store = blob_store(request.app.state.settings)
    return store


def gc_grace_seconds(settings: Settings) -> float:
    return float(getattr(settings, "blob_gc_grace_seconds", BLOB_GC_GRACE_SECONDS))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Start-up: blobs of uploads that died with a previous process are removed
    # once older than the grace period (see service/intake/records.py).
    settings: Settings = app.state.settings
    database = app.state.database
    await anyio.to_thread.run_sync(
        lambda: records.collect_garbage(database.sessions, blob_store(settings),
                                        grace_seconds=gc_grace_seconds(settings)))
    yield


router = APIRouter(prefix="/api/v1/statements", tags=["statements"], lifespan=_lifespan)


_MULTIPART_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["record", "text"],
                "properties": {
                    "record": {"type": "string", "contentMediaType": "application/json",
                               "description": "StatementInput (statement-record/v1 input); "
                                              "must be the first part"},
                    "text": {"type": "string", "contentMediaType": "text/plain",
                             "description": "the statement as typed, UTF-8 (Zawgyi allowed)"},
                    "attachment": {"type": "array", "items": {
                        "type": "string", "contentMediaType": "application/octet-stream"},
                        "description": "0..n files, any type, each sealed as it streams"},
                },
            },
            "encoding": {"record": {"contentType": "application/json"},
                         "text": {"contentType": "text/plain; charset=utf-8"}},
        }},
    },
}


def _limits(settings: Settings) -> Limits:
    return Limits(
        max_request_bytes=settings.max_request_bytes,
        max_attachment_bytes=settings.max_attachment_bytes,
        max_attachments=settings.max_attachments,
        max_record_bytes=settings.max_json_bytes,
        idle_seconds=settings.upload_idle_seconds,
    )


def _caller(principal: Principal) -> Caller:
    return Caller(account_id=principal.account_id, is_admin=principal.role is Role.admin)


async def _body(request: Request) -> AsyncGenerator[bytes, None]:
    try:
        async for chunk in request.stream():
            if chunk:
                yield chunk
    except ClientDisconnect:
        raise UploadAbortedError("the client disconnected; nothing was stored") from None


@router.post("", status_code=201, response_model=Receipt, response_model_by_alias=True,
             openapi_extra=_MULTIPART_DOC,
             responses={413: {"description": "a size limit"}, 415: {"description": "not multipart"},
                        422: {"description": "invalid record, no consent or no active key"}})
async def submit_statement(request: Request, principal: CounsellorPrincipal,
                           settings: SettingsDep) -> Receipt:
    """Seal a statement and its attachments to the keys of the bodies the witness chose.

    Multipart parts, in order: `record` (JSON), then `text` and `attachment`s.
    The response is the receipt: keep it to prove later what was recorded.
    Amend a statement by sending `routing.amends` with the original's id.
    """
    return await receive_statement(
        body=_body(request),
        content_type=request.headers.get("content-type", ""),
        content_length=request.headers.get("content-length"),
        limits=_limits(settings),
        store=_app_blob_store(request),
        database=request.app.state.database,
        caller=_caller(principal),
        socket_body=request.scope.get("extensions", {}).get(SOCKET_BODY),
    )


@router.get("", response_model=list[StatementSummary], response_model_by_alias=True)
def list_statements(
    principal: CounsellorPrincipal, session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[datetime | None, Query(description="page: created before this time")] = None,
) -> list[StatementSummary]:
    """Your own statements, newest first: routing metadata and status, never content."""
    return records.list_statements(session, counsellor_id=principal.account_id, limit=limit,
                                   before=before)


@router.get("/{statement_id}", response_model=StatementSummary, response_model_by_alias=True)
def get_statement(statement_id: str, principal: OwnerPrincipal,
                  session: DbSession) -> StatementSummary:
    """One statement's routing metadata and status (its counsellor, or an admin)."""
    statement = records.get_statement(session, statement_id, **_owner(principal))
    return records.summary_of(statement)


@router.get("/{statement_id}/receipt", response_model=Receipt, response_model_by_alias=True)
def get_receipt(statement_id: str, principal: OwnerPrincipal, session: DbSession) -> Receipt:
    """The receipt again, with the latest signed checkpoint of the audit log."""
    statement = records.get_statement(session, statement_id, **_owner(principal))
    return records.receipt_for(session, statement)


@router.post("/{statement_id}/withdrawal", response_model=StatementSummary,
             response_model_by_alias=True)
def withdraw_consent(statement_id: str, withdrawal: Withdrawal, _json: JsonBody,
                     principal: OwnerPrincipal, session: DbSession,
                     settings: SettingsDep) -> StatementSummary:
    """Record that the witness withdrew consent: never exported again; `purge` deletes ciphertext.

    Statements amending this one are withdrawn with it. A purge keeps a
    tombstone with the digests, so the audit log still proves what existed.
    """
    statement = records.get_statement(session, statement_id, **_owner(principal))
    records.withdraw(session, blob_store(settings), statement, actor=principal.account_id,
                     withdrawn_at=withdrawal.withdrawn_at, purge=withdrawal.purge)
    return records.summary_of(records.get_statement(session, statement_id, **_owner(principal)))


def _owner(principal: Principal) -> dict[str, Any]:
    return {"account_id": principal.account_id, "is_admin": principal.role is Role.admin}
