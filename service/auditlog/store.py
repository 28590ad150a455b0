"""Appending to the audit log, signing checkpoints and proving, on the database.

Concurrency: every append runs in the caller's transaction, so the entry
commits or rolls back with the business change it records. Sequence number
and ``prev`` come from the head row, read under a lock held until that
transaction ends:

- PostgreSQL: ``SELECT ... FOR UPDATE`` on the head row. Other appenders
  block on it; in READ COMMITTED the row they then read is the committed
  successor, so ``seq`` has no gaps and the chain never forks. (Under
  REPEATABLE READ or SERIALIZABLE the loser gets a serialization error and
  must retry; it never forks either.)
- SQLite: the first statement is a no-op UPDATE of the head row, which takes
  the database's single write lock (RESERVED) before the head is read. With
  ``BEGIN IMMEDIATE`` (service/db.py) the lock is already held. A writer
  whose read snapshot went stale cannot upgrade and fails with "database is
  locked"; it never writes a fork.

Work per append is O(log n): the compact range in the head row gives the
new subtree hashes (written to ``audit_nodes``) without reading old entries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import BinaryIO, NamedTuple

from sqlalchemy import Connection, Dialect, Table, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ...audit import merkle
from ...audit.checkpoint import Checkpoint, open_checkpoint
from ...audit.checkpoint import sign_checkpoint as sign_checkpoint_note
from ...audit.entry import GENESIS_PREV, Entry, JSONValue
from ...audit.log import format_time
from ...audit.note import NoteSigner
from ...audit.proof import TlogProof
from ...audit.verify import checkpoint_line
from ..rawsql import Compiled, RawCursor, StatementSet, Write
from .models import HEAD_ID, AuditCheckpoint, AuditEntry, AuditHead, AuditNode, AuditSubject

_EMPTY_HASH = b"\x00" * 32


class AuditLogError(Exception):
    """The audit log cannot answer (unknown entry, no checkpoint yet, ...)."""


# The append path runs five statements inside a business transaction, on the
# DBAPI cursor of the session's own connection (see service/rawsql.py): the
# same connection and transaction, begun by the session (``BEGIN IMMEDIATE``
# on SQLite) and ended by the caller's commit or rollback.
_ENTRIES: Table = AuditEntry.__table__  # type: ignore[assignment]  # a mapped Table
_SUBJECTS: Table = AuditSubject.__table__  # type: ignore[assignment]
_NODES: Table = AuditNode.__table__  # type: ignore[assignment]
_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
_HEAD_COLUMNS = (_HEAD.c.size, _HEAD.c.last_hash, _HEAD.c.compact_range)
_IS_HEAD = _HEAD.c.id == bindparam("head_id")
# SQLite: a no-op UPDATE takes the database's write lock before the read
# (RETURNING makes it one statement); with BEGIN IMMEDIATE the lock is held
# already and this costs one statement. PostgreSQL: a row lock on the head.
_LOCK_SQLITE = update(_HEAD).where(_IS_HEAD).values(size=_HEAD.c.size).returning(*_HEAD_COLUMNS)
_LOCK_FOR_UPDATE = select(*_HEAD_COLUMNS).where(_IS_HEAD).with_for_update()
_ADVANCE_HEAD = update(_HEAD).where(_IS_HEAD).values(
    size=bindparam("new_size"), last_hash=bindparam("new_last_hash"),
    compact_range=bindparam("new_compact_range"))
_ENTRY_KEYS = ("seq", "canonical", "entry_hash", "leaf_hash", "action", "actor")
_SUBJECT_KEYS = ("kind", "subject_id", "seq")
_NODE_KEYS = ("level", "index", "hash")


class _Statements(StatementSet):
    """The append path's statements for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__(dialect)
        self.lock = Compiled(_LOCK_SQLITE if dialect.name == "sqlite" else _LOCK_FOR_UPDATE,
                             dialect)
        self.insert_entry = Compiled(insert(_ENTRIES), dialect, _ENTRY_KEYS)
        self.insert_subjects = Compiled(insert(_SUBJECTS), dialect, _SUBJECT_KEYS)
        self.insert_nodes = Compiled(insert(_NODES), dialect, _NODE_KEYS)
        self.advance_head = Compiled(_ADVANCE_HEAD, dialect)


# Writes a caller adds to the append's batch, once the entry is known: on
# PostgreSQL they travel with the entry's own writes (one pipeline, or with
# commit=True one query that ends in the COMMIT).
AlsoWrite = Callable[[Entry, bytes], Sequence[Write]]


