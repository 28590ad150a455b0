"""Export bundles: which statements went to which body, in which bundle, when.

An export is recorded twice: here (to answer "all new since the last export to
that body" and to serve the bundle for download) and in the audit log, which
is the evidence (``export.created`` with the statements and the contents
digest, ``export.written`` with the bundle file's SHA-256). The bundle file
itself lives in DATA_DIR/exports/, named by its id; it holds only ciphertext,
routing metadata and audit evidence.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base
from .recipients import KeyKind
from .types import UTCDateTime


class ExportStatus(enum.StrEnum):
    #: The export entry and checkpoint are committed; the file is being written.
    writing = "writing"
    #: The bundle file is complete and its digest is logged.
    complete = "complete"
    #: Writing failed (e.g. a sealed blob differed from its digest); logged too.
    failed = "failed"


class Export(Base):
    __tablename__ = "exports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    body_id: Mapped[str] = mapped_column(ForeignKey("receiving_bodies.id"), index=True)
    # The kind of the first statement's copy. A body that moved from classical
    # to post-quantum keys can receive both kinds in one export; the manifest
    # and the API answer list the kind of each statement.
    key_kind: Mapped[KeyKind] = mapped_column(
        Enum(KeyKind, native_enum=False, length=32, validate_strings=True, name="key_kind"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_by: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    status: Mapped[ExportStatus] = mapped_column(
        Enum(ExportStatus, native_enum=False, length=16, validate_strings=True,
             name="export_status"))
    statement_count: Mapped[int] = mapped_column(Integer)
    contents_digest: Mapped[str] = mapped_column(String(64))
    audit_seq: Mapped[int] = mapped_column(Integer)
    checkpoint_size: Mapped[int] = mapped_column(Integer)
    file_name: Mapped[str] = mapped_column(String(255))
    bundle_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    bundle_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    failure: Mapped[str | None] = mapped_column(Text, nullable=True)

    items: Mapped[list[ExportItem]] = relationship(
        back_populates="export", order_by="ExportItem.position", cascade="all")


class ExportItem(Base):
    """One statement of an export (in bundle order)."""

    __tablename__ = "export_items"

    export_id: Mapped[str] = mapped_column(ForeignKey("exports.id"), primary_key=True)
    statement_id: Mapped[str] = mapped_column(ForeignKey("statements.id"), primary_key=True,
                                              index=True)
    position: Mapped[int] = mapped_column(Integer)

    export: Mapped[Export] = relationship(back_populates="items")
