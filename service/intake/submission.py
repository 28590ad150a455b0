"""One statement upload, from multipart parts to sealed blobs, in memory.

Threat model: the request body carries the most dangerous data the system
handles (a defector's name, unit and confession). It lives in this process's
memory only as long as it is being sealed: the record and the text (capped in
size) until the statement is sealed at the end of the request, attachments
one chunk at a time. Nothing here writes plaintext anywhere but into an age
encryptor, and no error message quotes it (validation errors name the field
and the rule, never the value).

Part order: the ``record`` part (JSON, :class:`StatementInput`) comes first,
because its consent record decides the keys every later part is sealed to;
then one ``text`` part (the statement as typed, UTF-8) and zero or more
``attachment`` parts, in any order. ``statement.age`` is sealed last, once the
attachments' digests are known, since the sealed record lists them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ...crypto.age.stanza import Recipient
from ...schemas.statements import (
    RECORD_SCHEMA,
    AttachmentMeta,
    BlobDigest,
    BodyRoute,
    RecipientRoute,
    Routing,
    SealedCopy,
    SealedInput,
    Sizes,
    StatementInput,
    StatementText,
)
from ..models.recipients import KeyKind
from .blobstore import BlobRef, BlobStore, BlobWriter, FilesystemBlobStore
from .errors import InvalidStatementError, TooLargeError, UnsupportedMediaError
from .multipart import PartInfo, PartSink
from .routing import SealPlan, consented_bodies
from .sealing import MultiSealer, parse_group_recipients, seal_bytes
from .zawgyi import unicode_forms

MAX_TEXT_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int
    max_attachment_bytes: int
    max_attachments: int
    max_record_bytes: int
    max_text_bytes: int = MAX_TEXT_BYTES
    idle_seconds: float = 60.0  # the client's silence allowed in mid-body


@dataclass
class SealedSubmission:
    """Everything the database transaction needs; no plaintext left in it."""

    routing: Routing
    plan: SealPlan
    blobs: dict[KeyKind, list[BlobRef]] = field(default_factory=dict)


def validation_field(err: ValidationError, prefix: str) -> tuple[str, str]:
    """The first error's field path and rule, without the rejected value."""
    first = err.errors(include_url=False, include_input=False)[0]
    path = ".".join(str(part) for part in first["loc"])
    return (f"{prefix}.{path}" if path else prefix), str(first["msg"])


class _Buffer:
    """An in-memory part with a cap; ``on_close`` receives the bytes."""

    def __init__(self, name: str, limit: int, on_close: Callable[[bytes], None]) -> None:
        self._name = name
        self._limit = limit
        self._data = bytearray()
        self._on_close = on_close

    def write(self, data: memoryview, /) -> None:
        if len(self._data) + len(data) > self._limit:
            raise TooLargeError(f"the {self._name} part exceeds {self._limit} bytes",
                                field=self._name)
        self._data += data

    def close(self) -> None:
        data = bytes(self._data)
        self._data = bytearray()
        self._on_close(data)


class _AttachmentSink:
    def __init__(self, submission: Submission, index: int, info: PartInfo,
                 sealer: MultiSealer) -> None:
        self._submission = submission
        self._index = index
        self._info = info
        self._sealer = sealer

    def write(self, data: memoryview, /) -> None:
        limit = self._submission.limits.max_attachment_bytes
        if self._sealer.size + len(data) > limit:
            raise TooLargeError(f"attachment {self._index} exceeds {limit} bytes",
                                field=f"attachment.{self._index}")
        self._sealer.write(data)

    def close(self) -> None:
        part = self._sealer.commit()
        self._submission._attachment_done(self._index, self._info, part.size, part.sha256,
                                          part.blobs)


