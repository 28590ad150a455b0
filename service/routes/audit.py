"""The audit log over HTTP: entries, checkpoints, proofs and the full export, for auditors.

Everything served here is what an auditor checks rather than trusts: entries
are the canonical bytes exactly as hashed (the SHA-256 of an entry's body is
its ``entry_hash``), checkpoints are signed notes, proofs are RFC 9162 hashes,
and the export is the same JSONL ``intake audit export`` writes, for
``intake audit verify`` against the log key the auditor pinned.

Reads are not logged in the audit log (that would add an entry per page and
make every checkpoint stale at once); a full export is, as ``audit.exported``,
appended before the export's own checkpoint so the export records itself.
Signing a checkpoint on demand adds no entry: the checkpoint is its own record.
The periodic signer (service/checkpointer.py) runs in this router's lifespan.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import IO, Annotated, Any, BinaryIO, cast

import anyio
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from ...audit.proof import TlogProof
from .. import audit_hook, auditlog, threads
from ..auditlog.models import AuditCheckpoint
from ..auth.principal import Principal
from ..auth.rules import require
from ..checkpointer import PeriodicCheckpointer, lock_log
from ..deps import DbSession, SettingsDep
from ..errors import NotFoundError, ServiceError
from ..models.accounts import Role
from ..settings import Settings

MAX_PAGE = 1000
# Entry numbers and tree sizes stay below 2^53 (docs/formats/audit-log.md); larger
# ones are refused as invalid rather than overflowing a database integer.
MAX_SEQ = 2**53 - 1
_CHUNK = 64 * 1024
JSONL = "application/jsonl"

AuditorPrincipal = Annotated[Principal, Depends(require(Role.auditor))]
SignerPrincipal = Annotated[Principal, Depends(require(Role.auditor, Role.admin))]
Seq = Annotated[int, Path(ge=0, le=MAX_SEQ, description="entry number")]


class TreeSizeError(ServiceError):
    """A tree size or entry number that the log cannot answer for (422)."""

    status, slug, title = 422, "tree-size", "No such tree size"


class LogKeyUnavailableError(ServiceError):
    status, slug, title = 503, "log-key-unavailable", "The audit log key is unavailable"


class ConsistencyProof(BaseModel):
    """RFC 9162 consistency proof between two tree sizes."""

    from_size: int = Field(serialization_alias="from", description="the older tree size")
    to_size: int = Field(serialization_alias="to", description="the newer tree size")
    hashes: list[str] = Field(description="proof hashes, base64 (standard, padded)")
    checkpoint: str | None = Field(
        description="the newest signed checkpoint of size `to`, if one was signed")


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    checkpointer = PeriodicCheckpointer(app.state.database.sessions, settings)
    app.state.checkpointer = checkpointer
    async with anyio.create_task_group() as group:
        group.start_soon(checkpointer.run)
        yield
        group.cancel_scope.cancel()


router = APIRouter(prefix="/api/v1/audit", tags=["audit"], lifespan=_lifespan)


def _signer(settings: Settings) -> Any:
    try:
        return auditlog.load_log_signer(settings.log_key_path)
    except auditlog.LogKeyError as err:
        raise LogKeyUnavailableError("the node has no usable audit log key") from err


def _entry_hash_header(data: bytes) -> dict[str, str]:
    return {"Audit-Entry-Hash": hashlib.sha256(data).hexdigest()}


@router.get("/entries", response_class=Response,
            responses={200: {"content": {JSONL: {}},
                             "description": "canonical entries, one per line"}})
def entries(principal: AuditorPrincipal, session: DbSession,
            start: Annotated[int, Query(ge=0, le=MAX_SEQ, description="first seq")] = 0,
            limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="most entries")] = 100,
            ) -> Response:
    """Entries `start` .. `start+limit-1` as JSON lines of their canonical bytes.

    Each line is byte for byte what was hashed (the export's entry lines).
    `Audit-Log-Size` gives the log's size; `Link: rel="next"` the next page.
    """
    size = auditlog.head_size(session)
    rows = session.execute(select(auditlog.AuditEntry.canonical)
                           .where(auditlog.AuditEntry.seq >= start,
                                  auditlog.AuditEntry.seq < min(start + limit, size))
                           .order_by(auditlog.AuditEntry.seq)).scalars().all()
    body = b"".join(bytes(data) + b"\n" for data in rows)
    headers = {"Audit-Log-Size": str(size)}
    following = start + len(rows)
    if rows and following < size:
        headers["Link"] = f'</api/v1/audit/entries?start={following}&limit={limit}>; rel="next"'
    return Response(body, media_type=JSONL, headers=headers)


@router.get("/entries/{seq}", response_class=Response,
            responses={200: {"content": {"application/json": {}},
                             "description": "the entry's canonical bytes"},
                       404: {"description": "no such entry"}})
def entry(seq: Seq, principal: AuditorPrincipal, session: DbSession) -> Response:
    """One entry, its canonical bytes as the body; `Audit-Entry-Hash` is their SHA-256."""
    try:
        data = auditlog.entry_bytes(session, seq)
    except auditlog.AuditLogError as err:
        raise NotFoundError(f"no audit entry {seq}") from err
    return Response(data, media_type="application/json", headers=_entry_hash_header(data))


@router.get("/checkpoint", response_class=PlainTextResponse,
            responses={404: {"description": "no checkpoint signed yet"}})
def checkpoint(principal: AuditorPrincipal, session: DbSession) -> PlainTextResponse:
    """The newest signed checkpoint (C2SP signed note)."""
    note = auditlog.latest_checkpoint(session)
    if note is None:
        raise NotFoundError("no checkpoint has been signed yet")
    return PlainTextResponse(note)


@router.post("/checkpoint", status_code=201, response_class=PlainTextResponse,
             responses={503: {"description": "the node has no usable log key"}})
def sign_now(principal: SignerPrincipal, session: DbSession,
             settings: SettingsDep) -> PlainTextResponse:
    """Sign a checkpoint of the log as it is now, store it and return it."""
    signer = _signer(settings)
    lock_log(session)  # no append can slip in between the size read and the commit
    note = auditlog.sign_checkpoint(session, signer)
    session.commit()
    return PlainTextResponse(note, status_code=201)


@router.get("/proof/{seq}", response_class=PlainTextResponse,
            responses={404: {"description": "no such entry, or no checkpoint of that size"},
                       422: {"description": "size does not contain the entry or exceeds the log"}})
def proof(seq: Seq, principal: AuditorPrincipal, session: DbSession,
          size: Annotated[int | None, Query(ge=1, le=MAX_SEQ, description="tree size of a signed "
                                            "checkpoint; default the newest")] = None,
          ) -> PlainTextResponse:
    """C2SP tlog-proof of entry `seq`: inclusion proof, signed checkpoint and the entry."""
    try:
        data = auditlog.entry_bytes(session, seq)
    except auditlog.AuditLogError as err:
        raise NotFoundError(f"no audit entry {seq}") from err
    query = select(AuditCheckpoint.size, AuditCheckpoint.note)
    if size is None:
        query = query.where(AuditCheckpoint.size > seq)
    else:
        if size <= seq or size > auditlog.head_size(session):
            raise TreeSizeError(f"entry {seq} is not in a tree of size {size}")
        query = query.where(AuditCheckpoint.size == size)
    row = session.execute(query.order_by(AuditCheckpoint.size.desc(), AuditCheckpoint.id.desc())
                          .limit(1)).first()
    if row is None:
        raise NotFoundError(f"no signed checkpoint of size {size}" if size is not None else
                            f"no signed checkpoint covers entry {seq} yet")
    hashes = auditlog.inclusion_proof(session, seq, int(row.size))
    text = TlogProof(index=seq, hashes=tuple(hashes), checkpoint_note=str(row.note),
                     extra=data).encode()
    return PlainTextResponse(text)


@router.get("/consistency", response_model=ConsistencyProof,
            responses={422: {"description": "sizes out of order or beyond the log"}})
def consistency(principal: AuditorPrincipal, session: DbSession,
                from_size: Annotated[int, Query(alias="from", ge=0, le=MAX_SEQ)],
                to_size: Annotated[int | None, Query(alias="to", ge=0, le=MAX_SEQ, description=
                                                     "default: the newest checkpoint")] = None,
                ) -> ConsistencyProof:
    """Consistency proof from tree size `from` to `to` (RFC 9162 section 2.1.4)."""
    if to_size is None:
        to_size = session.execute(select(AuditCheckpoint.size).order_by(
            AuditCheckpoint.size.desc()).limit(1)).scalar()
        if to_size is None:
            raise NotFoundError("no checkpoint has been signed yet")
    try:
        hashes = auditlog.consistency_proof(session, from_size, to_size)
    except auditlog.AuditLogError as err:
        raise TreeSizeError(f"no consistency proof from {from_size} to {to_size}") from err
    note = session.execute(select(AuditCheckpoint.note).where(AuditCheckpoint.size == to_size)
                           .order_by(AuditCheckpoint.id.desc()).limit(1)).scalar()
    return ConsistencyProof(from_size=from_size, to_size=to_size,
                            hashes=[base64.b64encode(h).decode("ascii") for h in hashes],
                            checkpoint=None if note is None else str(note))


def _export_to(request: Request, actor: str, spool: IO[bytes]) -> tuple[int, str]:
    """Write the export to ``spool`` and return (length, base64 SHA-256) of what was written."""
    settings: Settings = request.app.state.settings
    signer = _signer(settings)
    with request.app.state.database.session() as session:
        # Recorded first, so the export's fresh checkpoint covers its own record.
        audit_hook.record(session, actor=actor, action="audit.exported",
                          subject={"account": actor})
        auditlog.export_jsonl(session, cast(BinaryIO, spool), signer)
        session.commit()
    digest = hashlib.sha256()
    length = 0
    spool.seek(0)
    while chunk := spool.read(_CHUNK):
        digest.update(chunk)
        length += len(chunk)
    spool.seek(0)
    return length, base64.b64encode(digest.digest()).decode("ascii")


def _stream(spool: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := spool.read(_CHUNK):
            yield chunk
    finally:
        spool.close()


@router.get("/export", response_class=StreamingResponse,
            responses={200: {"content": {JSONL: {}},
                             "description": "the whole log (docs/formats/audit-log.md)"},
                       503: {"description": "the node has no usable log key"}})
async def export(principal: AuditorPrincipal, request: Request) -> StreamingResponse:
    """The whole log as JSONL with a fresh checkpoint, for `intake audit verify`.

    Recorded as `audit.exported`. `Repr-Digest` carries the SHA-256 of the body.
    """
    # Spooled to an anonymous temporary file: the export is written in one
    # transaction, and a slow client must not hold the log's lock.
    spool = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _stream
    try:
        length, encoded = await anyio.to_thread.run_sync(
            _export_to, request, principal.account_id, spool, limiter=threads.long_work())
    except BaseException:
        spool.close()
        raise
    return StreamingResponse(_stream(spool), media_type=JSONL, headers={
        "Content-Length": str(length), "Repr-Digest": f"sha-256=:{encoded}:",
        "Content-Disposition": 'attachment; filename="audit-log.jsonl"'})