def _ensure_head(connection: Connection) -> None:
    values = {"id": HEAD_ID, "size": 0, "last_hash": _EMPTY_HASH, "compact_range": b""}
    name = connection.dialect.name
    if name == "postgresql":
        connection.execute(postgresql.insert(_HEAD).values(values).on_conflict_do_nothing())
    elif name == "sqlite":
        connection.execute(sqlite.insert(_HEAD).values(values).on_conflict_do_nothing())
    elif connection.execute(select(_HEAD.c.id)).first() is None:
        connection.execute(insert(_HEAD).values(values))


def _lock_head(connection: Connection, cursor: RawCursor) -> tuple[int, bytes, bytes]:
    """Take the append lock and return (size, last entry hash, compact range)."""
    lock = _Statements.for_dialect(connection.dialect).lock
    cursor.execute(lock, {"head_id": HEAD_ID})
    row = cursor.one_or_none()
    if row is None:
        # The very first append: create the head (racing creators are
        # harmless, ON CONFLICT DO NOTHING), then lock it.
        _ensure_head(connection)
        cursor.execute(lock, {"head_id": HEAD_ID})
        row = cursor.one_or_none()
        if row is None:
            raise AuditLogError("the audit head row is missing after creating it")
    size, last_hash, compact = row
    return int(size), bytes(last_hash), bytes(compact)


class Pending(NamedTuple):
    """One entry for :func:`append_many`: the arguments of :func:`append`."""

    actor: str
    action: str
    subject: Mapping[str, str] | None = None
    details: Mapping[str, JSONValue] | None = None
    also: AlsoWrite | None = None


def append(session: Session | Connection, *, actor: str, action: str,
           subject: Mapping[str, str] | None = None,
           details: Mapping[str, JSONValue] | None = None,
           now: datetime | None = None, also: AlsoWrite | None = None) -> Entry:
    """Append one entry inside the caller's transaction and return it.

    ``also(entry, entry_hash)`` may return more writes (statement, rows) of
    the caller's that need the entry: they run right after the entry's own
    writes, in the same batch (one round trip on PostgreSQL).

    Raises ``EntryFormatError`` for a malformed entry (the caller's change
    must then fail too) and database errors (``sqlalchemy.exc.DBAPIError``
    subclasses) as they come.
    """
    return append_many(session, [Pending(actor, action, subject, details, also)], now=now)[0]


def append_many(session: Session | Connection, pending: Sequence[Pending], *,
                now: datetime | None = None, commit: bool = False,
                before_commit: Callable[[], None] | None = None) -> list[Entry]:
    """Append several entries, in order, under one lock of the head; see :func:`append`.

    The head is locked and read once, the entries are chained in memory, and
    all their writes (and each one's ``also`` writes) go out as one batch.

    With ``commit`` (on a Connection whose transaction the caller began), the
    transaction is committed with the writes: on PostgreSQL the writes and the
    COMMIT are one round trip, so the head's lock is released sooner
    (``RawCursor.write_and_commit``). ``before_commit`` runs right before the
    COMMIT may reach the database.
    """
    # 1. Build and validate the entries' content before taking the lock.
    time_text = format_time(now or datetime.now(UTC))
    items = [(item, dict(item.subject or {}), dict(item.details or {})) for item in pending]
    if isinstance(session, Session):
        if commit:
            raise AuditLogError("append with commit=True takes a Connection, not a Session")
        connection = session.connection()
    elif session.in_transaction():
        connection = session
    else:
        # Its statements go to the DBAPI cursor: without a transaction begun
        # through SQLAlchemy they would autocommit one by one.
        raise AuditLogError("append on a Connection needs the caller's transaction begun")
    statements = _Statements.for_dialect(connection.dialect)
    cursor = RawCursor(connection, statements)
    try:
        # 2. Lock the head; seq and prev come from it.
        size, last_hash, compact = _lock_head(connection, cursor)
        tree = merkle.CompactRange.from_bytes(size, compact)
        entries: list[Entry] = []
        writes: list[Write] = []
        also_writes: list[Write] = []
        for item, subject_map, details_map in items:
            seq = size + len(entries)
            entry = Entry(seq=seq, time=time_text, actor=item.actor, action=item.action,
                          subject=subject_map, details=details_map,
                          prev=last_hash.hex() if seq else GENESIS_PREV)
            data = entry.canonical_bytes()
            entry_hash = hashlib.sha256(data).digest()
            leaf = merkle.leaf_hash(data)
            # 3. Extend the compact range: O(log n), it names the finished subtrees.
            created = tree.append(leaf)
            writes.append((statements.insert_entry, [{
                "seq": seq, "canonical": data, "entry_hash": entry_hash, "leaf_hash": leaf,
                "action": item.action, "actor": item.actor}]))
            writes.append((statements.insert_subjects, [
                {"kind": kind, "subject_id": ident, "seq": seq}
                for kind, ident in subject_map.items()]))
            writes.append((statements.insert_nodes, [
                {"level": level, "index": index, "hash": digest}
                for level, index, digest in created]))
            if item.also is not None:
                also_writes.extend(item.also(entry, entry_hash))
            entries.append(entry)
            last_hash = entry_hash
        # 4. Write the entries, their subjects, the new subtree hashes, the new
        # head, then the callers' rows that point at the entries.
        writes.append((statements.advance_head, [{
            "head_id": HEAD_ID, "new_size": size + len(entries), "new_last_hash": last_hash,
            "new_compact_range": tree.to_bytes()}]))
        writes.extend(also_writes)
        if commit:
            cursor.write_and_commit(writes, before_commit)
        else:
            with cursor.batch():
                for statement, rows in writes:
                    cursor.executemany(statement, rows)
    finally:
        cursor.close()
    return entries