class Submission:
    """Drives one upload. ``plan_for(record)`` resolves consent to keys (database).

    Call :meth:`open_part` from the multipart parser, then :meth:`seal_statement`.
    On any failure call :meth:`abort`: it deletes every blob this upload wrote,
    temporary or renamed (none of them is referenced by the database yet).
    """

    def __init__(
        self,
        *,
        store: BlobStore,
        limits: Limits,
        record_id: str,
        counsellor_id: str,
        created_at: datetime,
        plan_for: Callable[[StatementInput, list[str]], SealPlan],
    ) -> None:
        self.store = store
        self.limits = limits
        self.record_id = record_id
        self.counsellor_id = counsellor_id
        self.created_at = created_at
        self._plan_for = plan_for
        self._record: StatementInput | None = None
        self._plan: SealPlan | None = None
        self._copies: list[tuple[KeyKind, list[Recipient]]] = []
        self._text: bytes | None = None
        self._attachments: list[AttachmentMeta] = []
        self._attachment_blobs: list[dict[KeyKind, BlobRef]] = []
        self._attachment_count = 0
        self._open_sealers: list[MultiSealer] = []
        # The process's lease marks this upload's temporary files as alive
        # (never released here); finished blobs wait in _pending until
        # publish(), then move to _published.
        self._lease = store.process_lease() if isinstance(store, FilesystemBlobStore) else None
        self._pending: list[BlobWriter] = []
        self._published: list[BlobRef] = []
        # Set just before the database commit: from then on a failure cannot
        # tell whether the statement landed, so its blobs are left to the
        # garbage collector, which checks the database.
        self.commit_attempted = False

    # -- parts --

    def open_part(self, info: PartInfo) -> PartSink:
        if info.name == "record":
            if self._record is not None:
                raise InvalidStatementError("only one record part is allowed", field="record")
            _require_type(info, "application/json", "record")
            return _Buffer("record", self.limits.max_record_bytes, self._record_done)
        if self._record is None:
            raise InvalidStatementError("the record part must come first", field="record")
        if info.name == "text":
            if self._text is not None:
                raise InvalidStatementError("only one text part is allowed", field="text")
            _require_type(info, "text/plain", "text")
            return _Buffer("text", self.limits.max_text_bytes, self._text_done)
        if info.name == "attachment":
            index = self._attachment_count
            if index >= self.limits.max_attachments:
                raise TooLargeError(f"more than {self.limits.max_attachments} attachments",
                                    field="attachment")
            self._attachment_count += 1
            sealer = MultiSealer(self.store, self._copies, self._pending.append, self._lease)
            self._open_sealers.append(sealer)
            return _AttachmentSink(self, index, info, sealer)
        raise InvalidStatementError("unknown part; expected record, text or attachment",
                                    field=info.name[:40])

    def _record_done(self, data: bytes) -> None:
        try:
            record = StatementInput.model_validate_json(data)
        except ValidationError as err:
            path, rule = validation_field(err, "record")
            raise InvalidStatementError(f"{path}: {rule}", field=path) from None
        bodies = consented_bodies(record.sealed.consent)
        self._plan = self._plan_for(record, bodies)
        self._copies = [(group.kind, parse_group_recipients(group)) for group in self._plan.groups]
        self._record = record

    def _text_done(self, data: bytes) -> None:
        try:
            data.decode("utf-8", "strict")
        except UnicodeDecodeError:
            raise InvalidStatementError("the text part is not valid UTF-8", field="text") from None
        self._text = data

    def _attachment_done(self, index: int, info: PartInfo, size: int, sha256: str,
                         blobs: dict[KeyKind, BlobRef]) -> None:
        self._attachments.append(AttachmentMeta(
            index=index,
            filename=info.filename or f"attachment-{index}",
            content_type=info.content_type[:255],
            size=size,
            sha256=sha256,
        ))
        self._attachment_blobs.append(blobs)

    # -- the end --

    def seal_statement(self) -> SealedSubmission:
        """Seal ``statement.age`` once all parts arrived; return the routing to commit."""
        record, plan, text = self._record, self._plan, self._text
        if record is None or plan is None:
            raise InvalidStatementError("the record part is missing", field="record")
        if text is None:
            raise InvalidStatementError("the text part is missing", field="text")
        recording = record.sealed.consent.recording_attachment
        if recording is not None and recording >= len(self._attachments):
            raise InvalidStatementError("the consent recording names a missing attachment",
                                        field="record.sealed.consent.recording_attachment")
        forms = unicode_forms(text.decode("utf-8"))
        statement_text = StatementText(
            typed_base64=base64.b64encode(text).decode("ascii"),
            typed_sha256=hashlib.sha256(text).hexdigest(),
            unicode=forms.unicode,
        )
        routing = Routing(
            record_id=self.record_id,
            created_at=self.created_at,
            counsellor_account_id=self.counsellor_id,
            amends=record.routing.amends,
            bodies=[BodyRoute(body_id=b, key_kind=k.value) for b, k in sorted(plan.bodies.items())],
            language=record.routing.language,
            script=record.routing.script,
            text_encoding=forms.encoding,
            zawgyi_probability=forms.probability,
            transformations=list(forms.transformations),
            sizes=Sizes(text_bytes=len(text), record_bytes=0,
                        attachment_bytes=[a.size for a in self._attachments]),
            recipients=[
                RecipientRoute(body_id=key.body_id, kind=key.kind.value,
                               fingerprint=key.fingerprint)
                for group in plan.groups for key in group.keys
            ],
            priority=record.routing.priority,
            restricted=record.routing.restricted,
        )
        document, size = _self_sized_document(
            _record_payload(record.sealed, statement_text, self._attachments, routing))
        routing = routing.model_copy(update={"sizes": routing.sizes.model_copy(
            update={"record_bytes": size})})
        statement = seal_bytes(self.store, self._copies, document, self._pending.append,
                               self._lease)
        del document, statement_text, forms
        self._text = None

        copies = []
        blobs: dict[KeyKind, list[BlobRef]] = {}
        for group in plan.groups:
            refs = [statement.blobs[group.kind]] + [a[group.kind] for a in self._attachment_blobs]
            blobs[group.kind] = refs
            copies.append(SealedCopy(
                key_kind=group.kind.value,
                bodies=list(group.bodies),
                statement=BlobDigest(sha256=refs[0].sha256, size=refs[0].size),
                attachments=[BlobDigest(sha256=r.sha256, size=r.size) for r in refs[1:]],
            ))
        routing = routing.model_copy(update={"copies": copies})
        return SealedSubmission(routing=routing, plan=plan, blobs=blobs)

    def publish(self) -> None:
        """Move every finished blob under its digest; call right before the database commit.

        The directory is fsynced once for all the renames (one fsync per
        request, not per blob); the blobs' content was fsynced by ``finish``.
        Both happen before this returns, hence before the commit.
        """
        files = self.store if isinstance(self.store, FilesystemBlobStore) else None
        for writer in self._pending:
            # Recorded as soon as renamed, so that abort() deletes it; a writer
            # not reached stays pending and abort() discards its temp file.
            self._published.append(writer.publish(sync=files is None))
        self._pending.clear()
        if files is not None and self._published:
            files.sync_directory()
        self._release()

    def abort(self) -> None:
        """Forget the plaintext and delete every blob of this upload (idempotent)."""
        self._text = None
        for sealer in self._open_sealers:
            sealer.abort()
        for writer in self._pending:
            writer.abort()
        self._pending.clear()
        if not self.commit_attempted:
            for ref in self._published:
                self.store.delete(ref.sha256)
        self._published.clear()
        self._release()

    def _release(self) -> None:
        self._lease = None


