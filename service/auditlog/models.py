"""The audit log's tables.

- ``audit_entries``: one row per entry, the canonical bytes exactly as hashed,
  plus the hashes, action and actor. Append-only (triggers). Its only index
  is the primary key: every index is one more B-tree page to write and sync
  in each append's commit, and lookups go through ``audit_subjects`` (action
  and actor stay as columns for ad-hoc queries).
- ``audit_subjects``: (kind, id) -> seq, to find every entry about a
  statement or an account without scanning. Append-only.
- ``audit_nodes``: the hash of every complete Merkle subtree, keyed by
  (level, index); level 0 are the leaves. Proofs and roots of any size read
  O(log n) of these. Append-only.
- ``audit_checkpoints``: every signed checkpoint note. Append-only.
- ``audit_head``: one row (id 1): size, last entry hash and the compact
  range. It is the lock every append takes, and it is *derived* state: it can
  be rebuilt from the entries, and nothing an auditor trusts is read from it
  (the export carries entries and signed checkpoints only). So it is the one
  mutable table, deliberately.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..models.base import Base
from ..models.types import UTCDateTime

HEAD_ID = 1


class AuditEntry(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)
    canonical: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    entry_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    action: Mapped[str] = mapped_column(String(100), nullable=False)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)


class AuditSubject(Base):
    __tablename__ = "audit_subjects"

    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=False)


class AuditNode(Base):
    __tablename__ = "audit_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                       primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)


class AuditCheckpoint(Base):
    __tablename__ = "audit_checkpoints"
    __table_args__ = (Index("ix_audit_checkpoints_size", "size"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                      nullable=False)
    root_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    note: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AuditHead(Base):
    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                      nullable=False)
    last_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    compact_range: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


APPEND_ONLY_TABLES = ("audit_entries", "audit_subjects", "audit_nodes", "audit_checkpoints")
