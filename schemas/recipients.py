"""API models for receiving bodies (recipient sets) and recipients (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

KeyKindName = Literal["x25519", "mlkem768x25519"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CreateBodyRequest(_Request):
    name: str = Field(min_length=1, max_length=200, description='e.g. "UN Myanmar mechanism"')
    description: str = Field("", max_length=2000)


class AddRecipientRequest(_Request):
    organisation: str = Field(min_length=1, max_length=200)
    person: str = Field(min_length=1, max_length=200)
    recipient: str = Field(min_length=4, max_length=4000, description="age1… or age1pq1…")


class RecipientOut(BaseModel):
    id: str
    body_id: str
    organisation: str
    person: str
    recipient: str
    kind: KeyKindName
    post_quantum: bool
    fingerprint: str = Field(description="SHA-256 (hex) of the recipient string "
                             "(printf %s age1… | sha256sum); compare with the investigator "
                             "out of band before trusting the key")
    created_at: datetime
    retired_at: datetime | None
    active: bool


class BodyOut(BaseModel):
    id: str
    name: str
    description: str
    created_at: datetime
    key_kinds: list[KeyKindName] = Field(description="kinds of the active keys")
    active_recipients: int
    recipients: list[RecipientOut]