class DbHashSource:
    """``merkle.HashSource`` over ``audit_nodes``, with a small per-use cache."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.cache: dict[tuple[int, int], bytes] = {}

    def node(self, level: int, index: int) -> bytes:
        key = (level, index)
        if key not in self.cache:
            value = self.session.execute(select(AuditNode.hash).where(
                AuditNode.level == level, AuditNode.index == index)).scalar_one_or_none()
            if value is None:
                raise KeyError(key)
            self.cache[key] = bytes(value)
        return self.cache[key]


def head_size(session: Session) -> int:
    size = session.execute(select(AuditHead.size).where(AuditHead.id == HEAD_ID)).scalar()
    return int(size or 0)


def root_at(session: Session, size: int) -> bytes:
    """The Merkle root of the first ``size`` entries, from stored subtree hashes."""
    if not 0 <= size <= head_size(session):
        raise AuditLogError(f"the log has no tree of size {size}")
    return merkle.root(DbHashSource(session), size)


def sign_checkpoint(session: Session, signer: NoteSigner, *,
                    now: datetime | None = None) -> str:
    """Sign a checkpoint of the log as committed-or-locked now, store it, return the note."""
    row = session.execute(select(AuditHead.size, AuditHead.compact_range)
                          .where(AuditHead.id == HEAD_ID)).first()
    size, compact = (int(row.size), bytes(row.compact_range)) if row else (0, b"")
    root = merkle.CompactRange.from_bytes(size, compact).root()
    note = sign_checkpoint_note(Checkpoint(signer.name, size, root), signer)
    session.execute(insert(AuditCheckpoint).values(
        size=size, root_hash=root, note=note, created_at=now or datetime.now(UTC)))
    return note


# Built once: every receipt asks for it, and building a select() costs more
# than SQLite spends answering it from the size index.
LATEST_CHECKPOINT = select(AuditCheckpoint.note).order_by(
    AuditCheckpoint.size.desc(), AuditCheckpoint.id.desc()).limit(1)


def latest_checkpoint(session: Session | Connection) -> str | None:
    """The newest signed checkpoint note, or None before the first one.

    On a ``Connection`` (as the statement commit passes) it skips the ORM's
    execution machinery, which costs more than the query.
    """
    note = session.execute(LATEST_CHECKPOINT).scalar()
    return None if note is None else str(note)


def checkpoint_due(session: Session, *, interval_seconds: float, now: datetime | None = None
                   ) -> bool:
    """Whether the periodic signer should sign now: new entries and the interval passed."""
    row = session.execute(select(AuditCheckpoint.size, AuditCheckpoint.created_at).order_by(
        AuditCheckpoint.id.desc()).limit(1)).first()
    size = head_size(session)
    if row is None:
        return size > 0
    elapsed = ((now or datetime.now(UTC)) - row.created_at).total_seconds()
    return size > int(row.size) and elapsed >= interval_seconds


def entry_bytes(session: Session, seq: int) -> bytes:
    """The canonical bytes of entry ``seq``."""
    data = session.execute(select(AuditEntry.canonical).where(AuditEntry.seq == seq)).scalar()
    if data is None:
        raise AuditLogError(f"no audit entry {seq}")
    return bytes(data)


def get_entry(session: Session, seq: int) -> Entry:
    return Entry.from_canonical(entry_bytes(session, seq))


def seqs_about(session: Session, kind: str, subject_id: str) -> list[int]:
    """Every entry whose subject has ``kind: subject_id``, in order."""
    return [int(s) for s in session.execute(select(AuditSubject.seq).where(
        AuditSubject.kind == kind, AuditSubject.subject_id == subject_id)
        .order_by(AuditSubject.seq)).scalars()]


def seqs_about_statement(session: Session, statement_id: str) -> list[int]:
    return seqs_about(session, "statement", statement_id)


def inclusion_proof(session: Session, seq: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of entry ``seq`` in the tree of ``size``: O(log n) reads."""
    if not 0 <= seq < size <= head_size(session):
        raise AuditLogError(f"entry {seq} is not in a tree of size {size}")
    return merkle.inclusion_proof(DbHashSource(session), seq, size)


