"""API models for accounts, logins and API tokens (pydantic).

Request models forbid unknown fields, so a typo is a 422 naming the field
rather than a silently ignored option. Passwords are ``SecretStr`` so they
never show in a repr or a validation error.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

RoleName = Literal["admin", "counsellor", "export_officer", "auditor"]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


class LoginRequest(_Request):
    username: str = Field(min_length=1, max_length=64)
    password: SecretStr = Field(min_length=1, max_length=1024)


class AccountOut(BaseModel):
    id: str
    username: str
    role: RoleName
    disabled: bool
    created_at: datetime


class LoginResponse(BaseModel):
    account: AccountOut
    csrf_token: str = Field(description="send in the X-CSRF-Token header with unsafe methods")
    expires_at: datetime


class CreateAccountRequest(_Request):
    username: str = Field(min_length=2, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]+$")
    role: RoleName
    password: SecretStr = Field(min_length=12, max_length=1024)


class SetPasswordRequest(_Request):
    password: SecretStr = Field(min_length=12, max_length=1024)


class ChangePasswordRequest(_Request):
    current_password: SecretStr = Field(min_length=1, max_length=1024)
    new_password: SecretStr = Field(min_length=12, max_length=1024)


class CreateTokenRequest(_Request):
    name: str = Field(min_length=1, max_length=100, description="what the token is for")


class TokenOut(BaseModel):
    id: str
    name: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="shown once; store it now, it cannot be shown again")