def _require_type(info: PartInfo, expected: str, name: str) -> None:
    media = info.content_type.split(";", 1)[0].strip().lower()
    if media != expected:
        raise UnsupportedMediaError(f"the {name} part must be {expected}", field=name)
    if "charset=" in info.content_type.lower():
        charset = info.content_type.lower().split("charset=", 1)[1].split(";")[0].strip(' "')
        if charset not in {"utf-8", "utf8"}:
            raise UnsupportedMediaError(f"the {name} part must be UTF-8", field=name)


def _record_payload(sealed: SealedInput, statement: StatementText,
                    attachments: list[AttachmentMeta], routing: Routing) -> dict[str, Any]:
    """The sealed record as JSON data, as ``StatementRecord.model_dump`` would give it.

    Built from its parts, each validated already, instead of validating a
    :class:`StatementRecord` made of them a second time (a test holds the
    two equal: a decrypted record is exactly its model's dump).
    """
    options: dict[str, Any] = {"mode": "json", "by_alias": True, "exclude_none": True}
    sealed_part = sealed.model_dump(**options)
    sealed_part["statement"] = statement.model_dump(**options)
    sealed_part["attachments"] = [meta.model_dump(**options) for meta in attachments]
    return {"schema": RECORD_SCHEMA, "sealed": sealed_part,
            "routing": routing.model_dump(**options)}


# The record's size field as encoded while it is 0 (JSON escapes the quotes of
# string values, so only the key itself can match).
_SIZE_PLACEHOLDER = b'"record_bytes":0'


def _self_sized_document(payload: dict[str, Any]) -> tuple[bytes, int]:
    """The record's JSON bytes with ``routing.sizes.record_bytes`` equal to their own length.

    The size is measured on the very bytes that are sealed. The record is
    encoded once with a size of 0; with a size of N it is longer by the
    extra digits of N, so the size that describes itself is found by
    arithmetic and written in place of the 0, then checked.
    """
    sizes = payload["routing"]["sizes"]
    sizes["record_bytes"] = 0
    draft = _encode_payload(payload)
    base = len(draft) - 1
    size = base + 1
    while base + len(str(size)) != size:
        size = base + len(str(size))
    if draft.count(_SIZE_PLACEHOLDER) == 1:
        document = draft.replace(_SIZE_PLACEHOLDER, b'"record_bytes":%d' % size)
    else:  # pragma: no cover - the schema has one such key; encode again if not
        sizes["record_bytes"] = size
        document = _encode_payload(payload)
    if len(document) != size:  # pragma: no cover - the JSON encoding is deterministic
        raise RuntimeError("the sealed record's size does not describe itself")
    return document, size


def _encode_payload(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def decode_typed_text(record: dict[str, object]) -> bytes:
    """The statement bytes as typed, from a decrypted record (for tests and tools)."""
    sealed = record["sealed"]
    if not isinstance(sealed, dict):
        raise ValueError("record.sealed is not an object")
    statement = sealed["statement"]
    if not isinstance(statement, dict):
        raise ValueError("record.sealed.statement is not an object")
    try:
        return base64.b64decode(str(statement["typed_base64"]), validate=True)
    except binascii.Error as err:
        raise ValueError("typed_base64 is not base64") from err