def consistency_proof(session: Session, size1: int, size2: int) -> list[bytes]:
    """RFC 9162 consistency proof from the tree of ``size1`` to that of ``size2``."""
    if not 0 <= size1 <= size2 <= head_size(session):
        raise AuditLogError(f"no consistency proof from {size1} to {size2}")
    return merkle.consistency_proof(DbHashSource(session), size1, size2)


def prove(session: Session, seq: int, signer: NoteSigner | None = None) -> str:
    """A C2SP tlog-proof of entry ``seq`` against the newest checkpoint covering it.

    With a ``signer``, a fresh checkpoint is signed first (and stored).
    """
    if signer is not None:
        sign_checkpoint(session, signer)
    row = session.execute(select(AuditCheckpoint.size, AuditCheckpoint.note)
                          .where(AuditCheckpoint.size > seq)
                          .order_by(AuditCheckpoint.size.desc(), AuditCheckpoint.id.desc())
                          .limit(1)).first()
    if row is None:
        raise AuditLogError(f"no signed checkpoint covers entry {seq} yet; sign one first")
    hashes = inclusion_proof(session, seq, int(row.size))
    return TlogProof(index=seq, hashes=tuple(hashes), checkpoint_note=str(row.note),
                     extra=entry_bytes(session, seq)).encode()


def export_jsonl(session: Session, out: BinaryIO, signer: NoteSigner | None = None,
                 *, batch: int = 2000) -> Checkpoint:
    """Write the JSONL export (docs/formats/audit-log.md) and return its final checkpoint.

    With a ``signer`` a checkpoint of the current size is signed first (every
    export is covered by a fresh one); without, the newest stored checkpoint
    ends the export and later entries are left out.
    """
    if signer is not None:
        sign_checkpoint(session, signer)
    notes = session.execute(select(AuditCheckpoint.size, AuditCheckpoint.note)
                            .order_by(AuditCheckpoint.size, AuditCheckpoint.id)).all()
    if not notes:
        raise AuditLogError("no signed checkpoint yet: sign one (intake audit checkpoint)")
    final_size = int(notes[-1].size)
    pending = [(int(size), str(note)) for size, note in notes]
    position = 0
    # Checkpoints of size 0 come first; each other one follows the entry that
    # completes its tree, so a streaming reader can check it on the spot.
    while pending and pending[0][0] == 0:
        out.write(checkpoint_line(pending.pop(0)[1]))
    while position < final_size:
        rows = session.execute(select(AuditEntry.seq, AuditEntry.canonical)
                               .where(AuditEntry.seq >= position,
                                      AuditEntry.seq < min(position + batch, final_size))
                               .order_by(AuditEntry.seq)).all()
        if not rows:
            raise AuditLogError(f"entry {position} is missing from the database")
        for seq, data in rows:
            if seq != position:
                raise AuditLogError(f"entry {position} is missing from the database")
            out.write(bytes(data) + b"\n")
            position += 1
            while pending and pending[0][0] == position:
                out.write(checkpoint_line(pending.pop(0)[1]))
    last = notes[-1].note
    return _parse_own(str(last), signer)


def _parse_own(note: str, signer: NoteSigner | None) -> Checkpoint:
    from ...audit.checkpoint import parse_unverified_checkpoint
    from ...audit.note import split_note

    if signer is not None:
        return open_checkpoint(note, signer.verifier)
    # Our own database's note: reported back to the caller, not trusted by anyone.
    text, _ = split_note(note)
    return parse_unverified_checkpoint(text)
