"""Receiving bodies (recipient sets) and the investigators' public keys in them.

A recipient is never deleted: ``retired_at`` stops it from being used for new
seals, while statements already sealed to it keep pointing at its row (and its
fingerprint stays in exports and the audit log).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base
from .types import UTCDateTime, new_id, utcnow


class KeyKind(enum.StrEnum):
    """The age recipient type: classical X25519 or the post-quantum hybrid."""

    x25519 = "x25519"
    mlkem768x25519 = "mlkem768x25519"

    @property
    def post_quantum(self) -> bool:
        return self is KeyKind.mlkem768x25519


class ReceivingBody(Base):
    __tablename__ = "receiving_bodies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    recipients: Mapped[list[Recipient]] = relationship(
        back_populates="body", order_by="Recipient.created_at"
    )


class Recipient(Base):
    __tablename__ = "recipients"
    __table_args__ = (UniqueConstraint("body_id", "recipient", name="body_recipient"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    body_id: Mapped[str] = mapped_column(ForeignKey("receiving_bodies.id"), index=True)
    organisation: Mapped[str] = mapped_column(String(200))
    person: Mapped[str] = mapped_column(String(200))
    recipient: Mapped[str] = mapped_column(Text)
    kind: Mapped[KeyKind] = mapped_column(
        Enum(KeyKind, native_enum=False, length=32, validate_strings=True, name="key_kind")
    )
    fingerprint: Mapped[str] = mapped_column(String(80), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    body: Mapped[ReceivingBody] = relationship(back_populates="recipients")

    @property
    def active(self) -> bool:
        return self.retired_at is None
