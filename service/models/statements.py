"""Sealed statements: routing metadata in clear, and where their ciphertext lives.

No column here holds content: the sealed record and the attachments exist only
as age ciphertext in the blob store, referenced by SHA-256. ``routing_json`` is
the canonical JSON of :class:`evidence_intake.schemas.statements.Routing`,
which the schema forbids from identifying the witness.

For the exporter:

- a statement may be exported only while ``status == "active"``
  (:attr:`Statement.exportable`); withdrawn and purged statements never are;
- :class:`StatementBody` says which bodies consented and which sealed copy
  (key kind) each receives; :class:`SealedBlob` lists each copy's blobs
  (``part`` 0 is ``statement.age``, part *n* ≥ 1 is attachment *n - 1*).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base
from .recipients import KeyKind
from .types import UTCDateTime


class StatementStatus(enum.StrEnum):
    active = "active"
    withdrawn = "withdrawn"
    purged = "purged"


_KIND = Enum(KeyKind, native_enum=False, length=32, validate_strings=True, name="key_kind")


class Statement(Base):
    __tablename__ = "statements"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    counsellor_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    amends_id: Mapped[str | None] = mapped_column(ForeignKey("statements.id"), nullable=True)
    status: Mapped[StatementStatus] = mapped_column(
        Enum(StatementStatus, native_enum=False, length=16, validate_strings=True,
             name="statement_status"),
        default=StatementStatus.active,
    )
    priority: Mapped[str] = mapped_column(String(16))
    restricted: Mapped[bool] = mapped_column(Boolean)
    routing_json: Mapped[str] = mapped_column(Text)
    audit_seq: Mapped[int] = mapped_column(Integer)
    audit_entry_hash: Mapped[str] = mapped_column(String(64))
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawal_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    withdrawn_by: Mapped[str | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    bodies: Mapped[list[StatementBody]] = relationship(
        back_populates="statement", order_by="StatementBody.body_id", cascade="all"
    )
    blobs: Mapped[list[SealedBlob]] = relationship(
        back_populates="statement", order_by="(SealedBlob.key_kind, SealedBlob.part)",
        cascade="all",
    )

    @property
    def exportable(self) -> bool:
        """False once consent was withdrawn: excluded from every later export."""
        return self.status is StatementStatus.active


class StatementBody(Base):
    """A receiving body the witness consented to, and the sealed copy it receives."""

    __tablename__ = "statement_bodies"

    statement_id: Mapped[str] = mapped_column(ForeignKey("statements.id"), primary_key=True)
    body_id: Mapped[str] = mapped_column(ForeignKey("receiving_bodies.id"), primary_key=True,
                                         index=True)
    key_kind: Mapped[KeyKind] = mapped_column(_KIND)

    statement: Mapped[Statement] = relationship(back_populates="bodies")


class SealedBlob(Base):
    """One sealed part of one copy. The row outlives a purge (the tombstone keeps the digest)."""

    __tablename__ = "statement_blobs"

    statement_id: Mapped[str] = mapped_column(ForeignKey("statements.id"), primary_key=True)
    key_kind: Mapped[KeyKind] = mapped_column(_KIND, primary_key=True)
    part: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    purged: Mapped[bool] = mapped_column(Boolean, default=False)

    statement: Mapped[Statement] = relationship(back_populates="blobs")


class StatementRecipient(Base):
    """Which recipient keys each copy was sealed to (fingerprints are also in routing)."""

    __tablename__ = "statement_recipients"

    statement_id: Mapped[str] = mapped_column(ForeignKey("statements.id"), primary_key=True)
    recipient_id: Mapped[str] = mapped_column(ForeignKey("recipients.id"), primary_key=True)
    key_kind: Mapped[KeyKind] = mapped_column(_KIND)
